"""[documents] and [confidentiality]: which document types clerks use, who may get secrets."""
from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.config.loader import CONFIG_FILE_NAME, load_config
from lienthong.config.schema import DEFAULT_DOCUMENT_TYPES, ConfigError
from lienthong.config.template import render_config


def _load(tmp_path: Path, extra: str = ""):  # type: ignore[no-untyped-def]
    text = render_config(name="tinhuy", display_name="Tỉnh ủy", listen="127.0.0.1:7701",
                         advertise=["127.0.0.1:7701"], groups={"council": ["hdnd", "ubnd"]})
    (tmp_path / CONFIG_FILE_NAME).write_text(text + extra, encoding="utf-8")
    return load_config(tmp_path)


def test_defaults_allow_every_built_in_type_and_no_secrets(tmp_path: Path) -> None:
    """Without the sections, all built-in types are allowed and nobody may get secrets."""
    config = _load(tmp_path)
    assert config.documents.types == DEFAULT_DOCUMENT_TYPES
    assert "resolution" in config.documents.types and config.confidentiality == {}


def test_template_documents_both_sections(tmp_path: Path) -> None:
    """The file 'init' writes explains both settings (commented out, so appending works)."""
    text = render_config(name="x", display_name="x", listen="127.0.0.1:1", advertise=[])
    assert "# [confidentiality]" in text and "# hdnd = [\"secret\"]" in text
    assert "# [documents]" in text


def test_sections_are_read(tmp_path: Path) -> None:
    """Types and per-peer/group permissions load as tuples; duplicates are collapsed."""
    config = _load(tmp_path, '\n[documents]\ntypes = ["report", "to-trinh"]\n'
                             '[confidentiality]\nhdnd = ["secret", "secret"]\n'
                             'council = ["secret", "top-secret"]\n')
    assert config.documents.types == ("report", "to-trinh")
    assert config.confidentiality == {"hdnd": ("secret",), "council": ("secret", "top-secret")}


@pytest.mark.parametrize("extra,pattern", [
    ('\n[confidentiality]\nhdnd = ["confidential"]\n',
     r"\[confidentiality\] hdnd: expected a list of secret and top-secret"),
    ('\n[confidentiality]\nhdnd = "secret"\n', r"\[confidentiality\] hdnd: expected a list"),
    ('\n[confidentiality]\n"Hội đồng" = ["secret"]\n', r"\[confidentiality\] Hội đồng.*short name"),
    ('\n[documents]\ntypes = []\n', r"\[documents\] types: expected a non-empty list"),
    ('\n[documents]\ntypes = ["Nghị quyết"]\n', r"types\[0\]: expected a short name"),
    ('\n[documents]\ntypes = ["report", "report"]\n', r"listed twice"),
    ('\n[documents]\nkinds = ["report"]\n', r"\[documents\] has unknown key 'kinds'"),
])
def test_mistakes_are_explained(tmp_path: Path, extra: str, pattern: str) -> None:
    """Each mistake names the section, the key and what is expected."""
    with pytest.raises(ConfigError, match=pattern):
        _load(tmp_path, extra)
