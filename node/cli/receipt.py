"""``lienthong receipt verify``: check one receipt offline, with only the signer's card.

An auditor's command: no network, no passphrase, no running daemon. It exits with status 1
when the receipt does not verify (or does not name the --document given), so a script can rely
on the exit status alone; docs/audit.md shows how to do the same without lienthong.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import click
import nacl.signing

from lienthong.keys.card import read_card
from lienthong.keys.errors import KeysError
from lienthong.node.cli.audit import peer_names
from lienthong.node.cli.common import CliError, home_option, open_config
from lienthong.node.language.text import Phrase, from_error
from lienthong.node.status.gather import own_card
from lienthong.node.store.database import open_store
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.receipt import decode_receipt, verify_receipt


@click.group(cls=click.Group)
def receipt() -> None:
    """Check a receipt, offline."""


@receipt.command("verify")
@click.argument("receipt_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--card", "card_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="The signer's peer card (else: this node's key history).")
@click.option("--document", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Also check that this file is the document receipted.")
@home_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def receipt_verify(receipt_file: Path, card_file: Path | None, document: Path | None,
                   home: Path | None, as_json: bool) -> None:
    """Verify RECEIPT_FILE's signature with the signer's public card only (no network, no
    passphrase), and optionally that --document is the file it names. Exits 1 if not."""
    try:
        token = receipt_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(Phrase("cannot read {receipt_file}: {error}", receipt_file=receipt_file,
                              error=from_error(exc))) from None
    try:
        claimed = decode_receipt(token)
    except ProtocolError as exc:
        _fail(as_json, f"{receipt_file} is not a lienthong receipt: {exc}")
        return
    keys, signer = _signer_keys(claimed.recipient, card_file, home)
    error: Exception | None = None
    for key in keys:
        try:
            info = verify_receipt(token, key, recipient=claimed.recipient)
            break
        except ProtocolError as exc:
            error = exc
    else:
        _fail(as_json, f"the receipt does NOT verify with {signer}'s key: {error}")
        return
    problems = []
    if document is not None:
        digest, length = _digest(document)
        if digest != info.sha256:
            problems.append(f"{document} has SHA-256 {digest}, the receipt names {info.sha256}")
        elif length != info.size:
            problems.append(f"{document} is {length} bytes, the receipt names {info.size}")
    result = {"valid": not problems, "signer": signer, "message_id": info.message_id,
              "sender": info.sender, "recipient": info.recipient, "sha256": info.sha256,
              "size": info.size, "status": info.status, "time": info.time,
              "header_sha256": info.header_sha256, "problems": problems}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for problem in problems:
            click.echo(f"✗ {problem}")
        click.echo(("✓ Valid receipt" if not problems else "✗ The signature is valid but")
                   + f", signed by {signer} ({info.recipient}) at {info.time}:")
        click.echo(f"  message {info.message_id} from {info.sender}")
        click.echo(f"  document SHA-256 {info.sha256}, {info.size} bytes, status {info.status}")
        if document is not None and not problems:
            click.echo(f"  {document} is exactly that document.")
    if problems:
        sys.exit(1)


def _fail(as_json: bool, message: str) -> None:
    if as_json:
        click.echo(json.dumps({"valid": False, "problems": [message]}, indent=2))
    else:
        click.echo(f"✗ {message}")
    sys.exit(1)


def _signer_keys(recipient: str, card_file: Path | None, home: Path | None
                 ) -> tuple[list[nacl.signing.VerifyKey], str]:
    if card_file is not None:
        try:
            card = read_card(card_file.read_bytes())
        except (OSError, KeysError) as exc:
            raise CliError(Phrase("{card_file}: {error}", card_file=card_file,
                                  error=from_error(exc))) from None
        return [nacl.signing.VerifyKey(card.identity_public)], card.name
    config = open_config(home)
    own = own_card(config)
    if own.node_id == recipient:
        return [nacl.signing.VerifyKey(own.identity_public)], own.name
    store = open_store(config.store.url)
    try:
        history = [k for k in store.key_history(recipient) if k.kind == "identity"]
        name = peer_names(store).get(recipient, recipient)
    finally:
        store.close()
    if not history:
        raise CliError(Phrase("the receipt is signed as {recipient}, which this node has never "
                              "known; give the signer's card with --card", recipient=recipient))
    return [nacl.signing.VerifyKey(k.public_bytes) for k in history], name


def _digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    length = 0
    with path.open("rb") as source:
        while block := source.read(1024 * 1024):
            digest.update(block)
            length += len(block)
    return digest.hexdigest(), length

