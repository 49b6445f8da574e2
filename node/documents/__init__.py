"""Document metadata as the offices know it (number, type, urgency): parsing and naming."""
