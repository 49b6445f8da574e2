"""The ``lienthong`` command line: one entry point, one small function per command.

Console output is for people; ``--json`` (where offered) is for machines. Errors a clerk can
fix are printed as one plain sentence and exit with status 2, never as a traceback: commands
let the node's errors (``NodeError``, node/core/errors.py) and those of the layers below it
(``KeysError``, ``ConfigError``) rise, and ``Commands.invoke``, the edge, turns them into
that sentence. Commands catch only what they handle themselves (a retry, a cleanup, a message
more precise than the error's own).
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from pathlib import Path

import click

from lienthong.config.schema import LANGUAGES, ConfigError, NodeConfig, parse_address
from lienthong.keys.errors import KeysError
from lienthong.node.cli.common import (
    CHOSEN_LANGUAGE,
    CliError,
    clerk_language,
    home_argument,
    home_option,
    new_home,
    open_config,
    wall_clock_now,
)
from lienthong.node.cli.errors import error_sentence
from lienthong.node.core.errors import NodeError
from lienthong.node.language.catalog import DEFAULT_LANGUAGE, checked_language, translate
from lienthong.node.language.extract import summary
from lienthong.node.language.text import Phrase

#: What a clerk can fix, from every layer: the node's own errors and the roots of those below
#: it (keys and config cannot derive from ``NodeError``: they sit under the node).
PLAIN_ERRORS = (NodeError, KeysError, ConfigError)


class Commands(click.Group):
    """The ``lienthong`` group; its ``invoke`` is the edge where errors become a sentence."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Before --help is processed (it is eager): every command's summary in the language
        # asked for (--lang, $LIENTHONG_LANG; else Vietnamese, as no node is read yet).
        if ctx.parent is None:
            show_help_in(self, requested_language(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            # already a sentence and an exit status (CliError, usage errors); a CliError made
            # with a Phrase is said in the clerk's language
            if isinstance(exc, CliError):
                exc.language = clerk_language()
            raise
        except PLAIN_ERRORS as exc:
            language = clerk_language()
            said = CliError(error_sentence(exc, language))
            said.language = language
            raise said from None


def requested_language(args: list[str]) -> str:
    """The language ``--lang`` names on this command line, else $LIENTHONG_LANG, else the
    default."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--lang" and index + 1 < len(args):
            return checked_language(args[index + 1])
        if arg.startswith("--lang="):
            return checked_language(arg.partition("=")[2])
    return checked_language(os.environ.get("LIENTHONG_LANG") or DEFAULT_LANGUAGE)


def show_help_in(command: click.Command, language: str) -> None:
    """Put the first paragraph of every command's help (its summary, the catalog's msgid:
    node/language/extract.py) into ``language``; the English text is kept to start from."""
    original = command.__dict__.setdefault("_english_help", command.help)
    if original:
        first, sep, rest = inspect.cleandoc(original).partition("\n\n")
        shown = translate(language, summary(first))
        command.help = shown + sep + rest if shown != summary(first) else original
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            show_help_in(sub, language)


def _choose_language(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--lang`` is eager, so ``lienthong --lang en --help`` already speaks English."""
    if value:
        ctx.meta[CHOSEN_LANGUAGE] = value


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lienthong")
@click.option("--lang", type=click.Choice(LANGUAGES), default=None, is_eager=True,
              expose_value=False, callback=_choose_language,
              help="Language of what lienthong prints: vi (default: the node's language, "
                   "else Vietnamese) or en.")
def main() -> None:
    """lienthong: signed, end-to-end encrypted, receipted document exchange between offices."""


@main.command()
@home_argument
@click.option("--name", required=True,
              help="Short name of this office (becomes a folder name at peers).")
@click.option("--display-name", default=None, help="Full name shown to people.")
@click.option("--listen", default="0.0.0.0:7701", show_default=True,
              help="HOST:PORT to accept peers on.")
@click.option("--advertise", multiple=True,
              help="HOST:PORT peers should dial (repeatable; default: --listen).")
@click.option("--passphrase-prompt/--generate-passphrase", default=False,
              help="Prompt for the keystore passphrase, or generate one into keys/passphrase "
                   "(0600, default).")
@click.option("--kdf", type=click.Choice(["moderate", "interactive", "sensitive", "minimal"]),
              default="moderate", show_default=True,
              help="Argon2id strength for the keystore ('minimal' is for test suites only).")
@click.option("--store", "store_url", default="", metavar="URL",
              help="Keep the store in this PostgreSQL database (postgresql://USER@HOST/DB) "
                   "instead of SQLite in the home.")
def init(home_arg: Path | None, home: Path | None, name: str, display_name: str | None,
         listen: str, advertise: tuple[str, ...], passphrase_prompt: bool, kdf: str,
         store_url: str) -> None:
    """Create a node home: configuration, encrypted keys, folders, and the peer card."""
    from lienthong.keys.keystore import passphrase_bytes
    from lienthong.node.identity.provision import create_node_home
    home = new_home(home_arg or home)
    advertise = _dialable_advertise(home, listen, advertise)
    passphrase = None
    if os.environ.get("LIENTHONG_PASSPHRASE"):
        passphrase = passphrase_bytes(os.environ["LIENTHONG_PASSPHRASE"])
    elif passphrase_prompt:
        passphrase = passphrase_bytes(click.prompt("Keystore passphrase", hide_input=True,
                                                   confirmation_prompt=True))
    if store_url:
        # Checked before anything is created: a wrong URL or a missing driver is said now,
        # and the database is made ready (migrated) for the first run.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        from lienthong.node.store.database import open_store
        try:
            parsed = make_url(store_url)
        except ArgumentError:
            raise CliError(Phrase("{store_url!r} is not a database URL; write it as "
                                  "postgresql://USER@HOST:5432/DATABASE",
                                  store_url=store_url)) from None
        if parsed.password:
            raise CliError(Phrase("The store URL holds a password, and lienthong.toml is "
                                  "readable by the clerks: leave it out of the URL and put it in "
                                  "the node user's ~/.pgpass file instead (docs/scale.md)."))
        open_store(store_url).close()
    try:
        new = create_node_home(home, name=name, display_name=display_name, listen=listen,
                               advertise=list(advertise) or None, passphrase=passphrase,
                               now=wall_clock_now(), kdf=kdf, store_url=store_url)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    language = clerk_language()
    click.echo(Phrase("Created node {name} in {home}", name=repr(name),
                      home=new.config.home).in_language(language))
    click.echo(Phrase("Node ID: {node_id}", node_id=new.node_id).in_language(language))
    if store_url:
        click.echo(Phrase("Store: {store_url}", store_url=store_url).in_language(language))
    click.echo(Phrase("Peer card: {path}  (give this file to the other offices)",
                      path=new.card_path).in_language(language))
    click.echo(Phrase("Next: lienthong peers add THEIR.card --home {home}; then lienthong run "
                      "{home}", home=new.config.home).in_language(language))


#: Listening addresses that mean "every address of this machine": no other office can dial one.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})


def _dialable_advertise(home: Path, listen: str, advertise: tuple[str, ...]) -> tuple[str, ...]:
    """Without --advertise the card carries --listen; a wildcard there is no address another
    office can dial, so ask for one (or, in a script, refuse with what to add)."""
    from lienthong.config.loader import CONFIG_FILE_NAME
    from lienthong.config.schema import parse_address
    host, _port = parse_address(listen, where="--listen")
    if advertise or host not in WILDCARD_HOSTS or (home / CONFIG_FILE_NAME).exists():
        return advertise
    if not sys.stdin.isatty():
        raise CliError(Phrase("--listen {listen} accepts peers on every address of this machine, "
                              "so it is no address another office can dial; add the one they "
                              "should use, e.g. --advertise 10.1.2.3:7701", listen=listen))
    language = clerk_language()
    click.echo(Phrase("Warning: --listen {listen} accepts peers on every address of this "
                      "machine, but the peer card must carry one address the other offices can "
                      "dial.", listen=listen).in_language(language), err=True)
    return (click.prompt(Phrase("Address the other offices should dial (HOST:PORT)"
                                ).in_language(language)),)


@main.command()
@home_argument
@click.option("--verbose", is_flag=True, help="Also log debug events to stderr.")
@click.option("--standby", is_flag=True,
              help="One of an active/standby pair on a PostgreSQL store: wait for the lease, "
                   "then run (docs/scale.md).")
@click.option("--listen", "listen", default=None, metavar="HOST:PORT",
              help="Listen here instead of [node] listen (each host of a pair its own).")
def run(home_arg: Path | None, home: Path | None, verbose: bool, standby: bool,
        listen: str | None) -> None:
    """Run the node daemon until SIGTERM or Ctrl-C."""
    config = open_config(home_arg or home)
    if listen is not None:
        config = with_listen(config, listen)
    if standby:
        from lienthong.node.app.standby import run_pair_member
        sys.exit(run_pair_member(config, verbose=verbose))
    from lienthong.node.app.process import run_daemon
    sys.exit(run_daemon(config, verbose=verbose))


def with_listen(config: NodeConfig, listen: str) -> NodeConfig:
    """The configuration with another listen address (checked as [node] listen is)."""
    parse_address(listen, where="--listen")  # a ConfigError is said at the edge, translated
    return dataclasses.replace(config, node=dataclasses.replace(config.node, listen=listen))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "to", required=True, help="Peer or group name; several joined with commas.")
