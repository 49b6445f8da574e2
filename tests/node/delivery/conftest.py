"""The delivery tests' fixtures: ``net``, alpha's sender and beta's receiver back to back
(pairhelp.py)."""
from tests.node.delivery.pairhelp import net  # noqa: F401 - a fixture, offered to these tests
