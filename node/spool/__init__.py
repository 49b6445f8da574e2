"""The spool: documents taken from the outbox, sealed and waiting to be offered."""
