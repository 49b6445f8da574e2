"""What a node configuration may contain, as frozen values checked at construction.

The file is meant to be edited by an office's IT officer, so every error names the file, the
key and what was expected (``ConfigError``), and unknown keys are errors rather than silently
ignored: a misspelt ``scan_intreval`` must not leave the default in force unnoticed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CONFIG_VERSION = 1
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: Document types clerks may use when ``[documents] types`` is not set (node/documents/metadata.py
#: maps the Vietnamese names onto these; "message" is always allowed besides).
DEFAULT_DOCUMENT_TYPES = ("resolution", "decision", "directive", "report", "programme",
                          "conclusion", "announcement", "publication", "letter", "other")
#: Confidentiality classes that are refused unless ``[confidentiality]`` allows them for the
#: peer (normal and confidential documents need no permission).
GUARDED_CLASSES = ("secret", "top-secret")


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and how to fix it.

    Made as ``ConfigError("{where}: expected ..., got {value}", where=..., value=...)``: one
    English sentence with named fields (``template``, ``fields``), so the command line can
    show it in the clerk's language from the catalog of node/language/, which this layer
    cannot import (docs/design.md §8). ``str(error)`` is the English sentence.
    """

    def __init__(self, template: str, /, **fields: object) -> None:
        self.template = template
        self.fields = fields
        super().__init__(template.format(**fields) if fields else template)


