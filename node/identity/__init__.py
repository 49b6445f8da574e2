"""The node's own identity over time: provisioning, rotation, key announcements."""
