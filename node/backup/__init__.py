"""Encrypted, signed backups of a node's keys, configuration and store."""