def parse_address(text: str, *, where: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into host and port."""
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError("{where}: expected an address like 127.0.0.1:7701, got {text!r}",
                          where=where, text=text)
    host, _, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError("{where}: expected an address like 127.0.0.1:7701, got {text!r}",
                          where=where, text=text)
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class NodeSection:
    name: str
    display_name: str
    listen: str
    advertise: tuple[str, ...]
    #: The Unix group whose members (the clerks) may read what the node keeps for them:
    #: received and sent documents, their sidecars, failed/, recalled/, logs. None: only the
    #: node's own user (docs/operations.md §5).
    clerks_group: str | None = None


@dataclass(frozen=True, slots=True)
class KeystoreSection:
    path: Path
    passphrase_file: Path | None


@dataclass(frozen=True, slots=True)
class StoreSection:
    url: str
    #: Seconds: the lease of an active/standby pair on a PostgreSQL store (docs/scale.md).
    lease: float = 5.0


@dataclass(frozen=True, slots=True)
class WatchSection:
    observer: Literal["native", "polling"] = "native"
    scan_interval: float = 30.0
    stable_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class DeliverySection:
    max_document_mib: int = 4096
    retry_initial: float = 1.0
    retry_max: float = 300.0
    connect_timeout: float = 20.0
    idle_timeout: float = 300.0
    max_parallel_transfers: int = 4
    #: The newest wire protocol this node offers and accepts (2: envelope v3, 1: v2 only, as a
    #: node before issue 14). 1 is for rolling an upgrade back, and for tests of a mixed pair.
    max_protocol: int = 2
    #: Envelope v3 documents larger than this many MiB are offered before they are read and
    #: hashed while they are sent (docs/design.md §5.3); 0 (the default): every document is
    #: read once before its offer. Off until measured faster (docs/benchmarks.md).
    streamed_seal_above_mib: int = 0


@dataclass(frozen=True, slots=True)
class StatusSection:
    listen: str = "127.0.0.1:0"
    #: Listening on anything but loopback needs this set explicitly (status is not for peers).
    allow_remote: bool = False


#: Languages a clerk can read lienthong in (node/language/); Vietnamese is the default.
LANGUAGES = ("vi", "en")
#: Who may do what on the web pages (docs/web.md): read, act on documents, administer.
WEB_ROLES = ("viewer", "clerk", "admin")


@dataclass(frozen=True, slots=True)
class WebSection:
    """The web pages (docs/web.md): served on the status listener; remote access over HTTPS."""

    #: The role of whoever opens the pages on the loopback listener (no account needed there).
    local_role: str = "admin"
    #: ``HOST:PORT`` for remote access over HTTPS with accounts; empty (the default): none.
    remote_listen: str = ""
    #: PEM certificate (chain) and private key of the remote listener.
    certificate: Path | None = None
    private_key: Path | None = None
    #: Host names a remote browser may address (the Host-header allow-list); empty: any.
    remote_hosts: tuple[str, ...] = ()
    #: Minutes a session lasts without use.
    session_minutes: float = 30.0
    #: Answer in the browser's language (Accept-Language) when the page's language buttons
    #: were not used. Off by default: office PCs often run an English browser, and the pages
    #: are to be in the office's language (``language``, Vietnamese) unless a clerk chooses.
    follow_browser_language: bool = False


@dataclass(frozen=True, slots=True)
class ReviewSection:
    """The yearly review's evidence (docs/review.md): witnessed heads and reconciliation."""

    #: Seconds between sending the audit head to every peer (and once more at stop).
    witness_interval: float = 86400.0
    #: Send the head once more when the node stops (so the last entries before a planned
    #: stop are witnessed too).
    witness_at_stop: bool = True
    #: Seconds before an unanswered reconciliation is asked again.
    reconcile_retry: float = 21600.0
    #: Reconcile last month with every peer on the node's own, early each month.
    monthly_reconciliation: bool = True


@dataclass(frozen=True, slots=True)
class DocumentsSection:
    types: tuple[str, ...] = DEFAULT_DOCUMENT_TYPES
    #: The notation of the numbers this office issues: any (State or Party), state, party.
    number_notation: Literal["any", "state", "party"] = "any"
    #: True: numbers are sent as written, without checking notation or type code.
    lenient_numbers: bool = False


#: The kinds of work programme the coordination regulation asks for (node/coordination/).
PROGRAMME_KINDS = ("annual", "quarterly", "monthly", "weekly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class CoordinationSection:
    """The offices' coordination regulation, as rules a node can check (docs/coordination.md).

    Defaults are the regulation's: each office sends its draft programme to the consolidating
    office, the annual one by 30 November of the year before, the quarterly one by the 20th of
    the last month of the quarter before, the monthly one by the 25th of the month before, the
    weekly one by the Thursday of the week before.
    """

    consolidating_office: str = "tinhuy"
    #: Offices that owe programmes; empty: every trusted peer (at the consolidating office).
    offices: tuple[str, ...] = ()
    kinds: tuple[str, ...] = PROGRAMME_KINDS
    annual_due_day: int = 30
    annual_due_month: int = 11
    quarterly_due_day: int = 20
    monthly_due_day: int = 25
    weekly_due_weekday: str = "thursday"
    #: A deadline on a day off: keep it (and say so), or move it to the working day before/after.
    if_day_off: Literal["keep", "earlier", "later"] = "keep"
    remind_working_days: int = 3
    #: Working days an office concerned has to register (vào sổ) a meeting's conclusion.
    conclusion_working_days: int = 3
    #: Extra days off and make-up working days (usually Saturdays) the government announces.
    days_off: tuple[str, ...] = ()
    working_days: tuple[str, ...] = ()
    #: No obligation is due before this day (ISO date); empty: 92 days back from today.
    since: str = ""
    #: At the consolidating office: also send the office that owes a programme a signed
    #: message when the reminder window opens and when it becomes overdue (once each).
    send_reminders: bool = False


#: The sub-kinds of a citizens' petition (đơn thư): khiếu nại, tố cáo, kiến nghị, phản ánh.
PETITION_KINDS = ("complaint", "denunciation", "recommendation", "reflection")


@dataclass(frozen=True, slots=True)
class PetitionLimits:
    """The time limits of one sub-kind of petition, in days (docs/petitions.md §4)."""

    #: From receipt to the decision to accept (thụ lý) or not.
    accept: int
    #: From acceptance to resolution.
    resolve: int
    #: From acceptance to resolution when the case is complex (phức tạp).
    complex: int


#: The Law on Complaints: decide within 10 days of receipt, resolve within 30 days of
#: acceptance, 45 for complex cases; the Law on Denunciations: 7 days to accept, 30 (60 complex)
#: to resolve; recommendations and reflections as the office's own rules (configurable).
DEFAULT_PETITION_LIMITS = {
    "complaint": PetitionLimits(10, 30, 45),
    "denunciation": PetitionLimits(7, 30, 60),
    "recommendation": PetitionLimits(10, 15, 30),
    "reflection": PetitionLimits(10, 15, 30),
}


@dataclass(frozen=True, slots=True)
class PetitionsSection:
    """Citizens' petitions (đơn thư): with whom they may be exchanged, who may read them here,
    and their time limits (docs/petitions.md)."""

    #: Peers (or groups) petitions may be sent to and accepted from; empty: nobody.
    peers: tuple[str, ...] = ()
    #: The Unix group of the petition staff: they (and the node's user) read the restricted
    #: folder and may use ``lienthong petitions``; empty: the node's user only.
    group: str = ""
    #: Web accounts (``lienthong web user add``) of the petition staff: only they see the
    #: petition page, signed in (never the loopback page any local user can open).
    web_users: tuple[str, ...] = ()
    #: Count limits in working days (the deadline engine's calendar) or calendar days.
    working_days: bool = True
    limits: dict[str, PetitionLimits] = field(
        default_factory=lambda: dict(DEFAULT_PETITION_LIMITS))


#: The largest ``[edxml] max_mib`` accepted: an edXML message is a handful of attachments in
#: base64, not a publication (those go as plain documents, without the base64 third).
MAX_EDXML_MIB = 1024


@dataclass(frozen=True, slots=True)
class EdxmlSection:
    """edXML in and out (docs/edxml.md)."""

    #: This office's identifier code (mã định danh), written as From in what it exports.
    organ_id: str = ""
    #: Peer name -> its identifier code, to check an edXML's To and to write it.
    offices: dict[str, str] = field(default_factory=dict)
    #: A received edXML stays as it came ("edxml"), or its attachments are also unpacked
    #: into a folder beside it ("folder").
    arrive_as: Literal["edxml", "folder"] = "edxml"
    #: Write NAME.edxml beside every received document that did not come as edXML.
    write_beside: bool = False
    #: Largest edXML file accepted, in MiB (checked before it is parsed; at most
    #: MAX_EDXML_MIB).
    max_mib: int = 64


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A whole, validated configuration; paths are absolute (resolved against the home)."""

    home: Path
    source: Path
    node: NodeSection
    keystore: KeystoreSection
    store: StoreSection
    watch: WatchSection = field(default_factory=WatchSection)
    delivery: DeliverySection = field(default_factory=DeliverySection)
    status: StatusSection = field(default_factory=StatusSection)
    review: ReviewSection = field(default_factory=ReviewSection)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    documents: DocumentsSection = field(default_factory=DocumentsSection)
    #: Peer or group name -> the guarded classes (secret, top-secret) it may receive.
    confidentiality: dict[str, tuple[str, ...]] = field(default_factory=dict)
    edxml: EdxmlSection = field(default_factory=EdxmlSection)
    coordination: CoordinationSection = field(default_factory=CoordinationSection)
    web: WebSection = field(default_factory=WebSection)
    petitions: PetitionsSection = field(default_factory=PetitionsSection)
    #: The language of what the node writes for clerks (``vi`` or ``en``).
    language: str = "vi"

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def sent(self) -> Path:
        return self.home / "sent"

    @property
    def failed(self) -> Path:
        return self.home / "failed"

    @property
    def petitions_folder(self) -> Path:
        """The restricted folder of citizens' petitions (docs/petitions.md §5)."""
        return self.home / "petitions"

    @property
    def spool(self) -> Path:
        return self.home / "spool"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def card_path(self) -> Path:
        return self.home / f"{self.node.name}.card"

    @property
    def max_document_bytes(self) -> int:
        return self.delivery.max_document_mib * 1024 * 1024
