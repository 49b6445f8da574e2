"""Receiving: deciding on offers, staging the stream, publishing into the inbox."""
