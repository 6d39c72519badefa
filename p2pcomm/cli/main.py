"""The ``p2pcomm`` command.

A person's path::

    p2pcomm init --name alice                 # a home: key, store (0700 / 0600)
    p2pcomm group create "Garden club"
    p2pcomm invite "Garden club" --address 192.168.1.20:7447     # prints a code
    p2pcomm run                               # the node: listens, replicates, serves
    p2pcomm post "Garden club" "Seed swap on Saturday"
    p2pcomm read "Garden club"

and on the invitee's machine::

    p2pcomm init --name bob
    p2pcomm join CODE
    p2pcomm run

``p2pcomm run`` is the long-running node; it serves a control socket in the home
(docs/control-protocol.md). The other commands go through it when it runs, so what
they write reaches peers at once, and open the store themselves when it does not, with
the same results. Every command that prints data takes ``--json``.

Every user mistake or environmental failure ends with one line on stderr and an exit
status from :class:`Exit` (``p2pcomm help exit-codes``); never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.identity import KeyPair, MemberId
from ..core.invitation import InvitationCode
from ..errors import (
    BundleError,
    ControlError,
    DecodeError,
    ErrorCode,
    IdentityError,
    NotFoundError,
    P2PCommError,
    RefusedError,
    StoreError,
    ValidationError,
)
from ..keys import generate_keypair, load_keypair, save_keypair
from ..paths import Home, NodeLock, node_lock_held, node_lock_pid
from ..store import SqliteStore
from . import ops
from .demo import run_demo

#: Where a user's node listens by default (all interfaces: the LAN). Taken -> any port.
DEFAULT_LISTEN = "0.0.0.0:7447"


class Exit(enum.IntEnum):
    """Exit statuses; ``p2pcomm help exit-codes`` prints this table."""

    OK = 0
    #: Something failed that none of the others describes (a verify that found damage).
    FAILURE = 1
    #: The command line or a value in it is wrong (a garbled code, text too long).
    USAGE = 2
    #: The command needs the running node (``p2pcomm run``), and it is not running or
    #: does not answer.
    NODE = 3
    #: The group's rules refuse the action (your role does not allow it), or the node
    #: refused this user.
    REFUSED = 4
    #: A group, member, item, home or file named on the command line is not there (or
    #: the name matches several).
    NOT_FOUND = 5
    #: Another process holds what is needed: the store or home is in use, the port is
    #: taken.
    BUSY = 6
    #: No peer could be reached in time.
    NETWORK = 7
    #: Interrupted (Ctrl-C); everything written before is intact.
    INTERRUPTED = 130


_EXIT_HELP = {
    Exit.OK: "success",
    Exit.FAILURE: "failure not covered below (e.g. verify found damage)",
    Exit.USAGE: "wrong command line or value (bad code, text too long, not UTF-8)",
    Exit.NODE: "the command needs the running node, which is not running or not answering",
    Exit.REFUSED: "the group's rules refuse it (your role), or the node refused you",
    Exit.NOT_FOUND: "no such group, member, item, home or file (or the name is ambiguous)",
    Exit.BUSY: "in use by another process (store or home locked, port taken)",
    Exit.NETWORK: "no member could be reached in time",
    Exit.INTERRUPTED: "interrupted (Ctrl-C); the store is intact",
}


class CliError(Exception):
    """A user-facing failure: one line on stderr and ``status``."""

    def __init__(self, message: str, status: Exit = Exit.FAILURE, code: str = "failed") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _status_of(exc: P2PCommError) -> Exit:
    code = exc.code
    if isinstance(exc, RefusedError):
        return Exit.REFUSED
    if isinstance(exc, NotFoundError) or code in (ErrorCode.NOT_FOUND, ErrorCode.AMBIGUOUS):
        return Exit.NOT_FOUND
    if code is ErrorCode.NODE_UNREACHABLE:
        return Exit.NODE
    if code in (ErrorCode.STORE_LOCKED, ErrorCode.ADDRESS_IN_USE):
        return Exit.BUSY
    if code is ErrorCode.TIMEOUT:
        return Exit.NETWORK
    if isinstance(exc, ValidationError | DecodeError | BundleError) or code in (
        ErrorCode.WRONG_PASSPHRASE,
        ErrorCode.PASSPHRASE_REQUIRED,
        ErrorCode.BAD_ID_TEXT,
        ErrorCode.BAD_CHECKSUM,
        ErrorCode.BAD_INVITATION,
        ErrorCode.TOO_LARGE,
    ):
        return Exit.USAGE
    return Exit.FAILURE


# --------------------------------------------------------------------------- output


class Out:
    """Writes results: text for people, or JSON with ``--json``."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json

    def doc(self, obj: Any) -> None:
        print(json.dumps(obj, ensure_ascii=False, sort_keys=True), flush=True)

    def line(self, text: str = "") -> None:
        print(text, flush=True)

    def note(self, text: str) -> None:
        """A message for the person, on stderr (never mixed into data)."""
        print(f"p2pcomm: {text}", file=sys.stderr, flush=True)


