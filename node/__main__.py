"""``python -m node`` is ``lienthong`` (handy before the console script is installed)."""
from node.cli import main

main()
