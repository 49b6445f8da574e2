"""Sending: one link per peer, offers, transfers, verified receipts, backoff."""
