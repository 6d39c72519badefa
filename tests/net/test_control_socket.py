"""Tests of the control socket: p2pcomm.net.control serving toy methods on a real Unix
socket, driven by the blocking p2pcomm.cli.client.ControlClient from a worker thread
(``trio.to_thread.run_sync``), or by raw bytes where the client would refuse to misbehave.

Real sockets and threads: no autojump_clock here, and no sleeps either; every wait is on
an event that the step being waited for sets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

import p2pcomm.net.control as control_module
from p2pcomm._version import __version__
from p2pcomm.cli.client import ControlClient
from p2pcomm.core.control import ControlReplyError
from p2pcomm.errors import (
    ControlError,
    ErrorCode,
    NotFoundError,
    P2PCommError,
    RefusedError,
)
from p2pcomm.net.control import Method, serve_control
from p2pcomm.paths import MAX_SOCKET_PATH, Home

NODE = "pc1qtestnodeid"
T = TypeVar("T")


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "control.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        yield path
        return
    short = Path(tempfile.mkdtemp(prefix="pc-"))  # a deep pytest basetemp
    try:
        yield short / "control.sock"
    finally:
        shutil.rmtree(short, ignore_errors=True)


# -- toy methods --------------------------------------------------------------------------


async def echo(params: dict[str, Any]) -> dict[str, Any]:
    return {"echo": params}


async def refuse(params: dict[str, Any]) -> dict[str, Any]:
    raise RefusedError("bob is not a member of this group", reason="not-a-member")


async def boom(params: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("a bug in a method")


async def big(params: dict[str, Any]) -> dict[str, Any]:
    return {"blob": "x" * params["size"]}


async def count(params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    for i in range(params.get("n", 3)):
        yield {"i": i}


async def count_then_fail(params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield {"i": 0}
    raise NotFoundError(ErrorCode.NOT_FOUND, "no group starts with ab12")


METHODS = {
    "echo": Method.call(echo),
    "refuse": Method.call(refuse),
    "boom": Method.call(boom),
    "big": Method.call(big),
    "count": Method.stream(count),
    "count_then_fail": Method.stream(count_then_fail),
}


@contextlib.asynccontextmanager
async def serving(
    where: Path | Home, methods: dict[str, Method] | None = None, **kwargs: Any
) -> AsyncIterator[Path]:
    async with trio.open_nursery() as nursery:
        path = await nursery.start(
            partial(
                serve_control,
                where,
                METHODS if methods is None else methods,
                node_id=NODE,
                **kwargs,
            )
        )
        try:
            yield path
        finally:
            nursery.cancel_scope.cancel()


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def raw_exchange(
    path: Path, data: bytes, *, half_close: bool = True
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Connect, read the hello, send ``data`` (then shut down writing), and read every
    line until the node closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(os.fspath(path))
        reader = sock.makefile("rb")
        hello = json.loads(reader.readline())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        lines = []
        with contextlib.suppress(ConnectionResetError):
            while line := reader.readline():
                lines.append(json.loads(line))
        return hello, lines


# -- calls and streams ------------------------------------------------------------------


async def test_a_call_returns_its_result(sock_path: Path) -> None:
    async with serving(sock_path) as path:
        assert path == sock_path

        def client() -> None:
            with ControlClient.connect(path) as node:
                assert node.node_id == NODE and node.version == __version__
                assert dict(node.methods) == {
                    "echo": "call",
                    "refuse": "call",
                    "boom": "call",
                    "big": "call",
                    "count": "stream",
                    "count_then_fail": "stream",
                }
                assert node.call("echo", {"text": "café", "n": [1, None]}) == {
                    "echo": {"text": "café", "n": [1, None]}
                }
                assert node.call("echo") == {"echo": {}}
            assert node.closed

        await in_thread(client)


async def test_a_stream_yields_its_events_then_ends(sock_path: Path) -> None:
    async with serving(sock_path) as path:

        def client() -> None:
            with ControlClient.connect(path) as node:
                assert list(node.stream("count", {"n": 4})) == [{"i": i} for i in range(4)]
                assert list(node.stream("count", {"n": 0})) == []
                assert node.call("echo", {"after": "streams"}) == {"echo": {"after": "streams"}}

        await in_thread(client)


async def test_a_refusal_arrives_as_refused_error_with_its_reason(sock_path: Path) -> None:
    async with serving(sock_path) as path:

        def client() -> None:
            with ControlClient.connect(path) as node:
                with pytest.raises(RefusedError) as info:
                    node.call("refuse", {})
                assert info.value.code is ErrorCode.REFUSED
                assert info.value.reason == "not-a-member"
                assert info.value.message == "bob is not a member of this group"
                assert node.call("echo", {}) == {"echo": {}}  # the connection lives on

        await in_thread(client)


async def test_a_stream_ending_in_an_error_raises_it_after_its_events(sock_path: Path) -> None:
    async with serving(sock_path) as path:

        def client() -> None:
            with ControlClient.connect(path) as node:
                events = []
                with pytest.raises(NotFoundError) as info:
                    for event in node.stream("count_then_fail"):
                        events.append(event)
                assert events == [{"i": 0}]
                assert info.value.code is ErrorCode.NOT_FOUND
                assert node.call("echo", {}) == {"echo": {}}

        await in_thread(client)


async def test_a_failing_method_is_internal_and_logged_and_the_server_lives(
    sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="p2pcomm.net.control")
    async with serving(sock_path) as path:

        def client() -> None:
            with ControlClient.connect(path) as node:
                with pytest.raises(ControlReplyError) as info:
                    node.call("boom", {})
                assert info.value.wire_code == "internal"
                assert "RuntimeError" in info.value.message
                assert node.call("echo", {}) == {"echo": {}}

        await in_thread(client)
        await in_thread(client)
    failures = [r for r in caplog.records if r.name == "p2pcomm.net.control"]
    assert len(failures) == 2 and failures[0].exc_info is not None
    assert "a bug in a method" in str(failures[0].exc_info[1])


async def test_a_result_over_the_line_limit_becomes_an_error(sock_path: Path) -> None:
    async with serving(sock_path, max_line_length=1024) as path:

        def client() -> None:
            with ControlClient.connect(path) as node:
                assert len(node.call("big", {"size": 900})["blob"]) == 900
                with pytest.raises(P2PCommError) as info:
                    node.call("big", {"size": 2000})
                assert info.value.code is ErrorCode.TOO_LARGE
                assert node.call("echo", {}) == {"echo": {}}

        await in_thread(client)


async def test_unknown_methods_are_refused_by_client_and_server(sock_path: Path) -> None:
    async with serving(sock_path) as path:

        def client() -> None:
            with ControlClient.connect(path) as node:
                with pytest.raises(ControlError) as info:
                    node.call("nope", {})
                assert info.value.code is ErrorCode.CONTROL_PROTOCOL
                assert "no method 'nope'" in info.value.message
                with pytest.raises(ControlError, match=r"use ControlClient\.stream"):
                    node.call("count", {})
                assert node.call("echo", {}) == {"echo": {}}

        await in_thread(client)
        # a client that does not read the hello's list: the server answers and goes on
        wire = b'{"id": 1, "method": "nope"}\n{"id": 2, "method": "echo", "params": {"x": 1}}\n'
        _, lines = await in_thread(partial(raw_exchange, path, wire))
        assert lines[0]["id"] == 1 and lines[0]["error"]["code"] == "control-protocol"
        assert "no method 'nope'" in lines[0]["error"]["message"]
        assert lines[1:] == [{"id": 2, "result": {"echo": {"x": 1}}}]


async def test_requests_sent_during_a_stream_wait_their_turn(sock_path: Path) -> None:
    async with serving(sock_path) as path:
        wire = (
            b'{"id": 1, "method": "count", "params": {"n": 2}}\n'
            b'{"id": 2, "method": "echo", "params": {}}\n'
        )
        hello, lines = await in_thread(partial(raw_exchange, path, wire))
        assert hello["type"] == "hello" and hello["proto"] == 1 and hello["node"] == NODE
        assert lines == [
            {"id": 1, "event": {"i": 0}},
            {"id": 1, "event": {"i": 1}},
            {"id": 1, "result": {}},
            {"id": 2, "result": {"echo": {}}},
        ]


async def test_clients_are_served_at_the_same_time(sock_path: Path) -> None:
    gate = trio.Event()

    async def wait_for_gate(params: dict[str, Any]) -> dict[str, Any]:
        await gate.wait()
        return {"waited": True}

    async def open_gate(params: dict[str, Any]) -> dict[str, Any]:
        gate.set()
        return {}

    methods = {"wait": Method.call(wait_for_gate), "open": Method.call(open_gate)}
    async with serving(sock_path, methods) as path:
        results: dict[str, Any] = {}

        def call(method: str) -> None:
            with ControlClient.connect(path, timeout=30) as node:
                results[method] = node.call(method, {})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_thread, partial(call, "wait"))
            nursery.start_soon(in_thread, partial(call, "open"))
        assert results == {"wait": {"waited": True}, "open": {}}


# -- what one client can cost -----------------------------------------------------------


async def test_a_malformed_line_closes_that_client_only(sock_path: Path) -> None:
    async with serving(sock_path) as path:
        for wire, request_id in [
            (b"this is not json\n", None),
            (b'{"id": 5, "method": "echo", "params": [1]}\n', 5),
            (b'{"id": "5", "method": "echo"}\n', None),
            (
                b'{"id": 1, "method": "echo"}\n{"id": 2, "method": ""}\n{"id": 3, "method": "echo"}\n',
                2,
            ),
        ]:
            _, lines = await in_thread(partial(raw_exchange, path, wire, half_close=False))
            assert lines[-1]["id"] == request_id
            assert lines[-1]["error"]["code"] == "control-protocol"
            assert all("result" in line for line in lines[:-1])

        def client() -> None:
            with ControlClient.connect(path) as node:
                assert node.call("echo", {}) == {"echo": {}}

        await in_thread(client)


async def test_an_oversize_line_closes_that_client_only(sock_path: Path) -> None:
    async with serving(sock_path, max_line_length=1024) as path:
        for wire in (
            b"x" * 5000,
            b'{"id": 1, "method": "echo", "params": {"p": "' + b"y" * 2000 + b'"}}\n',
        ):
            _, lines = await in_thread(partial(raw_exchange, path, wire, half_close=False))
            assert len(lines) == 1
            assert lines[0]["id"] is None and lines[0]["error"]["code"] == "control-protocol"
            assert "longer than 1024 bytes" in lines[0]["error"]["message"]

        def client() -> None:
            with ControlClient.connect(path, max_line_length=1024) as node:
                with pytest.raises(ControlError) as info:  # refused before it is sent
                    node.call("echo", {"p": "y" * 2000})
                assert info.value.code is ErrorCode.TOO_LARGE
                assert node.call("echo", {"p": "short"}) == {"echo": {"p": "short"}}

        await in_thread(client)


async def test_a_slow_stream_reader_gets_lagged(sock_path: Path) -> None:
    ended = threading.Event()
    produced = 0

    async def flood(params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        nonlocal produced
        try:
            while True:
                yield {"n": produced, "pad": "x" * 1000}
                produced += 1
                await trio.lowlevel.checkpoint()
        finally:
            ended.set()

    async with serving(
        sock_path, {"flood": Method.stream(flood)}, stream_queue=8, lag_grace=0.05
    ) as path:

        def client() -> list[int]:
            with ControlClient.connect(path) as node:
                events = node.stream("flood")
                seen = [next(events)["n"]]
                # Read no more until the server gave up on this reader: the kernel's
                # buffers fill, then the 8-event queue, which stays full (lag_grace is a
                # timeout, not a sleep: this reader is stalled for as long as it takes).
                assert ended.wait(60)
                with pytest.raises(ControlReplyError) as info:
                    for event in events:
                        seen.append(event["n"])
                assert info.value.wire_code == "lagged"
                assert "8 events were waiting" in info.value.message
                return seen

        seen = await in_thread(client)
    assert seen == list(range(produced))  # every queued event, in order, then "lagged"
    assert produced > 8


async def test_a_burst_larger_than_the_queue_is_not_lagging(sock_path: Path) -> None:
    async def burst(params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        for i in range(500):  # never awaits: it outruns the writer, not the reader
            yield {"i": i}

    async with serving(sock_path, {"burst": Method.stream(burst)}, stream_queue=4) as path:

        def client() -> list[dict[str, Any]]:
            with ControlClient.connect(path) as node:
                return list(node.stream("burst"))

        assert await in_thread(client) == [{"i": i} for i in range(500)]


async def test_a_client_leaving_mid_stream_closes_the_method(sock_path: Path) -> None:
    closed = trio.Event()

    async def quiet(params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {"first": True}
            await trio.sleep_forever()
            yield {"never": True}
        finally:
            closed.set()

    async with serving(sock_path, {"quiet": Method.stream(quiet)}) as path:

        def client() -> None:
            with ControlClient.connect(path) as node:
                assert next(node.stream("quiet")) == {"first": True}

        await in_thread(client)
        await closed.wait()


async def test_another_user_is_refused(sock_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control_module, "_peer_uid", lambda sock: os.geteuid() + 1)
    async with serving(sock_path) as path:

        def client() -> None:
            with pytest.raises(RefusedError) as info:
                ControlClient.connect(path)
            assert info.value.reason == "other-user"

        await in_thread(client)


@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="SO_PEERCRED is Linux's")
def test_peer_credentials_name_this_user() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert control_module._peer_uid(trio.socket.from_stdlib_socket(a)) == os.geteuid()


# -- the socket file --------------------------------------------------------------------


async def test_the_socket_is_0600_and_removed_on_exit(sock_path: Path) -> None:
    async with serving(sock_path) as path:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert not os.path.lexists(sock_path)


async def test_a_home_is_ensured_and_served_at_its_socket_path(sock_path: Path) -> None:
    home = Home(sock_path.parent / "home")
    async with serving(home) as path:
        assert path == home.socket_path
        assert stat.S_IMODE(os.stat(home.root).st_mode) == 0o700
        node_id = await in_thread(lambda: ControlClient.connect(home).node_id)
        assert node_id == NODE
    assert not os.path.lexists(home.socket_path)


async def test_a_stale_socket_file_is_replaced(sock_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(os.fspath(sock_path))  # a crashed node's leftover: nobody listens
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    async with serving(sock_path) as path:
        assert await in_thread(lambda: ControlClient.connect(path).call("echo", {"a": 1})) == {
            "echo": {"a": 1}
        }
    assert not os.path.lexists(sock_path)


async def test_a_live_socket_is_not_taken_over(sock_path: Path) -> None:
    async with serving(sock_path) as path:
        with pytest.raises(ControlError) as info:
            await serve_control(path, METHODS, node_id="pc1qsecondnode")
        assert info.value.code is ErrorCode.ADDRESS_IN_USE
        assert f"a node already serves {path}" in info.value.message
        # the first node still serves, from the same file
        assert await in_thread(lambda: ControlClient.connect(path).node_id) == NODE


async def test_a_file_that_is_not_a_socket_is_left_alone(sock_path: Path) -> None:
    sock_path.write_text("precious")
    with pytest.raises(ControlError) as info:
        await serve_control(sock_path, METHODS, node_id=NODE)
    assert info.value.code is ErrorCode.ADDRESS_IN_USE and "not a socket" in info.value.message
    assert sock_path.read_text() == "precious"


async def test_a_socket_path_too_long_is_refused(tmp_path: Path) -> None:
    path = tmp_path / ("d" * 120) / "control.sock"
    with pytest.raises(ControlError) as info:
        await serve_control(path, METHODS, node_id=NODE)
    assert info.value.code is ErrorCode.TOO_LARGE and "shorter --home" in info.value.message
    with pytest.raises(ControlError) as info:
        ControlClient.connect(path)
    assert info.value.code is ErrorCode.TOO_LARGE


# -- the client alone -------------------------------------------------------------------


def test_connect_names_the_path_when_no_node_runs(sock_path: Path) -> None:
    with pytest.raises(ControlError) as info:  # no file
        ControlClient.connect(sock_path)
    assert info.value.code is ErrorCode.NODE_UNREACHABLE
    assert str(sock_path) in info.value.message
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(os.fspath(sock_path))  # a file, nobody listening: ECONNREFUSED
    with pytest.raises(ControlError) as info:
        ControlClient.connect(sock_path)
    assert info.value.code is ErrorCode.NODE_UNREACHABLE
    assert str(sock_path) in info.value.message


async def fake_node(path: Path, first: bytes, *, task_status: trio.TaskStatus[None]) -> None:
    """Accept one connection, send ``first``, wait for the client to leave."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(os.fspath(path))
    sock.listen(1)
    async with trio.SocketListener(sock) as listener:
        task_status.started()
        stream = await listener.accept()
        async with stream:
            if first:
                await stream.send_all(first)
            else:
                return
            with contextlib.suppress(trio.BrokenResourceError):
                while await stream.receive_some(1024):
                    pass