@home_option
def send(file: Path, to: str, home: Path | None) -> None:
    """Send FILE: the same pipeline as dropping it into outbox/<peer>/."""
    from lienthong.node.outbox.drop import drop_into_outbox
    config = open_config(home)
    try:
        placed = drop_into_outbox(config, file, [t.strip() for t in to.split(",") if t.strip()])
    except ValueError as exc:
        raise CliError(str(exc)) from None
    click.echo(Phrase("Queued {name} as {placed}; the running node will take it.",
                      name=repr(file.name), placed=placed).in_language(clerk_language(config)))


def _register_subcommands() -> None:
    from lienthong.node.cli.audit import audit
    from lienthong.node.cli.demo import demo
    from lienthong.node.cli.peers import peers
    from lienthong.node.cli.receipt import receipt
    from lienthong.node.cli.status import console, status
    main.add_command(peers)
    main.add_command(demo)
    from lienthong.node.cli.documents import mark, message, recall, track
    for command in (message, mark, recall, track):
        main.add_command(command)
    main.add_command(status)
    main.add_command(console)
    main.add_command(audit)
    from lienthong.node.cli.review import reconcile, witnesses
    audit.add_command(witnesses)
    main.add_command(reconcile)
    main.add_command(receipt)
    from lienthong.node.cli.edxml import export
    main.add_command(export)
    from lienthong.node.cli.coordination import deadlines, programmes
    main.add_command(deadlines)
    main.add_command(programmes)
    from lienthong.node.cli.report import report
    main.add_command(report)
    from lienthong.node.cli.petitions import petitions
    main.add_command(petitions)
    from lienthong.node.cli.keys import backup, keys, restore
    main.add_command(keys)
    main.add_command(backup)
    main.add_command(restore)
    from lienthong.node.cli.web import web
    main.add_command(web)


_register_subcommands()
