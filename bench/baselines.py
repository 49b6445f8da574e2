"""What an office would otherwise use, and the raw limits, measured on the same machine and files.

* ``Sshd``: a throwaway OpenSSH server on a loopback port, with its own host key, one
  authorized key and a config in a temporary folder; it is killed at the end. ``scp`` and
  ``rsync -a --fsync -e ssh`` run against it (127.0.0.1 only). When OpenSSH or rsync is not
  installed the baseline is skipped with a note (install: ``apt-get install openssh-server
  openssh-client rsync``).
* ``secretstream_mbps``: libsodium's XChaCha20-Poly1305 secretstream, through PyNaCl, with the
  node's chunk size: the cost of the message layer alone.
* ``sha256_mbps``: hashlib SHA-256, which the node runs over plaintext and ciphertext.
* ``tcp_mbps``: a plain loopback TCP stream between two Python processes: the cost of moving
  bytes through the kernel with no encryption at all.
"""
from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nacl.bindings as sodium

from lienthong.protocol.layout import DEFAULT_CHUNK_SIZE

INSTALL_HINT = "apt-get install openssh-server openssh-client rsync"
MB = 1_000_000


class Skipped(Exception):
    """A baseline that cannot run here; the message says why and how to fix it."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _find(name: str, *extra: str) -> str | None:
    return shutil.which(name) or next((p for p in extra if os.access(p, os.X_OK)), None)


class Sshd:
    """A throwaway sshd on 127.0.0.1:<port>; use as a context manager."""

    def __init__(self) -> None:
        self.sshd = _find("sshd", "/usr/sbin/sshd")
        self.ssh = _find("ssh")
        self.keygen = _find("ssh-keygen")
        missing = [n for n, p in (("sshd", self.sshd), ("ssh", self.ssh),
                                  ("ssh-keygen", self.keygen)) if p is None]
        if missing:
            raise Skipped(f"OpenSSH not found ({', '.join(missing)}); install: {INSTALL_HINT}")
        self.folder = Path(tempfile.mkdtemp(prefix="lienthong-bench-sshd-"))
        self.port = _free_port()
        self.user = getpass.getuser()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Sshd:
        folder = self.folder
        for key in ("host_key", "client_key"):
            subprocess.run([self.keygen, "-q", "-t", "ed25519", "-N", "", "-f",
                            str(folder / key)], check=True)
        (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
        os.chmod(folder / "authorized_keys", 0o600)
        (folder / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nPermitRootLogin prohibit-password\n"
            "Subsystem sftp internal-sftp\n")
        # sshd refuses to start without its privilege-separation folder (Debian: /run/sshd).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.process = subprocess.Popen([self.sshd, "-D", "-e", "-f",
                                         str(folder / "sshd_config")],
                                        stdout=subprocess.DEVNULL,
                                        stderr=open(folder / "sshd.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Skipped(f"sshd did not start: {(folder / 'sshd.log').read_text()[-500:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise Skipped("sshd did not listen within 10 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def ssh_options(self) -> list[str]:
        return ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                "-i", str(self.folder / "client_key")]

    def target(self, path: Path) -> str:
        return f"{self.user}@127.0.0.1:{path}"


def scp_seconds(sshd: Sshd, source: Path, destination: Path) -> float:
    """Copy one file with scp to the throwaway sshd; wall seconds."""
    scp = _find("scp")
    if scp is None:
        raise Skipped(f"scp not found; install: {INSTALL_HINT}")
    start = time.perf_counter()
    subprocess.run([scp, "-q", "-P", str(sshd.port), *sshd.ssh_options(), str(source),
                    sshd.target(destination)], check=True)
    return time.perf_counter() - start


def rsync_seconds(sshd: Sshd, source: Path, destination: Path) -> float:
    """``rsync -a --fsync -e ssh`` a folder's files to the throwaway sshd; wall seconds."""
    rsync = _find("rsync")
    if rsync is None:
        raise Skipped(f"rsync not found; install: {INSTALL_HINT}")
    remote_shell = " ".join([sshd.ssh or "ssh", "-p", str(sshd.port), *sshd.ssh_options()])
    destination.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run([rsync, "-a", "--fsync", "-e", remote_shell, f"{source}/",
                    sshd.target(destination) + "/"], check=True)
    return time.perf_counter() - start


def secretstream_mbps(total: int = 512 << 20, chunk: int = DEFAULT_CHUNK_SIZE) -> float:
    """Encrypt ``total`` bytes with secretstream in the node's chunk size; MB/s."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_push(state, os.urandom(32))
    block, ad = os.urandom(chunk), os.urandom(16)
    push = sodium.crypto_secretstream_xchacha20poly1305_push
    tag = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
    start = time.perf_counter()
    for _ in range(total // chunk):
        push(state, block, ad, tag)
    return total / (time.perf_counter() - start) / MB


def sha256_mbps(total: int = 512 << 20, block_size: int = 1 << 20) -> float:
    block, digest = os.urandom(block_size), hashlib.sha256()
    start = time.perf_counter()
    for _ in range(total // block_size):
        digest.update(block)
    return total / (time.perf_counter() - start) / MB


_TCP_SINK = """
import socket, sys
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
buf = bytearray(1 << 20)
total = 0
while n := conn.recv_into(buf):
    total += n
conn.sendall(total.to_bytes(8, "big"))
"""


def tcp_mbps(total: int = 1 << 30, block_size: int = 1 << 20) -> float:
    """Stream ``total`` bytes over loopback TCP to another Python process; MB/s to its ack."""
    sink = subprocess.Popen([sys.executable, "-c", _TCP_SINK], stdout=subprocess.PIPE)
    try:
        port = int(sink.stdout.readline())  # type: ignore[union-attr]
        block = os.urandom(block_size)
        with socket.create_connection(("127.0.0.1", port)) as conn:
            start = time.perf_counter()
            for _ in range(total // block_size):
                conn.sendall(block)
            conn.shutdown(socket.SHUT_WR)
            got = int.from_bytes(conn.recv(8), "big")
            seconds = time.perf_counter() - start
        if got != total:
            raise RuntimeError(f"the TCP sink counted {got} of {total} bytes")
        return total / seconds / MB
    finally:
        sink.wait(timeout=10)
