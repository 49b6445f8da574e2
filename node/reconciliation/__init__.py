"""Reconciliation: two offices compare what each says it sent the other and received from it."""
