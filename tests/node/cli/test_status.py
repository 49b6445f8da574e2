"""``lienthong status``: JSON, the screen, and the --check exit codes for monitoring."""
from __future__ import annotations

import json

from click.testing import CliRunner

from lienthong.node.cli.main import main
from tests.node.statushelp import Office


def test_status_command_json_and_screen(office: Office) -> None:
    """lienthong status HOME --json gives the snapshot; without --json, the screen."""
    result = CliRunner().invoke(main, ["status", str(office.honest.home), "--json"])
    snap = json.loads(result.output)
    assert result.exit_code == 0 and snap["daemon"]["running"] is False
    assert {p["name"] for p in snap["peers"]} == {"hdnd", "ubnd"}
    result = CliRunner().invoke(main, ["--lang", "en", "status", "--home",
                                       str(office.honest.home)])
    assert result.exit_code == 0 and "NOT RUNNING" in result.output
    # The clerk's default is the node's language, Vietnamese.
    result = CliRunner().invoke(main, ["status", "--home", str(office.honest.home)])
    assert result.exit_code == 0 and "KHÔNG CHẠY" in result.output
    assert "NOT RUNNING" not in result.output
    # For monitoring: the daemon being down is critical (2); without --check always 0.
    checked = CliRunner().invoke(main, ["status", str(office.honest.home), "--check", "--json"])
    assert checked.exit_code == 2 and json.loads(checked.output)["health"] == "critical"