def _why(exc: OSError) -> str:
    """An OS error's reason, lower-case like every message here."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _arg_text(value: str, what: str) -> str:
    """Command-line text as proper UTF-8 (Python maps undecodable bytes to surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CliError(f"{what} is not valid UTF-8 text", Exit.USAGE, "bad-text") from None
    return value


# --------------------------------------------------------------------------- homes, keys


def _home(args: argparse.Namespace) -> Home:
    home = Home.resolve(getattr(args, "home", None))
    return home


def _read_passphrase(path: str | None, *, confirm: bool) -> str | None:
    if path is None:
        path = os.environ.get("P2PCOMM_PASSPHRASE_FILE")
        if path is None:
            return None
    if path == "-":
        if not sys.stdin.isatty():
            return sys.stdin.readline().rstrip("\n")
        first = getpass.getpass("passphrase: ")
        if confirm and getpass.getpass("again: ") != first:
            raise CliError("the two passphrases differ", Exit.USAGE)
        return first
    try:
        return Path(path).read_text().rstrip("\n")
    except OSError as exc:
        raise CliError(
            f"cannot read the passphrase file {path}: {_why(exc)}", Exit.NOT_FOUND, "not-found"
        ) from None


def _load_key(home: Home, args: argparse.Namespace) -> KeyPair:
    path = home.key_path
    try:
        return load_keypair(
            path, passphrase=_read_passphrase(getattr(args, "passphrase_file", None), confirm=False)
        )
    except FileNotFoundError:
        raise CliError(
            f"no identity in {home.root} (create one with: p2pcomm init --name YOUR_NAME)",
            Exit.NOT_FOUND,
            "no-home",
        ) from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory, not a key file", Exit.FAILURE) from None
    except PermissionError:
        raise CliError(f"permission denied reading {path}", Exit.REFUSED) from None
    except IdentityError as exc:
        if exc.code is ErrorCode.PASSPHRASE_REQUIRED:
            raise CliError(
                f"{path} is protected by a passphrase: give it with --passphrase-file FILE "
                "('-' to type it) or $P2PCOMM_PASSPHRASE_FILE",
                Exit.USAGE,
                exc.code.value,
            ) from None
        if exc.code is ErrorCode.WRONG_PASSPHRASE:
            raise CliError(
                f"wrong passphrase for {path}: check the passphrase file (or the key file "
                "was altered)",
                Exit.USAGE,
                exc.code.value,
            ) from None
        raise


def _config(home: Home) -> dict[str, Any]:
    try:
        data = json.loads(home.config_path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {home.config_path}: {exc}", Exit.FAILURE) from None
    return data if isinstance(data, dict) else {}


def _save_config(home: Home, config: dict[str, Any]) -> None:
    tmp = home.config_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    os.replace(tmp, home.config_path)


def _remember_peers(home: Home, addresses: Sequence[str]) -> None:
    """Keep addresses (``host:port``) the node should dial from now on."""
    if not addresses:
        return
    config = _config(home)
    peers = [p for p in config.get("peers", []) if isinstance(p, str)]
    for a in addresses:
        if a not in peers:
            peers.append(a)
    config["peers"] = peers
    _save_config(home, config)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise CliError(f"an address is HOST:PORT, found {text!r}", Exit.USAGE, "bad-address")
    if not 0 <= int(port) <= 65535:
        raise CliError(f"a port is 0 to 65535, found {port} in {text!r}", Exit.USAGE, "bad-address")
    return host, int(port)


def _known_peers(home: Home, extra: Sequence[str] = ()) -> list[tuple[str, int]]:
    config = _config(home)
    texts = [p for p in config.get("peers", []) if isinstance(p, str)] + list(extra)
    out: list[tuple[str, int]] = []
    for t in texts:
        try:
            a = _address(t)
        except CliError:
            continue
        if a not in out:
            out.append(a)
    return out


def _require_store(home: Home) -> None:
    if not home.store_path.exists():
        raise CliError(
            f"no store in {home.root} (create one with: p2pcomm init --name YOUR_NAME)",
            Exit.NOT_FOUND,
            "no-home",
        )


@contextmanager
def _open_store(home: Home) -> Iterator[SqliteStore]:
    _require_store(home)
    with SqliteStore(home.store_path) as store:
        yield store


# --------------------------------------------------------------------------- locks

#: A command that works on the store itself (no node runs) holds this lock, then the
#: node lock (so that no node starts meanwhile). Others tell by it "another command is
#: busy here, wait" from "a node holds the home but does not answer".
COMMAND_LOCK = "command.lock"


def _command_lock_path(home: Home) -> Path:
    return home.root / COMMAND_LOCK


def busy_error(home: Home) -> CliError | None:
    """The error for a home whose node lock is held (None when it is free): by another
    command at work (:attr:`Exit.BUSY`), or by a node (:attr:`Exit.NODE`: its control
    socket did not answer, or the caller wanted the lock for itself)."""
    if not node_lock_held(home):
        return None
    command = _command_lock_path(home)
    if node_lock_held(command):
        pid = node_lock_pid(command)
        return CliError(
            f"another p2pcomm command (pid {pid or 'unknown'}) is using {home.root}; "
            "wait for it to finish and try again",
            Exit.BUSY,
            "busy",
        )
    pid = node_lock_pid(home)
    return CliError(
        f"a p2pcomm node runs with {home.root} (pid {pid or 'unknown'}) but does not answer "
        "on its control socket: it may be starting (try again in a moment) or stuck (stop "
        "it and start it again)",
        Exit.NODE,
        "node-stuck",
    )


@contextmanager
def _local_lock(home: Home) -> Iterator[None]:
    """Hold the home for a command working on its store: no node, no other command."""
    command = NodeLock(_command_lock_path(home))
    node = NodeLock(home)
    try:
        command.acquire()
    except StoreError:
        raise busy_error(home) or CliError(
            f"another p2pcomm command is using {home.root}; try again", Exit.BUSY, "busy"
        ) from None
    try:
        try:
            node.acquire()
        except StoreError:
            raise CliError(
                f"a p2pcomm node runs with {home.root} (pid {node_lock_pid(home) or 'unknown'}); "
                "try again once it answers (or stop it)",
                Exit.BUSY,
                "busy",
            ) from None
        try:
            yield
        finally:
            node.release()
    finally:
        command.release()


# --------------------------------------------------------------------------- dispatch


#: Methods that only read the store: they run beside another command at work (SQLite
#: readers do not wait for its writer), so a long join or import does not block them.
_READ_ONLY = frozenset({"id", "groups", "group.info", "read", "members", "status"})


def _dispatch(args: argparse.Namespace, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run ``method`` through the running node, or on the store when none runs."""
    from .client import ControlClient

    home = _home(args)
    _kind, where = ops.METHODS[method]
    try:
        client = ControlClient.connect(home.socket_path)
    except ControlError as exc:
        if exc.code is not ErrorCode.NODE_UNREACHABLE:
            raise
        busy = busy_error(home)
        if busy is not None and busy.status is Exit.NODE:
            raise busy from None
        if where == "node":
            raise CliError(
                f"this needs the running node, and none runs with {home.root} "
                "(start it with: p2pcomm run)",
                Exit.NODE,
                "node-not-running",
            ) from None
        if busy is not None and method not in _READ_ONLY:
            raise busy from None
        return _run_local(args, home, method, params)
    # A join waits for a member's node (the node gives up after JOIN_TIMEOUT); other
    # calls answer at once, unless the node is stuck.
    timeout = ops.JOIN_TIMEOUT + 15 if method == "join" else 30.0
    with client:
        return client.call(method, params, timeout=timeout)


def _run_local(
    args: argparse.Namespace, home: Home, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    import trio

    kp = _load_key(home, args)
    name = ops.home_display_name(home.config_path)
    _require_store(home)
    lock = contextlib.nullcontext() if method in _READ_ONLY else _local_lock(home)
    with lock, _open_store(home) as store:
        with _progress(Out(bool(getattr(args, "json", False))), "entries fetched") as tick:
            backend = ops.LocalBackend(
                kp,
                store,
                display_name=name,
                known_peers=_known_peers(home),
                on_progress=lambda text: print(f"p2pcomm: {text}", file=sys.stderr, flush=True),
                on_fetched=tick,
            )
            result: dict[str, Any] = trio.run(ops.call, backend, method, params)
        return result


# --------------------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace, out: Out) -> int:
    from ..core.membership import MAX_NAME

    home = _home(args)
    name = _arg_text(args.name or "", "the name").strip()
    if len(name.encode()) > MAX_NAME:
        raise CliError(
            f"the name is {len(name.encode())} utf-8 bytes, at most {MAX_NAME} allowed",
            Exit.USAGE,
            "too-large",
        )
    try:
        home.ensure()
    except OSError as exc:
        raise CliError(
            f"cannot create the home {home.root}: {_why(exc)} (choose another with --home)",
            Exit.REFUSED if isinstance(exc, PermissionError) else Exit.FAILURE,
            "cannot-create",
        ) from None
    if home.key_path.exists():
        raise CliError(
            f"{home.root} already holds an identity (p2pcomm id shows it); "
            "use another --home for another identity",
            Exit.USAGE,
            "exists",
        )
    passphrase = _read_passphrase(args.passphrase_file, confirm=True)
    kp = generate_keypair()
    save_keypair(home.key_path, kp, passphrase=passphrase)
    SqliteStore(home.store_path).close()
    config = _config(home)
    config["name"] = name
    _save_config(home, config)
    if out.json:
        out.doc({"id": kp.id.text(), "name": name, "home": str(home.root)})
    else:
        out.line(kp.id.text())
        out.note(
            f"identity created in {home.root}; next: p2pcomm group create NAME, "
            "or p2pcomm join CODE"
        )
    return 0


def cmd_id(args: argparse.Namespace, out: Out) -> int:
    home = _home(args)
    kp = _load_key(home, args)
    name = ops.home_display_name(home.config_path)
    if out.json:
        out.doc({"id": kp.id.text(), "name": name, "home": str(home.root)})
    else:
        out.line(kp.id.text())
    return 0


def _short(member_text: str) -> str:
    return member_text[:11]


def cmd_group_create(args: argparse.Namespace, out: Out) -> int:
    name = _arg_text(args.name, "the name").strip()
    if not name:
        raise CliError("a group needs a name: p2pcomm group create NAME", Exit.USAGE, "empty-name")
    history = "since-join" if args.since_join else "full"
    r = _dispatch(args, "group.create", {"name": name, "history": history})
    if out.json:
        out.doc(r)
    else:
        out.line(r["id"])
        out.note(f"created group {r['name']!r}; invite people with: p2pcomm invite {r['id'][:12]}")
    return 0


def cmd_group_list(args: argparse.Namespace, out: Out) -> int:
    r = _dispatch(args, "groups", {})
    if out.json:
        out.doc(r)
    else:
        for g in r["groups"]:
            name = repr(g["name"]) if g["name"] else "(name sealed: no key for it here)"
            out.line(
                f"{g['id'][:16]}  {name}  {_plural(g['members'], 'member')}  "
                f"{_plural(g['entries'], 'entry').replace('entrys', 'entries')}  "
                f"you: {g['role'] or 'not a member'}"
            )
        if not r["groups"]:
            out.note("no groups yet (p2pcomm group create NAME, or p2pcomm join CODE)")
    return 0


def cmd_group_info(args: argparse.Namespace, out: Out) -> int:
    r = _dispatch(args, "group.info", {"group": args.group})
    if out.json:
        out.doc(r)
    else:
        out.line(f"{r['name'] or '(name sealed: no key for it here)'}  ({r['id']})")
        if r["description"]:
            out.line(r["description"])
        if r["rules"]:
            out.line(f"rules: {r['rules']}")
        entries = _plural(r["entries"], "entry").replace("entrys", "entries")
        out.line(
            f"{_plural(r['members'], 'member')}, {entries}; you: {r['role'] or 'not a member'}"
        )
        for m in r["members_list"]:
            out.line(f"  {m['role']:<9} {m['name'] or '-':<16} {m['id']}")
    return 0


_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def _duration_ms(text: str) -> int:
    parts = _DURATION.findall(text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s", "", text.lower()):
        raise CliError(
            f"a duration is like 30m, 12h, 7d or 1d12h; found {text!r}", Exit.USAGE, "bad-duration"
        )
    total = sum(int(n) * _UNIT_MS[u] for n, u in parts)
    if total <= 0:
        raise CliError("a duration must be longer than zero", Exit.USAGE, "bad-duration")
    return total


def cmd_invite(args: argparse.Namespace, out: Out) -> int:
    for a in args.address:
        _address(a)
    params: dict[str, Any] = {
        "group": args.group,
        "role": args.role,
        "uses": args.uses,
        "addresses": args.address,
    }
    if args.expires is not None:
        params["expires_ms"] = _duration_ms(args.expires)
    r = _dispatch(args, "invite", params)
    if out.json:
        out.doc(r)
    else:
        out.line(r["code"])
        uses = "unlimited uses" if r["uses"] == 0 else f"{r['uses']} use(s)"
        out.note(
            f"invitation for a {r['role']}, {uses}"
            + ("" if r["addresses"] else "; no address in it: the invitee needs --peer")
        )
    return 0


def cmd_join(args: argparse.Namespace, out: Out) -> int:
    text = _arg_text(args.code, "the code")
    code = InvitationCode.parse(text)  # a garbled code fails here, before anything else
    home = _home(args)
    _remember_peers(home, list(code.hints) + list(args.peer))
    if not out.json:
        where = ", ".join(code.hints + tuple(args.peer)) or "known peers"
        out.note(f"joining group {code.group.hex()[:16]} via {where} ...")
    r = _dispatch(args, "join", {"code": text})
    if out.json:
        out.doc(r)
    else:
        out.line(r["id"])
        out.note(
            f"joined {r['name']!r} as {r['role']}: a member's node holds your join; "
            "run 'p2pcomm run' to stay in sync"
        )
    return 0


def _write(args: argparse.Namespace, out: Out, method: str, params: dict[str, Any]) -> int:
    r = _dispatch(args, method, params)
    if out.json:
        out.doc(r)
    else:
        out.line(r["id"])
    return 0


def _post_text(value: str) -> str:
    text = _arg_text(value, "the text")
    if not text.strip():
        raise CliError("the text is empty: nothing to post", Exit.USAGE, "empty-text")
    return text


def cmd_post(args: argparse.Namespace, out: Out) -> int:
    text = _post_text(args.text)
    return _write(args, out, "post", {"group": args.group, "text": text})


def cmd_reply(args: argparse.Namespace, out: Out) -> int:
    text = _post_text(args.text)
    return _write(args, out, "reply", {"group": args.group, "item": args.item, "text": text})


def cmd_react(args: argparse.Namespace, out: Out) -> int:
    emoji = _arg_text(args.emoji, "the reaction")
    return _write(args, out, "react", {"group": args.group, "item": args.item, "emoji": emoji})


def cmd_moderate(args: argparse.Namespace, out: Out) -> int:
    reason = _arg_text(args.reason, "the reason")
    return _write(
        args, out, args.action, {"group": args.group, "item": args.item, "reason": reason}
    )


def cmd_remove(args: argparse.Namespace, out: Out) -> int:
    reason = _arg_text(args.reason, "the reason")
    return _write(
        args, out, args.action, {"group": args.group, "member": args.member, "reason": reason}
    )


def cmd_role(args: argparse.Namespace, out: Out) -> int:
    return _write(
        args, out, "role", {"group": args.group, "member": args.member, "role": args.role}
    )


def cmd_leave(args: argparse.Namespace, out: Out) -> int:
    return _write(args, out, "leave", {"group": args.group})


def _local_time(ms: int) -> str:
    """A timestamp (ms since the epoch) as this machine's local time, to the minute."""
    import datetime

    try:
        return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return "????-??-?? ??:??"


def _item_line(item: dict[str, Any]) -> str:
    who = item["author_name"] or _short(item["author"])
    when = _local_time(item["timestamp"])
    mark = " (hidden)" if item["hidden"] else ""
    if item["text"] is not None:
        text = item["text"]
    elif item.get("sealed"):
        text = "(sealed: this home holds no key for it yet)"
    else:
        text = "(text not here yet)"
    head = f"{item['id'][:8]}  {when}  {who}"
    if item["parent"]:
        head += f"  re {item['parent'][:8]}"
    reactions = (
        "  " + " ".join(f"{e}{n}" for e, n in item["reactions"].items())
        if item["reactions"]
        else ""
    )
    return f"{head}{mark}: {text}{reactions}"


def cmd_read(args: argparse.Namespace, out: Out) -> int:
    r = _dispatch(args, "read", {"group": args.group, "hidden": args.hidden})
    if out.json:
        out.doc(r)
    else:
        for item in r["items"]:
            out.line(_item_line(item))
        if not r["items"]:
            out.note(f"nothing posted in {r['name']!r} yet")
    return 0


def cmd_tail(args: argparse.Namespace, out: Out) -> int:
    if not args.follow:
        r = _dispatch(args, "read", {"group": args.group, "last": args.lines})
        for item in r["items"]:
            out.doc(item) if out.json else out.line(_item_line(item))
        return 0
    from .client import ControlClient

    home = _home(args)
    try:
        client = ControlClient.connect(home.socket_path)
    except ControlError as exc:
        if exc.code is ErrorCode.NODE_UNREACHABLE:
            raise CliError(
                f"tail --follow needs the running node, and none answers for {home.root} "
                "(start it with: p2pcomm run)",
                Exit.NODE,
                "node-not-running",
            ) from None
        raise
    with client:
        try:
            # Watch first, then read what was there: nothing that arrives in between
            # is missed (an item in both is shown once).
            stream = client.stream("follow", {"group": args.group}, timeout=None)
            following = next(stream, None)  # {"event": "following", "group": ...}
            if out.json and following is not None:
                out.doc(following)  # for scripts: from here on nothing is missed
            with ControlClient.connect(home.socket_path) as reader:
                r = reader.call("read", {"group": args.group, "last": args.lines}, timeout=None)
            shown = set()
            for item in r["items"]:
                shown.add(item["id"])
                out.doc(item) if out.json else out.line(_item_line(item))
            sys.stdout.flush()
            for ev in stream:
                if ev["event"] == "added" and ev["item"]["id"] in shown:
                    continue
                if out.json:
                    out.doc(ev)
                elif ev["event"] == "deleted":
                    out.line(f"{ev['item']['id'][:8]}  (deleted)")
                elif ev["event"] in ("hidden", "added", "updated"):
                    out.line(_item_line(ev["item"]))
                sys.stdout.flush()
        except ControlError as exc:
            if exc.code is not ErrorCode.NODE_UNREACHABLE:
                raise
            raise CliError(
                "the node stopped, so tail --follow ended (start it again with: p2pcomm run)",
                Exit.NODE,
                "node-stopped",
            ) from None
    return 0


def cmd_members(args: argparse.Namespace, out: Out) -> int:
    r = _dispatch(args, "members", {"group": args.group})
    if out.json:
        out.doc(r)
    else:
        for m in r["members"]:
            out.line(f"{m['role']:<9} {m['name'] or '-':<16} {m['id']}")
        for b in r["banned"]:
            out.line(f"{'banned':<9} {'-':<16} {b}")
        for e in r.get("expelled", []):
            out.line(f"{'expelled':<9} {'-':<16} {e['id']} (forked at seq {e['forked_at']})")
    return 0


def _member_id_arg(text: str, what: str) -> str:
    """A member or node id as ``p2pcomm id`` prints it (``pc1...``), checked here so
    that a typo gets its own message."""
    try:
        MemberId.parse(text.strip())
    except P2PCommError as exc:
        raise CliError(
            f"{what} is a node id as 'p2pcomm id' prints it (pc1...): {exc.message}",
            Exit.USAGE,
            "bad-id",
        ) from None
    return text.strip()


def cmd_relay(args: argparse.Namespace, out: Out) -> int:
    if args.relay_command == "list":
        r = _dispatch(args, "relay.list", {"group": args.group})
        if out.json:
            out.doc(r)
        else:
            for relay in r["relays"]:
                out.line(relay)
            if not r["relays"]:
                out.note("no relay carries this group")
        return 0
    relay = _member_id_arg(args.relay, "RELAY")
    method = "relay.grant" if args.relay_command == "grant" else "relay.revoke"
    return _write(args, out, method, {"group": args.group, "relay": relay})


def _group_id_arg(text: str) -> bytes:
    """A whole group id (64 hex digits): what a relay carries before it holds anything
    of the group, so no name or prefix can stand for it."""
    t = text.strip().lower()
    if len(t) != 64 or any(c not in "0123456789abcdef" for c in t):
        raise CliError(
            f"--relay takes a whole group id (64 hex digits, as 'p2pcomm group list' "
            f"prints with --json), found {text!r}",
            Exit.USAGE,
            "bad-group-id",
        )
    return bytes.fromhex(t)


def cmd_peers(args: argparse.Namespace, out: Out) -> int:
    r = _dispatch(args, "peers", {})
    if out.json:
        out.doc(r)
    else:
        for p in r["peers"]:
            out.line(f"connected    {p}")
        for u in r["unreachable"]:
            out.line(
                f"unreachable  {u['address']}  ({u['failures']} failed attempts, "
                f"next in {u['retry_in_s']} s)"
            )
        for d in r.get("discovered", []):
            out.line(
                f"discovered   {d['address']}  (mDNS; {_plural(len(d['groups']), 'shared group')})"
            )
        if not r["peers"] and not r["unreachable"] and not r.get("discovered"):
            out.note("no peers (give the node some with --peer, or join with a code)")
    return 0


def cmd_status(args: argparse.Namespace, out: Out) -> int:
    r = _dispatch(args, "status", {})
    if out.json:
        out.doc(r)
        return 0
    out.line(f"id      {r['id']}")
    if r.get("running"):
        out.line(f"node    running, listening on {r['listening']}, {len(r['peers'])} peers")
        for u in r["unreachable"]:
            out.line(f"        cannot reach {u['address']} ({u['failures']} attempts)")
        if r.get("mdns"):
            found = _plural(len(r.get("discovered", [])), "node")
            out.line(f"mdns    on {', '.join(r['mdns'])}, {found} of your groups found")
    else:
        out.line("node    not running (start it with: p2pcomm run)")
    for g in r["groups"]:
        entries = _plural(g["entries"], "entry").replace("entrys", "entries")
        out.line(f"group   {g['id'][:16]}  {g['name']!r}  {entries}")
    return 0


def cmd_verify(args: argparse.Namespace, out: Out) -> int:
    from ..group import GroupLog

    home = _home(args)
    failed = False
    results: list[dict[str, Any]] = []
    with _open_store(home) as store:
        problems = store.integrity_check()
        failed = bool(problems)
        for g in store.groups():
            with _progress(out, f"verifying {g.hex()[:16]}") as tick:
                report = GroupLog(store, g).verify(progress=tick)
            failed |= not report.ok
            results.append(
                {
                    "group": g.hex(),
                    "entries": report.entries,
                    "bodies_checked": report.bodies_checked,
                    "bodies_dropped": report.bodies_dropped,
                    "ok": report.ok,
                    "problems": report.problems,
                }
            )
    if out.json:
        out.doc({"ok": not failed, "sqlite": problems, "groups": results})
    else:
        for p in problems:
            out.line(f"sqlite: {p}")
        for r in results:
            status = "ok" if r["ok"] else "FAILED"
            out.line(
                f"group {r['group'][:16]}: {r['entries']} entries, "
                f"{r['bodies_checked']} bodies checked, {r['bodies_dropped']} dropped: {status}"
            )
            for p in r["problems"][:20]:
                out.line(f"  {p}")
    return Exit.FAILURE if failed else Exit.OK


@contextmanager
def _progress(out: Out, label: str) -> Iterator[Callable[[int], None]]:
    """A progress report for long work: a line updated in place on a terminal, plain
    lines now and then otherwise; nothing with --json."""
    tty = sys.stderr.isatty() and not out.json
    shown = [0, 0]  # last count printed as a line; whether the in-place line is used

    def tick(done: int) -> None:
        if out.json:
            return
        if tty:
            shown[1] = 1
            print(f"\r{label}: {done:,}", end="", file=sys.stderr, flush=True)
        elif done - shown[0] >= 100_000:
            shown[0] = done
            print(f"{label}: {done:,}", file=sys.stderr, flush=True)

    try:
        yield tick
    finally:
        if shown[1]:
            print(file=sys.stderr)


def cmd_bundle_export(args: argparse.Namespace, out: Out) -> int:
    from ..bundle import export_bundle
    from ..community import find_group

    home = _home(args)
    with _open_store(home) as store:
        try:
            gid = find_group(store, args.group)
        except NotFoundError:
            # An encrypted group's name is sealed: read it with this identity's keys.
            gid = find_group(store, args.group, identity=_load_key(home, args))
        try:
            with _progress(out, "exporting") as tick:
                stats = export_bundle(store, gid, args.file, progress=lambda d, t: tick(d))
        except OSError as exc:
            raise CliError(
                f"cannot write the bundle to {args.file}: {_why(exc)}",
                Exit.REFUSED if isinstance(exc, PermissionError) else Exit.FAILURE,
                "cannot-write",
            ) from None
    if out.json:
        out.doc(
            {
                "group": gid.hex(),
                "file": args.file,
                "entries": stats.entries,
                "fork_proofs": stats.fork_proofs,
                "bytes": stats.bytes,
            }
        )
    else:
        out.line(
            f"{stats.entries} entries, {stats.fork_proofs} fork proofs, {stats.bytes} bytes -> {args.file}"
        )
    return 0


def cmd_bundle_import(args: argparse.Namespace, out: Out) -> int:
    from ..bundle import import_bundle

    home = _home(args)
    if not Path(args.file).is_file():
        raise CliError(f"no bundle file at {args.file}", Exit.NOT_FOUND, "not-found")
    _require_store(home)
    busy = busy_error(home)
    if busy is not None and busy.status is Exit.NODE:
        raise CliError(
            f"a p2pcomm node runs with {home.root}: stop it, import, and start it again "
            "(it then sends what the bundle brought to its peers)",
            Exit.BUSY,
            "busy",
        )
    with _local_lock(home), _open_store(home) as store, _progress(out, "importing") as tick:
        report = import_bundle(store, args.file, progress=lambda d, t: tick(d))
    doc = {
        "group": report.group.hex(),
        "entries": report.entries,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": [
            {
                "index": r.index,
                "entry": None if r.entry_id is None else r.entry_id.hex(),
                "error": r.error.code.value,
                "message": r.error.message,
                "pending": r.pending,
            }
            for r in report.rejected
        ],
        "fork_proofs_accepted": report.fork_proofs_accepted,
        "truncated": report.truncated,
        "complete": report.complete,
    }
    if out.json:
        out.doc(doc)
    else:
        out.line(
            f"group {report.group.hex()[:16]}: {report.accepted} entries imported, "
            f"{report.duplicates} already here, {len(report.rejected)} rejected"
        )
        if report.truncated:
            out.note("the file is truncated: what it held up to the cut was verified and kept")
        for r in report.rejected[:20]:
            out.line(f"  record {r.index}: {r.error}")
    return 0 if report.complete else Exit.FAILURE


def cmd_demo(args: argparse.Namespace, out: Out) -> int:
    return run_demo(keep=args.keep)


def cmd_help(args: argparse.Namespace, out: Out) -> int:
    if args.topic != "exit-codes":
        raise CliError(f"no help topic {args.topic!r} (try: exit-codes)", Exit.USAGE)
    if out.json:
        out.doc({str(int(e)): _EXIT_HELP[e] for e in Exit})
    else:
        for e in Exit:
            out.line(f"{int(e):>4}  {_EXIT_HELP[e]}")
    return 0


# --------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace, out: Out) -> int:
    from .run import run_node

    home = _home(args)
    listen = args.listen or DEFAULT_LISTEN
    host, port = _address(listen)
    for p in args.peer + args.bootstrap:
        _address(p)
    if args.no_mdns and args.interface:
        raise CliError(
            "--interface chooses where mDNS speaks: it cannot go with --no-mdns",
            Exit.USAGE,
            "bad-interface",
        )
    mdns = None if args.no_mdns else _mdns_addresses(host, args.interface, out)
    kp = _load_key(home, args)
    config = _config(home)
    carry = [_group_id_arg(g) for g in args.relay]
    if carry:
        known = [c for c in config.get("relay", []) if isinstance(c, str)]
        config["relay"] = sorted({*known, *(g.hex() for g in carry)})
        _save_config(home, config)
    carry = [bytes.fromhex(g) for g in config.get("relay", []) if _is_group_hex(g)]
    bootstrap = [b for b in config.get("bootstrap", []) if isinstance(b, str)]
    peers = _known_peers(home, [*args.peer, *bootstrap, *args.bootstrap])
    # Where each address came from, for the address book (08 AB1): invitation hints
    # are remembered in config.json by join; the rest the user gave.
    sources: dict[tuple[str, int], str] = {a: "invitation" for a in _known_peers(home)}
    for text in [*bootstrap, *args.bootstrap]:
        sources[_address(text)] = "bootstrap"
    for text in args.peer:
        sources[_address(text)] = "command-line"
    return run_node(
        home,
        kp,
        host=host,
        port=port,
        fallback=args.listen is None,
        peers=peers,
        display_name=ops.home_display_name(home.config_path),
        out=out,
        mdns=mdns,
        sources=sources,
        carry=carry,
    )


def _is_group_hex(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _mdns_addresses(host: str, interfaces: Sequence[str], out: Out) -> tuple[str, ...] | None:
    """Where the node speaks mDNS: the ``--interface`` choices; by default the LAN
    interfaces when it listens on all of them, else the one address it listens on (a
    node listening on 127.0.0.1 advertises on loopback only). None: mDNS off."""
    from ..net.discovery import interface_addresses, lan_addresses

    wildcard = host in ("0.0.0.0", "::", "")
    if interfaces:
        try:
            addresses = interface_addresses(interfaces)
        except NotFoundError as exc:
            raise CliError(
                f"--interface: {exc.message} (or turn mDNS off with --no-mdns)",
                Exit.USAGE,
                "bad-interface",
            ) from None
        if not wildcard and host not in addresses:
            raise CliError(
                f"--interface: the node listens on {host} only, so it cannot be reached at "
                f"{', '.join(addresses)} (listen on 0.0.0.0, or choose --interface {host})",
                Exit.USAGE,
                "bad-interface",
            )
        return addresses
    if wildcard:
        addresses = lan_addresses()
        if not addresses:
            out.note(
                "mDNS off: no LAN interface with an IPv4 address "
                "(choose one with --interface NAME|ADDRESS)"
            )
            return None
        return addresses
    try:
        return interface_addresses([host])
    except NotFoundError:
        out.note(f"mDNS off: it runs over IPv4, on an address of this machine, not {host}")
        return None


# --------------------------------------------------------------------------- parser


def _count(text: str) -> int:
    """A whole number, 0 or more (argparse reports the ValueError as a usage error)."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number (0 or more), found {text!r}")
    return int(text)


class _UsageError(Exception):
    """A command line argparse rejected: one line, like every other mistake."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's error() prints usage and exits
        raise _UsageError(message, self.prog)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--home",
        metavar="DIR",
        help="the identity's home directory (default: $P2PCOMM_HOME, else the user's data directory)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument(
        "--passphrase-file", metavar="F", help="the key's passphrase is in F ('-': type it)"
    )

    parser = _Parser(
        prog="p2pcomm",
        description="Peer-to-peer micro-communities: groups that keep their own history.",
        epilog="Exit codes: p2pcomm help exit-codes",
    )
    parser.add_argument("--version", action="version", version=f"p2pcomm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, fn: Callable[[argparse.Namespace, Out], int], help: str, **kw: Any
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, parents=[common], **kw)
        p.set_defaults(func=fn)
        return p

    p = add("init", cmd_init, "create an identity: key and store in the home directory")
    p.add_argument("--name", default="", help="your display name in groups")
    add("id", cmd_id, "print this identity's member id")

    p = sub.add_parser("group", help="create, list and describe groups")
    gsub = p.add_subparsers(dest="group_command", metavar="SUBCOMMAND", required=True)
    g = gsub.add_parser("create", help="start a new group; prints its id", parents=[common])
    g.add_argument("name")
    g.add_argument(
        "--since-join",
        action="store_true",
        help="newcomers read only what is written after they join (default: everything)",
    )
    g.set_defaults(func=cmd_group_create)
    g = gsub.add_parser("list", help="the groups this identity holds", parents=[common])
    g.set_defaults(func=cmd_group_list)
    g = gsub.add_parser("info", help="a group's name, rules and members", parents=[common])
    g.add_argument("group", metavar="GROUP")
    g.set_defaults(func=cmd_group_info)

    p = add("invite", cmd_invite, "make an invitation code for a group")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("--role", default="member", choices=["reader", "member", "moderator", "admin"])
    p.add_argument("--uses", type=_count, default=1, metavar="N", help="0: unlimited (default 1)")
    p.add_argument("--expires", metavar="DURATION", help="e.g. 30m, 12h, 7d (default never)")
    p.add_argument(
        "--address",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="where the invitee can reach a member's node (repeatable)",
    )

    p = add("join", cmd_join, "join a group with an invitation code")
    p.add_argument("code", metavar="CODE")
    p.add_argument(
        "--peer", action="append", default=[], metavar="HOST:PORT", help="also try this member"
    )

    p = add("post", cmd_post, "post to a group")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("text", metavar="TEXT")
    p = add("reply", cmd_reply, "reply to an item")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("item", metavar="ITEM")
    p.add_argument("text", metavar="TEXT")
    p = add("react", cmd_react, "react to an item with an emoji")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("item", metavar="ITEM")
    p.add_argument("emoji", metavar="EMOJI")

    p = add("read", cmd_read, "show a group's posts and replies")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("--hidden", action="store_true", help="include hidden items")
    p = add("tail", cmd_tail, "the latest items; --follow keeps printing new ones")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("-n", "--lines", type=_count, default=10, metavar="N")
    p.add_argument("-f", "--follow", action="store_true")
    p = add("members", cmd_members, "a group's members and roles")
    p.add_argument("group", metavar="GROUP")

    for action, text in (("remove", "remove a member"), ("ban", "ban someone for good")):
        p = add(action, cmd_remove, text)
        p.add_argument("group", metavar="GROUP")
        p.add_argument("member", metavar="MEMBER")
        p.add_argument("--reason", default="")
        p.set_defaults(action=action)
    p = add("role", cmd_role, "change a member's role")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("member", metavar="MEMBER")
    p.add_argument("role", choices=["reader", "member", "moderator", "admin"])
    for action, text in (
        ("hide", "hide an item (moderators)"),
        ("unhide", "show a hidden item again"),
        ("delete", "delete an item for good (moderators)"),
    ):
        p = add(action, cmd_moderate, text)
        p.add_argument("group", metavar="GROUP")
        p.add_argument("item", metavar="ITEM")
        p.add_argument("--reason", default="")
        p.set_defaults(action=action)
    p = add("leave", cmd_leave, "leave a group")
    p.add_argument("group", metavar="GROUP")

    p = add("run", cmd_run, "run the node: listen, dial peers, replicate, serve commands")
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"where to listen (default {DEFAULT_LISTEN}, another port if taken)",
    )
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a node to join the group's gossip through (dialled again whenever this node "
        "has no neighbour left)",
    )
    p.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a node to start from (also the 'bootstrap' list in the home's config.json)",
    )
    p.add_argument(
        "--no-mdns",
        action="store_true",
        help="do not advertise or look for members' nodes on the local network",
    )
    p.add_argument(
        "--interface",
        action="append",
        default=[],
        metavar="NAME|ADDRESS",
        help="speak mDNS here (default: the LAN interfaces; the listen address if not 0.0.0.0)",
    )
    p.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="GROUP_ID",
        help="carry this group for its members without being one (an admin grants it "
        "with 'p2pcomm relay grant'); remembered for later runs",
    )
    add("peers", cmd_peers, "the running node's peers")

    p = sub.add_parser("relay", help="grant, revoke and list the relays that carry a group")
    rsub = p.add_subparsers(dest="relay_command", metavar="SUBCOMMAND", required=True)
    for action, text in (
        ("grant", "let a relay's node carry the group (admins)"),
        ("revoke", "withdraw a relay's right to carry the group (admins)"),
    ):
        r = rsub.add_parser(action, help=text, parents=[common])
        r.add_argument("group", metavar="GROUP")
        r.add_argument("relay", metavar="RELAY", help="the relay's id, as 'p2pcomm id' prints it")
        r.set_defaults(func=cmd_relay)
    r = rsub.add_parser("list", help="the relays that carry a group", parents=[common])
    r.add_argument("group", metavar="GROUP")
    r.set_defaults(func=cmd_relay)
    add("status", cmd_status, "the node and the groups here")

    p = sub.add_parser("bundle", help="carry a group's log in a file (sneakernet)")
    bsub = p.add_subparsers(dest="bundle_command", metavar="SUBCOMMAND", required=True)
    b = bsub.add_parser("export", help="write a group's log to a file", parents=[common])
    b.add_argument("group", metavar="GROUP")
    b.add_argument("file", metavar="FILE")
    b.set_defaults(func=cmd_bundle_export)
    b = bsub.add_parser("import", help="verify and store a bundle's entries", parents=[common])
    b.add_argument("file", metavar="FILE")
    b.set_defaults(func=cmd_bundle_import)

    add("verify", cmd_verify, "re-verify every stored entry")
    p = add("demo", cmd_demo, "a guided tour in a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p = add("help", cmd_help, "help topics: exit-codes")
    p.add_argument("topic", metavar="TOPIC")
    return parser


def _fail(out: Out, message: str, status: Exit, code: str) -> int:
    if out.json:
        print(json.dumps({"error": {"code": code, "message": message}}), file=sys.stderr)
    else:
        print(f"p2pcomm: {message}", file=sys.stderr)
    return int(status)


def _not_utf8(args: argparse.Namespace) -> str | None:
    """The first command-line value that is not UTF-8 (Python keeps undecodable bytes
    as lone surrogates), as the option or argument name; None if all are fine."""
    for key, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str):
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    return key.replace("_", "-")
    return None


