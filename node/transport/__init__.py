"""Mutual TLS 1.3 with pinned keys, and large writes through Twisted's TLS transport."""
