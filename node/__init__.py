"""The Twisted daemon: the only layer that does I/O."""
