"""What a node loads at start: the yearly report's chart library is loaded only when a report
is drawn, not by every node that serves its web page (it cost about 40 MiB per node)."""
from __future__ import annotations

import subprocess
import sys

from tests.integration.harness import ROOT


def test_starting_a_node_does_not_load_matplotlib() -> None:
    probe = ("import sys, lienthong.node.app.process, lienthong.node.web.site; "
             "print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=120, check=True)
    assert done.stdout.strip() == "False", done.stderr


def test_starting_a_node_does_not_load_what_only_a_command_or_page_needs() -> None:
    """``python -m lienthong.node run`` goes through the whole command line (cli/main), which
    names the petition register's export: openpyxl, and with it numpy and Pillow, cost each
    node about 25 MiB from start; the holiday tables 3.6 MiB and Jinja2 2 MiB more, needed
    only for a date's working days and a page or report (docs/benchmarks.md, History 43)."""
    probe = ("import sys, lienthong.node.cli.main, lienthong.node.app.process, "
             "lienthong.node.web.site; "
             "print(sorted(m for m in ('openpyxl', 'numpy', 'PIL', 'holidays', 'jinja2') "
             "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stderr
