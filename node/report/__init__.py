"""The yearly cooperation report: figures from the store, charts, one HTML file and its PDF."""
