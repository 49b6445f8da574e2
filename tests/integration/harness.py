"""Real nodes for integration and fault tests: separate processes, real TLS on loopback, real
SQLite files, real watchdog observers. Nothing here is faked except that the keystore uses the
fast 'minimal' Argon2id profile and timings are shortened in each node's configuration.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.signing

from lienthong.keys import jws
from lienthong.keys.card import read_card
from lienthong.keys.directory import Peer
from lienthong.node.audit.witnesses import HEAD_KIND, WITNESS_KIND
from lienthong.node.identity.history import read_identity_history
from lienthong.node.identity.provision import create_node_home
from lienthong.node.reconciliation.exchange import SUMMARY_KIND
from lienthong.node.spool.ready import READY_PREFIX
from lienthong.node.store.database import open_store
from lienthong.protocol.fields import rfc3339_utc
from lienthong.protocol.receipt import RECEIPT_TYP, verify_receipt

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-25T08:00:00Z"

FAST_SETTINGS = {
    "scan_interval = 30": "scan_interval = 2",
    "stable_seconds = 1.0": "stable_seconds = 0.2",
    "retry_initial = 1.0": "retry_initial = 0.2",
    "retry_max = 300.0": "retry_max = 2.0",
    "connect_timeout = 20": "connect_timeout = 5",
    "idle_timeout = 300": "idle_timeout = 10",
    # A head queued at every stop reaches the peer after the next start, in the middle of
    # whatever a test checks; the review tests turn it back on (tests/integration/test_review.py).
    "witness_at_stop = true": "witness_at_stop = false",
}


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TestNode:
    __test__ = False  # a node, not a pytest test class
    name: str
    home: Path
    node_id: str
    port: int
    card_path: Path
    process: subprocess.Popen | None = None
    log_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), **self.env, **(extra_env or {}))
        self.log_file = self.home / "logs" / "stderr.txt"
        log = open(self.log_file, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen([sys.executable, "-m", "lienthong.node", "run",
                                         str(self.home)],
                                        stdout=log, stderr=subprocess.STDOUT, env=env,
                                        cwd=str(ROOT))
        wait_for(lambda: self._listening(), timeout=20, what=f"{self.name} to listen")

    def _listening(self) -> bool:
        import socket
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n"
                                 f"{self.log_text()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for a node that is expected to stop by itself (a failpoint's SIGKILL)."""
        if self.process is None:
            raise AssertionError(f"{self.name} is not running")
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout} s") from None
        self.process = None
        return code

    @property
    def pid(self) -> int:
        if self.process is None:
            raise AssertionError(f"{self.name} is not running")
        return self.process.pid

    def peak_rss_kib(self) -> int:
        """The process's peak resident set size so far (VmHWM), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file else ""

    def drop(self, target: str, name: str, data: bytes) -> Path:
        """Put a file into outbox/<target>/ as a careful program would (temp name + rename)."""
        folder = self.outbox / target
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.part"
        tmp.write_bytes(data)
        os.rename(tmp, folder / name)
        return folder / name

    def store(self):  # type: ignore[no-untyped-def]
        from lienthong.config.loader import load_config
        return open_store(load_config(self.home).store.url)

    def query(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call one ``Store`` method on this node's database (readable while it runs)."""
        store = self.store()
        try:
            return getattr(store, method)(*args, **kwargs)
        finally:
            store.close()

    def audit_kinds(self) -> list[str]:
        return [entry.kind for entry in self.query("audit_entries")]