def _leaf(exc: BaseException) -> BaseException:
    """The error to report from (nested) exception groups, which trio's nurseries make:
    the only one inside, or the first interrupt, then user-facing error, among several."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                walk(inner)
        else:
            leaves.append(e)

    walk(exc)
    if len(leaves) == 1:
        return leaves[0]
    for wanted in (KeyboardInterrupt, CliError, P2PCommError):
        for leaf in leaves:
            if isinstance(leaf, wanted):
                return leaf
    return exc


def _report(out: Out, exc: BaseException) -> int | None:
    """Exit status for an expected failure (after telling the user); None otherwise."""
    if isinstance(exc, CliError):
        return _fail(out, str(exc), exc.status, exc.code)
    if isinstance(exc, RefusedError):
        return _fail(out, f"refused: {exc.message} ({exc.reason})", Exit.REFUSED, exc.code.value)
    if isinstance(exc, P2PCommError):
        return _fail(out, exc.message or str(exc), _status_of(exc), exc.code.value)
    if isinstance(exc, KeyboardInterrupt):
        return _fail(
            out,
            "interrupted; everything written before is intact",
            Exit.INTERRUPTED,
            "interrupted",
        )
    if isinstance(exc, BrokenPipeError):  # `p2pcomm read ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(Exit.FAILURE)
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        status = Exit.REFUSED if isinstance(exc, PermissionError) else Exit.FAILURE
        return _fail(out, f"cannot use{where}: {_why(exc)}", status, "os-error")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:  # a bare `p2pcomm`: what it can do
        parser.print_help()
        return int(Exit.USAGE)
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        out = Out("--json" in argv)
        return _fail(out, f"{exc} (see: {exc.prog} --help)", Exit.USAGE, "usage")
    out = Out(bool(getattr(args, "json", False)))
    try:
        bad = _not_utf8(args)
        if bad is not None:
            raise CliError(f"the {bad} given is not valid UTF-8 text", Exit.USAGE, "bad-text")
        result: int = args.func(args, out)
        return int(result)
    except BaseException as exc:
        status = _report(out, _leaf(exc))
        if status is None:
            raise
        return status


if __name__ == "__main__":
    raise SystemExit(main())
