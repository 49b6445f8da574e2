"""``python -m lienthong.node`` is ``lienthong`` (handy before the console script is installed)."""
from lienthong.node.cli.main import main

main()
