"""The status tests' office fixture (tests/node/statushelp.py)."""
from tests.node.statushelp import office  # noqa: F401 - a fixture, found by pytest here
