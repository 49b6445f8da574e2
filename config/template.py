"""The commented ``lienthong.toml`` that ``lienthong init`` writes.

Comments matter here: this file is what an IT officer opens first, so each setting says what
it does and when to change it.
"""
from __future__ import annotations

import json

TEMPLATE = """\
# lienthong node configuration. Edit, then restart the node (lienthong run).
config_version = 1
# Language of the web pages and of what the node writes for clerks: "vi" or "en".
language = "vi"

[node]
# Short name of this office; peers see it as the folder name inbox/<name>/.
name = {name}
# Full name shown to people.
display_name = {display_name}
# Address and port this node listens on for peers (mutual TLS 1.3).
listen = {listen}
# Addresses peers should dial, written into this node's peer card.
advertise = {advertise}
# The Unix group of the clerks (văn thư) who may read received and sent documents, their
# sidecars, failed/ and the logs (folders 0750, files 0640). Unset: only this node's user
# (0700/0600). See docs/operations.md §5.
# clerks_group = "vanthu"

[keystore]
# Encrypted keys (Argon2id + XChaCha20-Poly1305), mode 0600 in a 0700 folder.
path = "keys/keystore.json"
# Passphrase for unattended start, in a 0600 file. Alternatives: the environment variable
# LIENTHONG_PASSPHRASE, a systemd credential named lienthong-passphrase, or a prompt.
{passphrase_line}

[store]
# Empty: SQLite in state/lienthong.db. Or a PostgreSQL database of this node's own,
# postgresql://USER@HOST:5432/DATABASE (needs: pip install 'lienthong[postgresql]';
# docs/scale.md). One database per node: a second node on it is refused.
url = {store_url}
# An active/standby pair (lienthong run --standby, PostgreSQL only): seconds of the lease.
# The standby takes over about one lease after the active node dies, two after it hangs.
# lease = 5.0

[watch]
# "native" (inotify) for local disks; "polling" for network shares (SMB/NFS).
observer = "native"
# Seconds between full scans of the outbox (the truth; folder events are only hints).
scan_interval = 30
# A file must stay unchanged this many seconds before it is taken.
stable_seconds = 1.0

[delivery]
# Larger documents are refused into failed/ with a reason.
max_document_mib = 4096
# Retry delays grow from retry_initial to retry_max seconds (with jitter), forever.
retry_initial = 1.0
retry_max = 300.0
connect_timeout = 20
idle_timeout = 300
max_parallel_transfers = 4
# Newest wire protocol: 2 seals file names and metadata end to end (envelope v3); 1 only
# while rolling an upgrade back.
# max_protocol = 2
# Offer envelope v3 documents over this many MiB before reading them, hashing them while
# they are sent (0: read every document once before its offer).
# streamed_seal_above_mib = 0

[status]
# Local status API (JSON at /status, Prometheus at /metrics). Loopback only unless
# allow_remote = true is set explicitly.
listen = {status_listen}

[web]
# The web pages are on the status listener above (open its address in a browser).
# Role of whoever opens them there: "viewer", "clerk" or "admin" (docs/web.md).
local_role = "admin"
# Pages are in this office's language (above) unless a clerk presses "Tiếng Việt / English";
# true: follow the browser's language instead (office PCs often run an English browser).
follow_browser_language = false
# Remote access (off): HTTPS only, with accounts (lienthong web user add). For example:
# remote_listen = "0.0.0.0:8443"
# certificate = "keys/web-cert.pem"
# private_key = "keys/web-key.pem"
# remote_hosts = ["vanthu.tinhuy.example.vn"]

[review]
# Evidence for the yearly review (docs/review.md). The signed head of the audit log goes to
# every peer every witness_interval seconds and, unless witness_at_stop = false, when the node
# stops; an unanswered reconciliation is asked again after reconcile_retry seconds; last month
# is reconciled with every peer early each month unless monthly_reconciliation = false.
witness_interval = 86400
witness_at_stop = true
reconcile_retry = 21600
monthly_reconciliation = true

# [documents]
# Document types clerks may use, in a sidecar (type = "...") or as a folder
# outbox/<office>/<type>/. Without this list: resolution, decision, directive, report,
# programme, conclusion, announcement, publication, letter, other (Vietnamese names such as
# "nghi-quyet" or "công văn" are understood; see docs/documents.md). "message" is always allowed.
# types = ["resolution", "decision", "report", "letter", "other"]

# [confidentiality]
# Documents marked secret (tối mật) or top-secret (tuyệt mật) are refused into failed/ unless
# allowed here for the receiving office or a group it belongs to, e.g.
# hdnd = ["secret"]

# [petitions]
# Citizens' petitions (đơn thư) go to and are accepted from only these offices; the petition
# staff's Unix group reads the petitions/ folder and the register (docs/petitions.md), and only
# these web accounts see the petition page. Limits: [accept, resolve, complex] in days.
# peers = ["ubnd"]
# group = "lienthong-don"
# web_users = ["lan"]
# complaint = [10, 30, 45]

[groups]
# Send to several offices with one drop into outbox/<group>/, e.g.
# all = ["hdnd", "ubnd"]
{groups}
"""


def render_config(*, name: str, display_name: str, listen: str, advertise: list[str],
                  status_listen: str = "127.0.0.1:0", passphrase_file: str | None = None,
                  groups: dict[str, list[str]] | None = None, store_url: str = "") -> str:
    """Return the text of a new configuration; values are quoted with JSON (valid TOML)."""
    def quote(value: object) -> str:
        return json.dumps(value, ensure_ascii=False)
    passphrase_line = (f"passphrase_file = {quote(passphrase_file)}" if passphrase_file
                       else '# passphrase_file = "keys/passphrase"')
    group_lines = "\n".join(f"{quote(group)} = {quote(members)}"
                            for group, members in (groups or {}).items())
    return TEMPLATE.format(name=quote(name), display_name=quote(display_name),
                           listen=quote(listen), advertise=quote(advertise),
                           status_listen=quote(status_listen), passphrase_line=passphrase_line,
                           groups=group_lines, store_url=quote(store_url))
