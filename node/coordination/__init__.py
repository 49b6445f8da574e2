"""The offices' coordination regulation: programme deadlines, the working-day calendar, clashes
between programmes, and meeting conclusions (docs/coordination.md)."""
