"""The configuration loader accepts the shipped examples and names the key in every error."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lienthong.config.loader import CONFIG_FILE_NAME, load_config, parse_config
from lienthong.config.schema import ConfigError
from lienthong.config.template import render_config

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"


def _write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / CONFIG_FILE_NAME).write_text(text, encoding="utf-8")


def _base() -> str:
    return render_config(name="tinhuy", display_name="Văn phòng Tỉnh ủy",
                         listen="127.0.0.1:7701", advertise=["127.0.0.1:7701"])


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_examples_load(example: Path) -> None:
    """Each shipped office example is a valid configuration with an 'all' group."""
    data = tomllib.loads(example.read_text(encoding="utf-8"))
    config = parse_config(data, home=Path("/srv/lienthong"), source=example)
    assert config.node.name == example.stem
    assert config.groups["all"] and example.stem not in config.groups["all"]
    assert config.keystore.passphrase_file == Path("/srv/lienthong/keys/passphrase")


def test_rendered_template_round_trips(tmp_path: Path) -> None:
    """What 'init' writes loads back with the defaults and paths inside the home."""
    _write(tmp_path, _base())
    config = load_config(tmp_path)
    assert config.node.display_name == "Văn phòng Tỉnh ủy"
    assert config.store.url == f"sqlite:///{tmp_path.resolve() / 'state' / 'lienthong.db'}"
    assert config.watch.scan_interval == 30.0
    assert config.keystore.path == tmp_path.resolve() / "keys" / "keystore.json"
    assert config.delivery.max_protocol == 2


def test_a_node_can_be_held_to_protocol_1(tmp_path: Path) -> None:
    """Rolling an upgrade back: the node then speaks only what nodes before envelope v3 do."""
    _write(tmp_path, _base().replace("# max_protocol = 2", "max_protocol = 1"))
    assert load_config(tmp_path).delivery.max_protocol == 1


def test_unknown_key_is_named(tmp_path: Path) -> None:
    """A misspelt key is an error naming the section, the key and the allowed keys."""
    _write(tmp_path, _base().replace("scan_interval = 30", "scan_intreval = 30"))
    with pytest.raises(ConfigError,
                       match=r"\[watch\] has unknown key 'scan_intreval'.*scan_interval"):
        load_config(tmp_path)


@pytest.mark.parametrize("old,new,pattern", [
    ('observer = "native"', 'observer = "fast"',
     r"\[watch\] observer: expected one of native, polling"),
    ("scan_interval = 30", 'scan_interval = "soon"', r"scan_interval: expected a number"),
    ('listen = "127.0.0.1:7701"', 'listen = "somewhere"', r"\[node\] listen: expected an address"),
    ('name = "tinhuy"', 'name = "Tỉnh ủy"', r"\[node\] name: expected a short name"),
    ("config_version = 1", "config_version = 7", r"config_version must be 1"),
    ('listen = "127.0.0.1:0"', 'listen = "0.0.0.0:8080"', r"allow_remote = true"),
    ("# max_protocol = 2", "max_protocol = 3",
     r"\[delivery\] max_protocol: expected a whole number from 1 to 2"),
])
def test_bad_values_are_explained(tmp_path: Path, old: str, new: str, pattern: str) -> None:
    """Wrong types, ranges and versions each produce a specific, actionable message."""
    text = _base()
    assert old in text
    _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=pattern):
        load_config(tmp_path)


def test_missing_file_tells_how_to_create_it(tmp_path: Path) -> None:
    """A home without a configuration says which command creates one."""
    with pytest.raises(ConfigError, match="lienthong init"):
        load_config(tmp_path)


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    """Broken TOML is reported with the file name, not as a traceback."""
    _write(tmp_path, "config_version = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)


def test_the_lease_of_a_pair_is_five_seconds_unless_set(tmp_path: Path) -> None:
    """[store] lease (active/standby, docs/scale.md): 5 s by default; under 1 s is refused."""
    _write(tmp_path, _base())
    assert load_config(tmp_path).store.lease == 5.0
    _write(tmp_path, _base().replace("# lease = 5.0", "lease = 8"))
    assert load_config(tmp_path).store.lease == 8.0
    _write(tmp_path, _base().replace("# lease = 5.0", "lease = 0.5"))
    with pytest.raises(ConfigError, match=r"\[store\] lease: expected a number ≥ 1"):
        load_config(tmp_path)
