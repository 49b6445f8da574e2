"""Identity, keystore, node IDs, peer cards and directory, TLS certificates.

May read and write the node's key files; never imports twisted, sqlalchemy, watchdog or node.
"""
