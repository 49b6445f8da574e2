"""The web pages served by the node for clerks and IT staff (docs/web.md)."""
