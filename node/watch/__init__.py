"""Noticing complete files in the outbox folders (watchdog, reconciled by scans)."""
