"""The ``lienthong`` command line."""
