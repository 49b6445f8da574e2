"""Processing statuses and recalls: asked for by the CLI, signed, sent, applied."""
