"""The province simulation at a tiny size: four real nodes enrolled through the command line
(many cards, then a signed directory file), a day's traffic, every delivery receipted."""
from __future__ import annotations

from pathlib import Path

from bench.network_sim import main, simulate


def test_four_offices_deliver_everything_with_verified_receipts(tmp_path: Path) -> None:
    results = simulate(tmp_path, offices=4, large_mib=1, publications=1, timeout=120)
    traffic, delivered = results["traffic"], results["delivered"]
    assert delivered["problems"] == []
    assert traffic["deliveries"] > traffic["documents"] > 20  # groups fan out
    assert traffic["group_documents"] >= 4 and traffic["large_documents"] == 2
    assert delivered["deliveries_verified"] == traffic["deliveries"]
    assert results["unclean_stops"] == [] and results["ok"]
    # Two commands an office (the coordinator's: many cards, then the directory file).
    assert results["enrolment"]["commands"] == 8 and results["enrolment"]["peers_added"] == 12
    assert results["connections"]["peak_total"] >= 3
    assert 10 < results["memory"]["peak_rss_mib_max"] < 400


def test_the_command_refuses_a_province_of_two(tmp_path: Path) -> None:
    import pytest
    with pytest.raises(ValueError, match="at least 3 offices"):
        main(["--offices", "2", "--dir", str(tmp_path)])
