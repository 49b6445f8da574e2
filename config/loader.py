"""Load and validate ``lienthong.toml``.

Validation is table-driven: each section lists its keys with a type and a check, so that an
unknown key, a wrong type or an out-of-range value all produce the same kind of message:
``lienthong.toml: [watch] scan_interval: expected a number of seconds ≥ 1, got "soon"``.
"""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lienthong.config.schema import (
    CONFIG_VERSION,
    DEFAULT_PETITION_LIMITS,
    GUARDED_CLASSES,
    LANGUAGES,
    MAX_EDXML_MIB,
    NAME_PATTERN,
    PETITION_KINDS,
    PROGRAMME_KINDS,
    WEB_ROLES,
    WEEKDAYS,
    ConfigError,
    CoordinationSection,
    DeliverySection,
    DocumentsSection,
    EdxmlSection,
    KeystoreSection,
    NodeConfig,
    NodeSection,
    PetitionLimits,
    PetitionsSection,
    ReviewSection,
    StatusSection,
    StoreSection,
    WatchSection,
    WebSection,
    parse_address,
)

CONFIG_FILE_NAME = "lienthong.toml"

Check = Callable[[Any, str], Any]


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError("{where}: expected text in quotes, got {value!r}", where=where,
                          value=value)
    return value


def _slug(value: Any, where: str) -> str:
    text = _string(value, where)
    if not NAME_PATTERN.match(text):
        raise ConfigError("{where}: expected a short name of lowercase letters, digits, '.', '-' "
                          "or '_' (it becomes a folder name), got {text!r}", where=where, text=text)
    return text


def _address(value: Any, where: str) -> str:
    text = _string(value, where)
    parse_address(text, where=where)
    return text


