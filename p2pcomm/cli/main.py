"""The ``p2pcomm`` command.

    p2pcomm demo                         a guided tour in a temporary folder
    p2pcomm keygen KEYFILE [--passphrase-file F]
    p2pcomm id KEYFILE                   print the member id of a key file
    p2pcomm group create --key KEYFILE --store DB [--name NAME]
    p2pcomm post --key KEYFILE --store DB --group ID TEXT
    p2pcomm log --store DB --group ID    list a group's entries
    p2pcomm verify --store DB [--group ID]
    p2pcomm run --key KEYFILE --store DB [--listen HOST:PORT] [--peer HOST:PORT ...]

Every user mistake (a missing file, a bad id, a wrong passphrase) ends with a one-line
message on stderr and exit status 1 (2 for a malformed command line); never a traceback.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..core.identity import KeyPair, MemberId
from ..errors import P2PCommError
from ..group import GroupLog
from ..keys import generate_keypair, load_keypair, save_keypair
from ..store import SqliteStore
from .demo import run_demo

KIND_TEXT = 16


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def _read_passphrase(path: str | None, *, confirm: bool) -> str | None:
    if path is None:
        return None
    if path == "-":
        if not sys.stdin.isatty():
            return sys.stdin.readline().rstrip("\n")
        first = getpass.getpass("passphrase: ")
        if confirm and getpass.getpass("again: ") != first:
            raise CliError("the two passphrases differ")
        return first
    try:
        return Path(path).read_text().rstrip("\n")
    except OSError as exc:
        raise CliError(f"cannot read passphrase file {path}: {exc.strerror}") from None


def _load_key(path: str, passphrase_file: str | None) -> KeyPair:
    try:
        return load_keypair(path, passphrase=_read_passphrase(passphrase_file, confirm=False))
    except FileNotFoundError:
        raise CliError(f"no key file at {path} (create one with: p2pcomm keygen {path})") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory, not a key file") from None
    except PermissionError:
        raise CliError(f"permission denied reading {path}") from None


def _group_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise CliError(f"group id must be 64 hex characters, found {text!r}") from None
    if len(raw) != 32:
        raise CliError(f"group id must be 64 hex characters, found {len(text)}")
    return raw


def _open_store(path: str, *, must_exist: bool) -> SqliteStore:
    if must_exist and not Path(path).exists():
        raise CliError(f"no store at {path}")
    return SqliteStore(path)


def cmd_keygen(args: argparse.Namespace) -> int:
    passphrase = _read_passphrase(args.passphrase_file, confirm=True)
    kp = generate_keypair()
    try:
        save_keypair(args.keyfile, kp, passphrase=passphrase, overwrite=args.force)
    except FileExistsError:
        raise CliError(f"{args.keyfile} exists; use --force to replace it") from None
    except OSError as exc:
        raise CliError(f"cannot write {args.keyfile}: {exc.strerror}") from None
    print(kp.id.text())
    return 0


def cmd_id(args: argparse.Namespace) -> int:
    print(_load_key(args.keyfile, args.passphrase_file).id.text())
    return 0


def cmd_group_create(args: argparse.Namespace) -> int:
    kp = _load_key(args.key, args.passphrase_file)
    with _open_store(args.store, must_exist=False) as store:
        log = GroupLog.create(store, kp, body=args.name.encode())
    print(log.group.hex())
    return 0


def cmd_post(args: argparse.Namespace) -> int:
    kp = _load_key(args.key, args.passphrase_file)
    with _open_store(args.store, must_exist=True) as store:
        group = _group_id(args.group)
        if store.count(group) == 0:
            raise CliError(f"the store holds no group {args.group}")
        entry = GroupLog(store, group).append(kp, KIND_TEXT, args.text.encode())
    print(entry.id.hex())
    return 0


def _describe_body(body: bytes | None, size: int) -> str:
    if body is None:
        return f"(body of {size} bytes not held)"
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return f"({size} bytes)"
    return repr(text if len(text) <= 60 else text[:57] + "...")


def cmd_log(args: argparse.Namespace) -> int:
    with _open_store(args.store, must_exist=True) as store:
        group = _group_id(args.group)
        count = 0
        for _, e in store.iter_entries(group):
            h = e.header
            when = datetime.datetime.fromtimestamp(h.timestamp / 1000, datetime.UTC)
            print(
                f"{e.id.hex()[:16]}  {MemberId(h.author).short()}  #{h.seq:<4} kind {h.kind:<3} "
                f"{when:%Y-%m-%d %H:%M:%S}  {_describe_body(e.body, h.body_size)}"
            )
            count += 1
        if count == 0:
            raise CliError(f"the store holds no group {args.group}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with _open_store(args.store, must_exist=True) as store:
        groups = [_group_id(args.group)] if args.group else store.groups()
        problems = store.integrity_check()
        for p in problems:
            print(f"sqlite: {p}")
        failed = bool(problems)
        for g in groups:
            report = GroupLog(store, g).verify()
            status = "ok" if report.ok else "FAILED"
            print(
                f"group {g.hex()[:16]}: {report.entries} entries, {report.bodies_checked} bodies checked, "
                f"{report.bodies_dropped} dropped: {status}"
            )
            for p in report.problems[:20]:
                print(f"  {p}")
            failed |= not report.ok
    return 1 if failed else 0


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CliError(f"address must be HOST:PORT, found {text!r}")
    return host, int(port)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a node: listen, dial peers, replicate, print events until interrupted."""
    import trio

    from ..core.identity import MemberId as _MemberId
    from ..net.node import EntriesAdded, GroupSynced, PeerDown, PeerUp, open_node

    kp = _load_key(args.key, args.passphrase_file)
    host, port = _address(args.listen)
    peers = [_address(p) for p in args.peer]
    groups = [_group_id(g) for g in args.group] if args.group else None

    async def serve() -> None:
        with _open_store(args.store, must_exist=True) as store:
            async with open_node(
                store, kp, groups=groups, host=host, port=port, peers=peers
            ) as node:
                h, p = node.address
                print(f"node {kp.id.text()} listening on {h}:{p}", flush=True)
                for g in node.logs:
                    print(f"replicating group {g.hex()}", flush=True)
                async for event in node.subscribe():
                    if isinstance(event, PeerUp):
                        print(
                            f"peer up    {_MemberId(event.peer_id).short()} {event.address[0]}:{event.address[1]}",
                            flush=True,
                        )
                    elif isinstance(event, PeerDown):
                        print(
                            f"peer down  {_MemberId(event.peer_id).short()} ({event.reason})",
                            flush=True,
                        )
                    elif isinstance(event, GroupSynced):
                        print(
                            f"synced     group {event.group.hex()[:16]} with {_MemberId(event.peer_id).short()}",
                            flush=True,
                        )
                    elif isinstance(event, EntriesAdded):
                        origin = _MemberId(event.origin).short() if event.origin else "local"
                        print(
                            f"entries    {len(event.entries)} in group {event.group.hex()[:16]} from {origin}",
                            flush=True,
                        )

    try:
        trio.run(serve)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.listen}: {exc.strerror}") from None
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2pcomm",
        description="Peer-to-peer micro-communities: signed group logs without a server.",
    )
    parser.add_argument("--version", action="version", version=f"p2pcomm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="a guided tour in a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("keygen", help="create a key file (mode 0600)")
    p.add_argument("keyfile")
    p.add_argument(
        "--passphrase-file", metavar="F", help="protect with the passphrase in F ('-' to type it)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("id", help="print the member id of a key file")
    p.add_argument("keyfile")
    p.add_argument("--passphrase-file", metavar="F")
    p.set_defaults(func=cmd_id)

    p = sub.add_parser("group", help="group commands")
    gsub = p.add_subparsers(dest="group_command", metavar="SUBCOMMAND", required=True)
    g = gsub.add_parser("create", help="start a new group; prints its id")
    g.add_argument("--key", required=True)
    g.add_argument("--passphrase-file", metavar="F")
    g.add_argument("--store", required=True)
    g.add_argument("--name", default="")
    g.set_defaults(func=cmd_group_create)

    p = sub.add_parser("post", help="append a text entry to a group")
    p.add_argument("--key", required=True)
    p.add_argument("--passphrase-file", metavar="F")
    p.add_argument("--store", required=True)
    p.add_argument("--group", required=True, help="group id (hex)")
    p.add_argument("text")
    p.set_defaults(func=cmd_post)

    p = sub.add_parser("log", help="list a group's entries")
    p.add_argument("--store", required=True)
    p.add_argument("--group", required=True, help="group id (hex)")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("run", help="run a node: listen, dial peers, replicate")
    p.add_argument("--key", required=True)
    p.add_argument("--passphrase-file", metavar="F")
    p.add_argument("--store", required=True)
    p.add_argument(
        "--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="default 127.0.0.1:0"
    )
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="dial and keep connected (repeatable)",
    )
    p.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="ID",
        help="only these groups (default: all in the store)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="re-verify every stored entry")
    p.add_argument("--store", required=True)
    p.add_argument("--group", help="only this group (hex id)")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except CliError as exc:
        print(f"p2pcomm: {exc}", file=sys.stderr)
        return 1
    except P2PCommError as exc:
        print(f"p2pcomm: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("p2pcomm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
