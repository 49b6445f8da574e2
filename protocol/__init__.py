"""The sans-I/O core: frames, envelopes, payload encryption, receipts, connection state.

Bytes in, events out; events in, bytes out. Nothing here touches a socket, a file, a clock or
a database; the caller passes time and randomness in. Never imports twisted, sqlalchemy,
watchdog, node, or the filesystem.
"""