def _addresses(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError("{where}: expected a list of addresses like [\"10.0.0.5:7701\"]",
                          where=where)
    return tuple(_address(item, f"{where}[{i}]") for i, item in enumerate(value))


def _number(minimum: float) -> Check:
    def check(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError("{where}: expected a number ≥ {minimum:g}, got {value!r}",
                                  where=where, minimum=minimum, value=value)
        return float(value)
    return check


def _integer(minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError("{where}: expected a whole number ≥ {minimum}, got {value!r}",
                              where=where, minimum=minimum, value=value)
        if maximum is not None and value > maximum:
            raise ConfigError("{where}: expected a whole number ≤ {maximum}, got {value!r}",
                              where=where, maximum=maximum, value=value)
        return value
    return check


def _integer_between(minimum: int, maximum: int) -> Check:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not \
                minimum <= value <= maximum:
            raise ConfigError("{where}: expected a whole number from {minimum} to {maximum}, "
                              "got {value!r}", where=where, minimum=minimum, maximum=maximum,
                              value=value)
        return value
    return check


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError("{where}: expected true or false, got {value!r}", where=where,
                          value=value)
    return value


def _choice(*options: str) -> Check:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or value not in options:
            raise ConfigError("{where}: expected one of {options}, got {value!r}", where=where,
                              options=", ".join(options), value=value)
        return value
    return check


def _path(home: Path) -> Check:
    def check(value: Any, where: str) -> Path:
        path = Path(_string(value, where)).expanduser()
        return path if path.is_absolute() else home / path
    return check


def _section(data: Mapping[str, Any], name: str, spec: Mapping[str, Check], source: Path,
             required: tuple[str, ...] = ()) -> dict[str, Any]:
    raw = data.get(name, {})
    if not isinstance(raw, dict):
        raise ConfigError("{source}: [{name}] must be a table", source=source, name=name)
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        raise ConfigError("{source}: [{name}] has unknown key {key!r}; expected one of: {keys}",
                          source=source, name=name, key=unknown[0], keys=", ".join(sorted(spec)))
    missing = [key for key in required if key not in raw]
    if missing:
        raise ConfigError("{source}: [{name}] is missing required key {key!r}", source=source,
                          name=name, key=missing[0])
    return {key: spec[key](value, f"{source}: [{name}] {key}") for key, value in raw.items()}


def parse_config(data: Mapping[str, Any], *, home: Path, source: Path) -> NodeConfig:
    """Validate an already parsed TOML document."""
    sections = {"config_version", "node", "keystore", "store", "watch", "delivery", "status",
                "groups", "documents", "confidentiality", "edxml", "review", "coordination", "web",
                "language", "petitions"}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError("{source}: unknown section or key {key!r}; expected one of: {keys}",
                          source=source, key=unknown[0], keys=", ".join(sorted(sections)))
    version = data.get("config_version")
    if version != CONFIG_VERSION:
        raise ConfigError("{source}: config_version must be {expected} for this version of "
                          "lienthong, got {version!r}", source=source, expected=CONFIG_VERSION,
                          version=version)
    node = _section(data, "node", {"name": _slug, "display_name": _string, "listen": _address,
                                   "advertise": _addresses, "clerks_group": _unix_group},
                    source, required=("name", "listen"))
    keystore = _section(data, "keystore", {"path": _path(home), "passphrase_file": _path(home)},
                        source)
    store = _section(data, "store", {"url": _string, "lease": _number(1.0)}, source)
    watch = _section(data, "watch", {"observer": _choice("native", "polling"),
                                     "scan_interval": _number(0.1),
                                     "stable_seconds": _number(0.0)}, source)
    delivery = _section(data, "delivery", {
        "max_document_mib": _integer(1), "retry_initial": _number(0.01),
        "retry_max": _number(0.01), "connect_timeout": _number(0.1),
        "idle_timeout": _number(1.0), "max_parallel_transfers": _integer(1),
        "max_protocol": _integer_between(1, 2), "streamed_seal_above_mib": _integer(0)},
        source)
    status = _section(data, "status", {"listen": _address, "allow_remote": _boolean}, source)
    status_section = StatusSection(**status)
    status_host, _ = parse_address(status_section.listen, where="status.listen")
    if status_host not in ("127.0.0.1", "::1", "localhost") and not status_section.allow_remote:
        raise ConfigError("{source}: [status] listen = {listen!r} is reachable from other "
                          "machines; set allow_remote = true if that is intended", source=source,
                          listen=status_section.listen)
    groups_raw = data.get("groups", {})
    if not isinstance(groups_raw, dict):
        raise ConfigError("{source}: [groups] must be a table of name = [peer, ...]", source=source)
    groups: dict[str, tuple[str, ...]] = {}
    for group, members in groups_raw.items():
        where = f"{source}: [groups] {group}"
        _slug(group, where)
        if not isinstance(members, list) or not members:
            raise ConfigError("{where}: expected a non-empty list of peer names", where=where)
        groups[group] = tuple(_slug(member, where) for member in members)
    documents = _section(data, "documents", {
        "types": _slug_list, "number_notation": _choice("any", "state", "party"),
        "lenient_numbers": _boolean}, source)
    coordination = _coordination(data, source)
    review = _section(data, "review", {"witness_interval": _number(1.0),
                                       "witness_at_stop": _boolean,
                                       "reconcile_retry": _number(1.0),
                                       "monthly_reconciliation": _boolean}, source)
    confidentiality = _confidentiality(data.get("confidentiality", {}), source)
    edxml = _section(data, "edxml", {
        "organ_id": _organ_id, "offices": _offices, "arrive_as": _choice("edxml", "folder"),
        "write_beside": _boolean, "max_mib": _integer(1, MAX_EDXML_MIB)}, source)
    web = _web(data, home, source)
    petitions = _petitions(data, home, source)
    language = data.get("language", "vi")
    if language not in LANGUAGES:
        raise ConfigError("{source}: language must be one of {languages}, got {language!r}",
                          source=source, languages=", ".join(LANGUAGES), language=language)
    db_default = f"sqlite:///{home / 'state' / 'lienthong.db'}"
    return NodeConfig(
        home=home, source=source,
        node=NodeSection(name=node["name"], display_name=node.get("display_name", node["name"]),
                         listen=node["listen"], advertise=node.get("advertise", (node["listen"],)),
                         clerks_group=node.get("clerks_group")),
        keystore=KeystoreSection(path=keystore.get("path", home / "keys" / "keystore.json"),
                                 passphrase_file=keystore.get("passphrase_file")),
        store=StoreSection(url=store.get("url") or db_default, lease=store.get("lease", 5.0)),
        watch=WatchSection(**watch), delivery=DeliverySection(**delivery),
        status=status_section, groups=groups, documents=DocumentsSection(**documents),
        confidentiality=confidentiality, edxml=EdxmlSection(**edxml),
        review=ReviewSection(**review),
        coordination=coordination, web=web, language=language, petitions=petitions,
    )


def _petitions(data: Mapping[str, Any], home: Path, source: Path) -> PetitionsSection:
    """``[petitions]``: peers, the staff's Unix group, the folder, and per sub-kind
    ``complaint = [accept, resolve, complex]`` days (docs/petitions.md)."""
    days = _bounded(1, 365, "a number of days")

    def limits(value: Any, where: str) -> PetitionLimits:
        if not isinstance(value, list) or len(value) != 3:
            raise ConfigError("{where}: expected [days to accept, days to resolve, days to "
                              "resolve a complex case], e.g. [10, 30, 45], got {value!r}",
                              where=where, value=value)
        accept, resolve, complex_ = (days(item, where) for item in value)
        if complex_ < resolve:
            raise ConfigError("{where}: a complex case cannot have less time ({complex} "
                              "days) than an ordinary one ({resolve} days)", where=where,
                              complex=complex_, resolve=resolve)
        return PetitionLimits(accept, resolve, complex_)

    spec: dict[str, Check] = {"peers": _strings_of_slugs, "group": _unix_group,
                              "web_users": _strings, "working_days": _boolean}
    spec.update({kind: limits for kind in PETITION_KINDS})
    raw = _section(data, "petitions", spec, source)
    table = dict(DEFAULT_PETITION_LIMITS)
    table.update({kind: raw.pop(kind) for kind in PETITION_KINDS if kind in raw})
    return PetitionsSection(**raw, limits=table)


def _strings_of_slugs(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError("{where}: expected a list of peer or group names, e.g. "
                          '["ubnd", "hdnd"]', where=where)
    return tuple(dict.fromkeys(_slug(item, where) for item in value))


def _web(data: Mapping[str, Any], home: Path, source: Path) -> WebSection:
    web = _section(data, "web", {
        "local_role": _choice(*WEB_ROLES), "remote_listen": _address,
        "certificate": _path(home), "private_key": _path(home),
        "remote_hosts": _strings, "session_minutes": _number(1.0),
        "follow_browser_language": _boolean}, source)
    section = WebSection(**web)
    if section.remote_listen and (section.certificate is None or section.private_key is None):
        raise ConfigError("{source}: [web] remote_listen is served only over HTTPS: set "
                          "certificate and private_key (PEM files) too", source=source)
    return section


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError("{where}: expected a list of names", where=where)
    return tuple(_string(item, where).lower() for item in value)


def _unix_group(value: Any, where: str) -> str:
    text = _string(value, where)
    # What useradd/groupadd accept (NAME_REGEX); whether it exists is checked by the node.
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}\$?", text):
        raise ConfigError("{where}: expected the name of a Unix group, e.g. \"vanthu\", "
                          "got {text!r}", where=where, text=text)
    return text


def _slug_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("{where}: expected a non-empty list of short names, e.g. "
                          '["resolution", "report", "letter"]', where=where)
    names = tuple(_slug(item, f"{where}[{i}]") for i, item in enumerate(value))
    if len(set(names)) != len(names):
        raise ConfigError("{where}: a name is listed twice", where=where)
    return names


def _bounded(low: int, high: int, what: str) -> Check:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError("{where}: expected {what} (a whole number {low}-{high}), got "
                              "{value!r}", where=where, what=what, low=low, high=high,
                              value=value)
        return value
    return check


def _iso_date(value: Any, where: str) -> str:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(_string(value, where)).isoformat()
    except ValueError:
        raise ConfigError("{where}: expected a date like 2027-02-08, got {value!r}", where=where,
                          value=value) from None


def _dates(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError("{where}: expected a list of dates like [2027-02-08, 2027-02-09]",
                          where=where)
    return tuple(sorted({_iso_date(item, f"{where}[{i}]") for i, item in enumerate(value)}))


def _kinds(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or any(k not in PROGRAMME_KINDS for k in value):
        raise ConfigError("{where}: expected a list of {kinds}, got {value!r}", where=where,
                          kinds=", ".join(PROGRAMME_KINDS), value=value)
    return tuple(k for k in PROGRAMME_KINDS if k in value)


def _coordination(data: Mapping[str, Any], source: Path) -> CoordinationSection:
    """``[coordination]``: the regulation's deadlines; every key has the regulation's default."""
    raw = _section(data, "coordination", {
        "consolidating_office": _slug, "offices": _slug_list, "kinds": _kinds,
        "annual_due_day": _bounded(1, 31, "a day of the month"),
        "annual_due_month": _bounded(1, 12, "a month"),
        "quarterly_due_day": _bounded(1, 31, "a day of the month"),
        "monthly_due_day": _bounded(1, 31, "a day of the month"),
        "weekly_due_weekday": _choice(*WEEKDAYS),
        "if_day_off": _choice("keep", "earlier", "later"),
        "remind_working_days": _bounded(0, 60, "a number of working days"),
        "conclusion_working_days": _bounded(1, 60, "a number of working days"),
        "days_off": _dates, "working_days": _dates, "since": _iso_date,
        "send_reminders": _boolean}, source)
    try:
        dt.date(2027, raw.get("annual_due_month", 11), raw.get("annual_due_day", 30))
    except ValueError:
        raise ConfigError("{source}: [coordination] annual_due_day and annual_due_month do not "
                          "make a date (e.g. 30 and 11 for 30 November)", source=source) from None
    both = set(raw.get("days_off", ())) & set(raw.get("working_days", ()))
    if both:
        raise ConfigError("{source}: [coordination] {day} is listed both in days_off and in "
                          "working_days; keep it in one of them", source=source,
                          day=sorted(both)[0])
    return CoordinationSection(**raw)


def _confidentiality(raw: Any, source: Path) -> dict[str, tuple[str, ...]]:
    """``[confidentiality] hdnd = ["secret"]``: who may receive the guarded classes."""
    if not isinstance(raw, dict):
        raise ConfigError("{source}: [confidentiality] must be a table of "
                          'peer-or-group = ["secret", "top-secret"]', source=source)
    allowed: dict[str, tuple[str, ...]] = {}
    for name, classes in raw.items():
        where = f"{source}: [confidentiality] {name}"
        _slug(name, where)
        if not isinstance(classes, list) or any(c not in GUARDED_CLASSES for c in classes):
            raise ConfigError("{where}: expected a list of {classes} (normal and confidential "
                              "need no permission), got {value!r}", where=where,
                              classes=" and ".join(GUARDED_CLASSES), value=classes)
        allowed[name] = tuple(dict.fromkeys(classes))
    return allowed


def _organ_id(value: Any, where: str) -> str:
    """An office's identifier code (mã định danh, such as 000.00.01.H41)."""
    text = _string(value, where)
    if not text.strip() or text != text.strip():
        raise ConfigError("{where}: expected the office's identifier code, such as "
                          "\"000.00.01.H41\", without spaces around it, got {text!r}",
                          where=where, text=text)
    return text


def _offices(value: Any, where: str) -> dict[str, str]:
    """``[edxml.offices] hdnd = "000.00.31.H41"``: each peer's identifier code, each code
    naming one peer (an edXML's To is matched to the peer by it)."""
    if not isinstance(value, dict):
        raise ConfigError("{where}: expected a table of peer = \"identifier code\"", where=where)
    offices: dict[str, str] = {}
    for name, code in value.items():
        offices[_slug(name, where)] = _organ_id(code, f"{where} {name}")
    seen: dict[str, str] = {}
    for name, code in offices.items():
        if code in seen:
            raise ConfigError("{where}: {first} and {name} have the same identifier code {code!r}; "
                              "each office has its own", where=where, first=seen[code],
                              name=name, code=code)
        seen[code] = name
    return offices


def load_config(home: Path) -> NodeConfig:
    """Read ``HOME/lienthong.toml``; every problem becomes a ConfigError a clerk can act on."""
    home = Path(home).resolve()
    source = home / CONFIG_FILE_NAME
    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        raise ConfigError("{source}: no configuration here; create a node with "
                          "'lienthong init {home} --name NAME'", source=source, home=home) from None
    except OSError as exc:
        raise ConfigError("{source}: cannot read: {error}", source=source,
                          error=exc.strerror) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("{source}: not UTF-8 text", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("{source}: not valid TOML: {error}", source=source, error=exc) from None
    return parse_config(data, home=home, source=source)
