"""Verifying the audit log and the documents it vouches for; signed chain heads."""
