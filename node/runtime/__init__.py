"""The running node's shared state and the typing Protocols at the seams between its rooms.

Above store and transport, so the runtime can name the Store and the TLS types it holds; below
every room that is handed it."""