async def test_a_node_speaking_another_protocol_is_refused(sock_path: Path) -> None:
    hello = {"type": "hello", "proto": 2, "version": "9.0", "node": NODE, "stream_ids": True}
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(fake_node, sock_path, json.dumps(hello).encode() + b"\n"))
        with pytest.raises(ControlError) as info:
            await in_thread(partial(ControlClient.connect, sock_path))
    assert info.value.code is ErrorCode.CONTROL_PROTOCOL
    assert "speaks control protocol 2" in info.value.message and "restart it" in info.value.message


async def test_a_node_that_closes_before_its_hello_is_unreachable(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(fake_node, sock_path, b""))
        with pytest.raises(ControlError) as info:
            await in_thread(partial(ControlClient.connect, sock_path))
    assert info.value.code is ErrorCode.NODE_UNREACHABLE


async def test_another_version_is_only_a_warning(sock_path: Path) -> None:
    warnings: list[tuple[str, str]] = []
    async with serving(sock_path, version="0.0.9") as path:

        def client() -> dict[str, Any]:
            with ControlClient.connect(
                path, on_version_mismatch=lambda mine, theirs: warnings.append((mine, theirs))
            ) as node:
                assert node.version == "0.0.9"
                return node.call("echo", {})

        assert await in_thread(client) == {"echo": {}}
    assert warnings == [(__version__, "0.0.9")]


async def test_a_closed_client_refuses_to_send(sock_path: Path) -> None:
    async with serving(sock_path) as path:

        def client() -> None:
            node = ControlClient.connect(path)
            node.close()
            node.close()
            with pytest.raises(ControlError) as info:
                node.call("echo", {})
            assert info.value.code is ErrorCode.NODE_UNREACHABLE

        await in_thread(client)