def make_network(base: Path, names: Iterable[str], *, groups: dict[str, dict[str, list[str]]]
                 | None = None, enrol: bool = True, settings: dict[str, str] | None = None,
                 store_url: Callable[[], str] | None = None,
                 language: str = "en") -> dict[str, TestNode]:
    """Nodes with homes under ``base``; ``store_url`` makes each node's database URL (default:
    SQLite in the home). ``language`` is the nodes' (``lienthong.toml``): English for the tests
    that check wording in reason files and logs; "vi", the offices' default, where a test checks
    what a clerk reads."""
    nodes = {}
    for name in names:
        port = free_port()
        new = create_node_home(base / name, name=name, display_name=name,
                               listen=f"127.0.0.1:{port}", advertise=[f"127.0.0.1:{port}"],
                               passphrase=None, now=NOW, kdf="minimal",
                               groups=(groups or {}).get(name),
                               store_url=store_url() if store_url is not None else "")
        config_file = new.config.source
        text = config_file.read_text()
        text = text.replace('language = "vi"', f'language = "{language}"')
        for old, replacement in {**FAST_SETTINGS, **(settings or {})}.items():
            text = text.replace(old, replacement)
        config_file.write_text(text)
        nodes[name] = TestNode(name, new.config.home, new.node_id, port, new.card_path)
    if enrol:
        for node in nodes.values():
            for other in nodes.values():
                if other is not node:
                    enrol_peer(node, other)
    return nodes


def enrol_peer(node: TestNode, other: TestNode) -> None:
    card = read_card(other.card_path.read_text())
    store = node.store()
    # Enrolled now, as an office does when it sets up: a node's monthly reconciliation asks
    # only peers enrolled before the month ended, so a fresh network sends no such request.
    try:
        store.add_peer(Peer.from_card(card, now=NOW), card.token, rfc3339_utc(time.time()))
    finally:
        store.close()


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str,
             interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sha256(data: bytes | Path) -> str:
    """SHA-256 of bytes, or of a file's contents read in blocks (large documents)."""
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_large_file(path: Path, size: int) -> str:
    """Write ``size`` bytes of incompressible, non-repeating data fast (1 MiB blocks) under a
    temporary name, then rename it to ``path``; return its SHA-256."""
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as sink:
        written = 0
        while written < size:
            chunk = (written.to_bytes(8, "big") + block[8:])[:size - written]
            sink.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    os.rename(tmp, path)
    return digest.hexdigest()


def is_document(path: Path) -> bool:
    """Not a sidecar, and not a file the node is still writing under its temporary name (a
    sidecar's lives for the moment after the receipt: node/inbox/layout.py)."""
    return not (path.name.endswith((".meta.json", ".receipt.jws"))
                or path.name.startswith(".lienthong-"))


def inbox_documents(node: TestNode, sender: str) -> dict[str, bytes]:
    """Delivered documents (not their sidecars) in inbox/<sender>/."""
    folder = node.inbox / sender
    if not folder.exists():
        return {}
    return {p.name: p.read_bytes() for p in folder.iterdir() if is_document(p)}


def inbox_digests(node: TestNode, sender: str) -> dict[str, str]:
    """SHA-256 of each delivered document (not its sidecars) in inbox/<sender>/, streamed."""
    folder = node.inbox / sender
    if not folder.exists():
        return {}
    return {p.name: sha256(p) for p in folder.iterdir() if is_document(p)}


def sidecar(stored: Path, suffix: str = ".meta.json", *, timeout: float = 30) -> Path:
    """A received document's sidecar (``suffix``), once written: the sidecars follow the
    receipt by a moment (node/inbox/publication.py), the ``.receipt.jws`` renamed into place
    last, so once it is there both are."""
    receipt = stored.with_name(stored.name + ".receipt.jws")
    wait_for(receipt.exists, timeout=timeout, what=f"the sidecars beside {stored.name!r}")
    return stored.with_name(stored.name + suffix)


