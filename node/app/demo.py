"""The three-office demo network (``lienthong demo``, the README's main command).

Creates the three offices' homes on loopback ports with SQLite stores, enrols them with each
other from their peer cards, starts all three nodes in this process (real TLS over loopback,
real watchdog observers, real SQLite files), drops sample documents into outboxes as a clerk
would, and reports each delivery once its signed receipt has been verified — by the sending
node, and again here from the receipt file in ``sent/`` and the recipient's public card only.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lienthong.config.offices import OFFICES
from lienthong.config.schema import NodeConfig, parse_address
from lienthong.keys.card import read_card
from lienthong.keys.directory import Peer
from lienthong.keys.errors import KeystoreError
from lienthong.keys.identity import NodeKeys
from lienthong.keys.keystore import load_keystore, read_passphrase
from lienthong.node.core.clock import rfc3339
from lienthong.node.identity.provision import NewNode, create_node_home, write_card

MARKER = ".lienthong-demo"


@dataclass(frozen=True, slots=True)
class SampleDocument:
    sender: str
    target: str
    name: str
    text: str
    size: int = 0  # when set, the document is padded to this many bytes (a publication)
    sidecar: str = ""  # NAME.meta.toml written first, as a document system would


SAMPLES = (
    SampleDocument("tinhuy", "all", "Nghị quyết 12-NQ-TU về chuyển đổi số.txt",
                   "NGHỊ QUYẾT số 12-NQ/TU của Ban Thường vụ Tỉnh ủy về chuyển đổi số.\n",
                   sidecar='type = "nghị quyết"\nnumber = "12-NQ/TU"\n'
                           'issuer = "Ban Thường vụ Tỉnh ủy"\ndate = "20/11/2026"\n'
                           'subject = "Về đẩy mạnh chuyển đổi số giai đoạn 2026-2030"\n'
                           'urgency = "hỏa tốc"\n'),
    SampleDocument("ubnd", "hdnd", "Chỉ thị 05-CT-UBND phòng chống thiên tai.txt",
                   "CHỈ THỊ số 05/CT-UBND về công tác phòng, chống thiên tai năm 2027.\n",
                   sidecar='type = "chỉ thị"\nnumber = "05/CT-UBND"\nurgency = "khẩn"\n'),
    SampleDocument("hdnd", "tinhuy+ubnd", "Báo cáo kết quả kỳ họp thứ 9.txt",
                   "BÁO CÁO kết quả kỳ họp thứ 9, Hội đồng nhân dân tỉnh khóa XI.\n",
                   sidecar='type = "báo cáo"\nnumber = "88/BC-HĐND"\n'),
    SampleDocument("ubnd", "all", "Niên giám thống kê 2026.pdf",
                   "%PDF-1.7\n% Niên giám thống kê tỉnh năm 2026\n", size=6 * 1024 * 1024,
                   sidecar='type = "ấn phẩm"\nsubject = "Niên giám thống kê tỉnh năm 2026"\n'),
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_folder(folder: Path) -> None:
    """Start from an empty demo folder; refuse to wipe anything that is not an old demo."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).exists():
            raise ValueError(f"{folder} exists and is not a lienthong demo folder; "
                             "choose another with --dir")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("created by lienthong demo\n")


def create_network(folder: Path, *, now: str,
                   kdf: str = "interactive") -> dict[str, NewNode]:
    """Create the three homes and enrol each with the other two. Returns name → NewNode."""
    from lienthong.node.store.database import open_store
    homes = {}
    for office in OFFICES:
        port = free_port()
        others = [o.name for o in OFFICES if o.name != office.name]
        homes[office.name] = create_node_home(
            folder / office.name, name=office.name, display_name=office.display_name,
            listen=f"127.0.0.1:{port}", advertise=[f"127.0.0.1:{port}"], passphrase=None,
            now=now, kdf=kdf, groups={"all": others})
    for office in OFFICES:
        store = open_store(homes[office.name].config.store.url)
        try:
            for other in OFFICES:
                if other.name == office.name:
                    continue
                card = read_card(homes[other.name].card_path.read_text())
                store.add_peer(Peer.from_card(card, now=now), card.token, now)
        finally:
            store.close()
    return homes


def listening_anywhere(config: NodeConfig) -> NodeConfig:
    """The office's configuration with its listening port left to the system (port 0): a port
    chosen beforehand and released can be taken by another program before the node listens
    on it, as happened on a busy machine. The port actually bound is then written back with
    ``settle_address``."""
    host, _port = parse_address(config.node.listen, where="node.listen")
    return replace(config, node=replace(config.node, listen=f"{host}:0"))


def settle_address(config: NodeConfig, node_keys: NodeKeys, port: int, *, now: str) -> str:
    """Write the port a demo office really listens on into its configuration file and its
    peer card (so ``lienthong run`` on the home later uses it); return its address."""
    host, old_port = parse_address(config.node.listen, where="node.listen")
    address = f"{host}:{port}"
    text = config.source.read_text(encoding="utf-8")
    config.source.write_text(text.replace(f'"{host}:{old_port}"', f'"{address}"'),
                             encoding="utf-8")
    write_card(replace(config, node=replace(config.node, listen=address,
                                            advertise=(address,))), node_keys, now=now)
    return address


def settle_status_address(config: NodeConfig, address: str) -> str:
    """Write the address a demo office's status listener (its web pages) really took into its
    ``[status] listen``, so the page address the demo prints is the one ``lienthong run`` on
    the home listens on again; return it."""
    text = config.source.read_text(encoding="utf-8")
    head, marker, section = text.partition("[status]")
    if not marker:
        return address
    section = re.sub(r'(?m)^listen = "[^"\n]*"$', f'listen = "{address}"', section, count=1)
    config.source.write_text(head + marker + section, encoding="utf-8")
    return address


def write_sample(outbox: Path, sample: SampleDocument) -> Path:
    """Write like a careful program: a hidden temporary name, then a rename into place."""
    folder = outbox / sample.target
    folder.mkdir(parents=True, exist_ok=True)
    data = sample.text.encode("utf-8")
    if sample.size:
        block = hashlib.sha256(data).digest() * 2048
        data = (data + block * (sample.size // len(block) + 1))[:sample.size]
    if sample.sidecar:
        sidecar_tmp = folder / f".{sample.name}.meta.part"
        sidecar_tmp.write_text(sample.sidecar, encoding="utf-8")
        os.rename(sidecar_tmp, folder / f"{sample.name}.meta.toml")
    tmp = folder / f".{sample.name}.part"
    tmp.write_bytes(data)
    final = folder / sample.name
    os.rename(tmp, final)
    return final


def open_keys(config: NodeConfig) -> NodeKeys:
    """The keys of a demo office, opened with the passphrase file its home was created with."""
    passphrase = read_passphrase(env={}, passphrase_file=config.keystore.passphrase_file,
                                 credentials_dir=None)
    if passphrase is None:
        raise KeystoreError("{home} has no keystore passphrase file: is it a demo office "
                            "home?", home=config.home)
    return load_keystore(config.keystore.path, passphrase)


def wall_now() -> str:
    return rfc3339(time.time())


Reporter = Callable[[str], None]
