"""The running node: wiring its parts together, logging, the demo network."""
