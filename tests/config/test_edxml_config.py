"""[edxml]: this office's identifier code, the peers' codes, how edXML arrives, the size limit;
each mistake is one sentence naming the section, the key and what is expected."""
from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.config.loader import CONFIG_FILE_NAME, load_config
from lienthong.config.schema import ConfigError, EdxmlSection, NodeConfig
from lienthong.config.template import render_config


def _load(tmp_path: Path, extra: str = "", *, top: str = "") -> NodeConfig:
    text = render_config(name="tinhuy", display_name="Tỉnh ủy", listen="127.0.0.1:7701",
                         advertise=["127.0.0.1:7701"])
    (tmp_path / CONFIG_FILE_NAME).write_text(top + text + extra, encoding="utf-8")
    return load_config(tmp_path)


def test_without_the_section_edxml_arrives_as_it_came(tmp_path: Path) -> None:
    """No [edxml]: no identifier codes, the .edxml alone, nothing written beside, 64 MiB."""
    assert _load(tmp_path).edxml == EdxmlSection(organ_id="", offices={}, arrive_as="edxml",
                                                 write_beside=False, max_mib=64)


def test_every_key_is_read(tmp_path: Path) -> None:
    config = _load(tmp_path, '\n[edxml]\norgan_id = "000.00.01.H41"\narrive_as = "folder"\n'
                             'write_beside = true\nmax_mib = 16\n'
                             '[edxml.offices]\nhdnd = "000.00.02.H41"\n'
                             'ubnd = "000.00.03.H41"\n')
    assert config.edxml == EdxmlSection(
        organ_id="000.00.01.H41", offices={"hdnd": "000.00.02.H41", "ubnd": "000.00.03.H41"},
        arrive_as="folder", write_beside=True, max_mib=16)


@pytest.mark.parametrize("extra,pattern", [
    ('\n[edxml]\narrive_as = "zip"\n',
     r"\[edxml\] arrive_as: expected one of edxml, folder, got 'zip'"),
    ('\n[edxml]\nwrite_beside = "yes"\n', r"\[edxml\] write_beside: expected true or false"),
    ('\n[edxml]\nmax_mib = 0\n', r"\[edxml\] max_mib: expected a whole number ≥ 1, got 0"),
    ('\n[edxml]\nmax_mib = 2.5\n', r"\[edxml\] max_mib: expected a whole number"),
    ('\n[edxml]\nmax_mib = 4096\n', r"\[edxml\] max_mib: expected a whole number ≤ 1024"),
    ('\n[edxml]\nmax_mib = true\n', r"\[edxml\] max_mib: expected a whole number"),
    ('\n[edxml]\norgan_id = 41\n', r"\[edxml\] organ_id: expected text in quotes, got 41"),
    ('\n[edxml]\norgan_id = "  "\n', r"\[edxml\] organ_id: .*identifier code"),
    ('\n[edxml]\noffices = "hdnd"\n', r"\[edxml\] offices: expected a table of peer"),
    ('\n[edxml.offices]\n"Hội đồng" = "000.00.02.H41"\n',
     r"\[edxml\] offices.*short name.*'Hội đồng'"),
    ('\n[edxml.offices]\nhdnd = 2\n', r"\[edxml\] offices hdnd: expected text in quotes"),
    ('\n[edxml.offices]\nhdnd = "000.00.02.H41"\nubnd = "000.00.02.H41"\n',
     r"\[edxml\] offices: hdnd and ubnd have the same identifier code '000.00.02.H41'"),
    ('\n[edxml]\nfolder = true\n', r"\[edxml\] has unknown key 'folder'; expected one of: "
                                   r"arrive_as, max_mib, offices, organ_id, write_beside"),
])
def test_mistakes_are_explained(tmp_path: Path, extra: str, pattern: str) -> None:
    """Each mistake names the section, the key and what is expected."""
    with pytest.raises(ConfigError, match=pattern) as caught:
        _load(tmp_path, extra)
    assert "\n" not in str(caught.value)  # one sentence, no traceback-like dump


def test_edxml_that_is_not_a_table_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[edxml\] must be a table"):
        _load(tmp_path, top='edxml = "on"\n')
