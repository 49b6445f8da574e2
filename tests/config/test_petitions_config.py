"""[petitions]: with whom petitions are exchanged, the staff's group and web accounts, limits."""
from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.config.loader import CONFIG_FILE_NAME, load_config
from lienthong.config.schema import DEFAULT_PETITION_LIMITS, ConfigError, PetitionLimits
from lienthong.config.template import render_config


def _load(tmp_path: Path, extra: str = ""):  # type: ignore[no-untyped-def]
    text = render_config(name="tinhuy", display_name="Tỉnh ủy", listen="127.0.0.1:7701",
                         advertise=["127.0.0.1:7701"], groups={"council": ["hdnd", "ubnd"]})
    (tmp_path / CONFIG_FILE_NAME).write_text(text + extra, encoding="utf-8")
    return load_config(tmp_path)


def test_without_the_section_petitions_go_nowhere_with_the_laws_limits(tmp_path: Path) -> None:
    config = _load(tmp_path)
    assert config.petitions.peers == () and config.petitions.group == ""
    assert config.petitions.limits["complaint"] == PetitionLimits(10, 30, 45)
    assert config.petitions.working_days and config.petitions_folder == tmp_path / "petitions"


def test_peers_group_web_users_and_one_kinds_limits(tmp_path: Path) -> None:
    config = _load(tmp_path, '\n[petitions]\npeers = ["ubnd", "council"]\n'
                   'group = "lienthong-don"\nweb_users = ["Lan"]\nworking_days = false\n'
                   "denunciation = [5, 20, 40]\n")
    section = config.petitions
    assert (section.peers, section.group, section.web_users) == (
        ("ubnd", "council"), "lienthong-don", ("lan",))
    assert section.limits["denunciation"] == PetitionLimits(5, 20, 40)
    assert section.limits["complaint"] == DEFAULT_PETITION_LIMITS["complaint"]
    assert not section.working_days


@pytest.mark.parametrize(("extra", "match"), [
    ('complaint = [10, 30]', r"\[petitions\] complaint: expected \[days to accept"),
    ('complaint = [10, 30, 20]', "a complex case cannot have less time"),
    ('complaint = [0, 30, 45]', "a number of days"),
    ('group = "Cán bộ"', "the name of a Unix group"),
    ('peers = "ubnd"', "a list of peer or group names"),
    ('folder = "/srv"', "unknown key 'folder'"),
])
def test_mistakes_are_named(tmp_path: Path, extra: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, f"\n[petitions]\n{extra}\n")
