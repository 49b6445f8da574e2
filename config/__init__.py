"""The node's TOML configuration: schema, strict loading, and example office configurations.

Never imports twisted, sqlalchemy, watchdog or node.
"""