def check_delivered(sender: TestNode, recipients: Iterable[TestNode],
                    documents: Mapping[str, bytes | Path]) -> None:
    """The shared checker: every document is in each recipient's inbox exactly once,
    byte-identical, with a receipt that verifies under the recipient's key; the sender holds
    a verified receipt for each; nothing is half-written anywhere. A document is given as its
    bytes, or as the path of a copy (large files are hashed in blocks, never loaded)."""
    expected = {name: sha256(data) for name, data in documents.items()}
    for recipient in recipients:
        delivered = inbox_digests(recipient, sender.name)
        by_digest: dict[str, list[str]] = {}
        for name, digest in delivered.items():
            by_digest.setdefault(digest, []).append(name)
        identities = recipient_identities(recipient)
        for name, digest in expected.items():
            copies = by_digest.get(digest, [])
            assert len(copies) == 1, (f"{name!r} is in {recipient.name}'s inbox "
                                      f"{len(copies)} times: {copies}")
            stored = recipient.inbox / sender.name / copies[0]
            receipt_file = stored.with_name(stored.name + ".receipt.jws")
            # Written just after the receipt is sent, not before (node/inbox/publication.py).
            wait_for(receipt_file.exists, timeout=30, what=f"the receipt beside {name!r}")
            token = receipt_file.read_text().strip()
            signer = jws.decode(token, RECEIPT_TYP).kid
            assert signer in identities, f"{name!r} receipted as {signer}, not {recipient.name}"
            info = verify_receipt(token, identities[signer], recipient=signer)
            assert info.sha256 == digest
        assert len(delivered) == len(documents), (
            f"{recipient.name} has {len(delivered)} documents from {sender.name}, "
            f"expected {len(documents)}: {sorted(delivered)}")
        assert_nothing_half_written(recipient)
    assert_nothing_half_written(sender)


def recipient_identities(node: TestNode) -> dict[str, nacl.signing.VerifyKey]:
    """The node's current identity (its card) and the former ones its own identity history
    lists: a document addressed to a former node ID is receipted by that identity."""
    card = read_card(node.card_path.read_text())
    keys = {card.node_id: nacl.signing.VerifyKey(card.identity_public)}
    keys.update({entry.node_id: entry.verify_key for entry in read_identity_history(node.home)})
    return keys


def assert_nothing_half_written(node: TestNode) -> None:
    def leftovers() -> list[Path]:
        found = [p for p in (node.home / "inbox").rglob("*")
                 if p.name.startswith(".lienthong-") or p.suffix == ".part"]
        return found + [p for p in (node.home / "tmp").rglob("*") if p.is_file()]
    # A sidecar's temporary name lives for the moment after the receipt is sent
    # (node/inbox/publication.py): what stays longer than that is a leftover.
    deadline = time.monotonic() + 5
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers() == [], f"half-written files at {node.name}: {leftovers()}"


#: Control objects a node sends on its own schedule, not because of anything a test did: its
#: audit heads, the witnesses it answers with, reconciliation summaries. ``sent_all`` leaves
#: them out, so a test's count is not met by a head sent when a node stopped.
BACKGROUND_KINDS = frozenset({HEAD_KIND, WITNESS_KIND, SUMMARY_KIND})


def spool_entries(node: TestNode) -> list[str]:
    """What ``spool/`` holds besides the folders made ready for the next take
    (node/spool/ready.py): documents taken and not yet filed, or what a crash left."""
    return sorted(name for name in os.listdir(node.home / "spool")
                  if not name.startswith(READY_PREFIX))


def sent_all(node: TestNode, count: int) -> bool:
    """At least ``count`` dispatches (documents, and the statuses, recalls and key updates a
    test asks for; not ``BACKGROUND_KINDS``) are sent *and filed*: the store marks a dispatch
    sent just before the document moves from the spool to sent/, so wait for the spool folder
    to go too."""
    store = node.store()
    try:
        states = store.dispatches_by_state()
        if states.get("sent", 0) < count:
            return False
        rows = store.recent_dispatches(sum(states.values()))
    finally:
        store.close()
    counted = [row for row in rows if row.meta.get("kind") not in BACKGROUND_KINDS]
    sent = [row for row in counted if row.state == "sent"]
    return len(sent) >= count and not any(Path(row.spool_dir).exists() for row in sent)


def start_wrapped(node: TestNode, prefix: list[str],
                  extra_env: dict[str, str] | None = None) -> None:
    """Start ``node`` under a command prefix, e.g. ``setpriv`` dropping the capabilities that
    let root read any file (so a mode-000 file in the outbox is unreadable, as for a service
    account)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **node.env, **(extra_env or {}))
    node.log_file = node.home / "logs" / "stderr.txt"
    log = open(node.log_file, "ab")  # noqa: SIM115 - the child owns it
    node.process = subprocess.Popen([*prefix, sys.executable, "-m", "lienthong.node", "run",
                                     str(node.home)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(ROOT))
    wait_for(lambda: node._listening(), timeout=20, what=f"{node.name} to listen")
