"""mDNS discovery (p2pcomm/net/discovery.py) with real packets on loopback.

Every zeroconf instance here, the nodes' and the observers', is pinned to 127.0.0.1
(``../shared/NETWORK-TESTS.md``); nothing is sent anywhere else. Other processes on
this machine may advertise on loopback at the same time: each check looks at the
adverts of this test's nodes only (by port or by name), and the tokens of other
processes' groups never match this test's groups.

Tests run on real time (zeroconf has its own threads), wait on events under
``trio.fail_after`` and never sleep.
"""

from __future__ import annotations

import base64
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import trio
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from p2pcomm import Group, Role, SqliteStore, generate_keypair, open_node
from p2pcomm.core.discovery import SERVICE_TYPE, decode_txt, discovery_token
from p2pcomm.core.identity import KeyPair, MemberId
from p2pcomm.errors import NotFoundError
from p2pcomm.group import now_ms
from p2pcomm.net.discovery import (
    DiscoveryConfig,
    interface_addresses,
    lan_addresses,
    open_discovery,
)
from p2pcomm.net.events import (
    ItemAdded,
    NodeEvent,
    PeerDiscovered,
    PeerUp,
)
from p2pcomm.net.node import Node

LOCALHOST = "127.0.0.1"
#: Upper bound for anything a test waits for; a healthy run takes a fraction of it.
PATIENCE = 20.0
ON_LOOPBACK = DiscoveryConfig(interfaces=(LOCALHOST,))

pytestmark = pytest.mark.mdns


# --------------------------------------------------------------------------- helpers


def store(tmp_path: Path, name: str) -> SqliteStore:
    return SqliteStore(tmp_path / f"{name}.db", durable=False)


def club_of(founder: KeyPair, founder_store: SqliteStore, *members: KeyPair) -> Group:
    club = Group.create(founder_store, founder, "Garden club", founder_name="alice")
    for m in members:
        club.add(m.public_key, Role.MEMBER, name="member")
    return club


async def first(
    events: trio.MemoryReceiveChannel[NodeEvent], kind: type, **fields: object
) -> NodeEvent:
    async for ev in events:
        if isinstance(ev, kind) and all(getattr(ev, k) == v for k, v in fields.items()):
            return ev
    raise AssertionError("event channel closed")


def drained(events: trio.MemoryReceiveChannel[NodeEvent]) -> list[NodeEvent]:
    out = []
    while True:
        try:
            out.append(events.receive_nowait())
        except trio.WouldBlock:
            return out


def texts(node: Node, group: bytes) -> list[str | None]:
    return [i.text for i in node.group(group).items()]


@contextlib.asynccontextmanager
async def observer() -> AsyncIterator[
    tuple[Zeroconf, trio.MemoryReceiveChannel[tuple[str, ServiceStateChange]]]
]:
    """python-zeroconf's own browser, pinned to loopback: what anyone on the link sees."""
    zc = await trio.to_thread.run_sync(
        lambda: Zeroconf(interfaces=[LOCALHOST], ip_version=IPVersion.V4Only)
    )
    send, receive = trio.open_memory_channel[tuple[str, ServiceStateChange]](10_000)
    token = trio.lowlevel.current_trio_token()

    def handler(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        with contextlib.suppress(trio.RunFinishedError, trio.WouldBlock, trio.ClosedResourceError):
            trio.from_thread.run_sync(send.send_nowait, (name, state_change), trio_token=token)

    browser = await trio.to_thread.run_sync(
        lambda: ServiceBrowser(zc, SERVICE_TYPE, handlers=[handler])
    )
    try:
        yield zc, receive
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(browser.cancel)
            await trio.to_thread.run_sync(zc.close)
            send.close()


async def resolve(zc: Zeroconf, name: str) -> ServiceInfo | None:
    return await trio.to_thread.run_sync(lambda: zc.get_service_info(SERVICE_TYPE, name, 3000))


async def advert_of_port(
    zc: Zeroconf,
    changes: trio.MemoryReceiveChannel[tuple[str, ServiceStateChange]],
    port: int,
    skip: set[str],
) -> ServiceInfo:
    """The next advert (not in ``skip``) whose SRV names ``port``."""
    async for name, change in changes:
        if change is ServiceStateChange.Removed or name in skip:
            continue
        info = await resolve(zc, name)
        if info is not None and info.port == port:
            return info
    raise AssertionError("observer closed")


@contextlib.contextmanager
def sniffer() -> Iterator[socket.socket]:
    """A passive socket that receives every mDNS multicast packet on loopback (bound
    to the group address, so it takes no unicast answer away from anyone). Sends
    nothing."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.setsockopt(socket.IPPROTO_IP, 49, 0)  # IP_MULTICAST_ALL off: loopback only
        s.bind(("224.0.0.251", 5353))
        s.setsockopt(
            socket.IPPROTO_IP,
            socket.IP_ADD_MEMBERSHIP,
            socket.inet_aton("224.0.0.251") + socket.inet_aton(LOCALHOST),
        )
        s.setblocking(False)
        yield s
    finally:
        s.close()


def forms(secret: bytes) -> list[bytes]:
    """The ways an id could show in a packet: raw, hex (whole and the 16-digit prefix
    the CLI shows, both cases), base32 and base64."""
    h = secret.hex()
    out = [secret, h.encode(), h.upper().encode(), h[:16].encode(), h[:16].upper().encode()]
    out += [base64.b32encode(secret).rstrip(b"="), base64.b32encode(secret).rstrip(b"=").lower()]
    out += [base64.b64encode(secret).rstrip(b"="), base64.urlsafe_b64encode(secret).rstrip(b"=")]
    return out


# --------------------------------------------------------------------------- interfaces


def test_interfaces_are_addresses_or_names_of_this_machine() -> None:
    assert interface_addresses(["127.0.0.1"]) == ("127.0.0.1",)
    assert interface_addresses(["lo", "127.0.0.1"]) == ("127.0.0.1",)
    with pytest.raises(
        NotFoundError, match=r"no network interface named 'nosuch0'.*interfaces here: .*lo"
    ):
        interface_addresses(["nosuch0"])
    with pytest.raises(
        NotFoundError, match=r"no interface of this machine has the address 192\.0\.2\.77"
    ):
        interface_addresses(["192.0.2.77"])  # TEST-NET-1: never local
    with pytest.raises(NotFoundError, match="IPv6"):
        interface_addresses(["::1"])


def test_lan_addresses_leave_out_loopback() -> None:
    # Reads the interfaces (ioctl); sends nothing.
    for address in lan_addresses():
        assert not address.startswith("127.")
        socket.inet_aton(address)


# --------------------------------------------------------------------------- nodes


async def test_two_nodes_with_no_addresses_find_each_other_and_sync(tmp_path: Path) -> None:
    alice, bob = generate_keypair(), generate_keypair()
    with store(tmp_path, "a") as sa, store(tmp_path, "b") as sb:
        club = club_of(alice, sa, bob)
        club.post("Seed swap on Saturday")
        with trio.fail_after(PATIENCE):
            async with open_node(sa, alice, discovery=ON_LOOPBACK) as na:
                ev_a = na.subscribe()
                # Bob's node holds nothing but the club's id, and no address.
                async with open_node(sb, bob, groups=[club.id], discovery=ON_LOOPBACK) as nb:
                    ev_b = nb.subscribe()
                    # Alice's node finds bob's advert (its tokens name the club) ...
                    found = await first(ev_a, PeerDiscovered, address=nb.address)
                    assert isinstance(found, PeerDiscovered) and found.groups == (club.id,)
                    # ... and the club syncs both ways, live.
                    await first(ev_b, ItemAdded, origin=alice.public_key)
                    # The club is encrypted: bob reads once his node published its key
                    # and alice's handed him the group's (12.11 W1, W4).
                    await until(nb, lambda: texts(nb, club.id) == ["Seed swap on Saturday"])
                    await nb.group(club.id).post("I'll bring tomato seeds")
                    await first(ev_a, ItemAdded, origin=bob.public_key)
                    assert texts(na, club.id) == texts(nb, club.id)
                    # Bob's node found alice's advert too; one connection between them.
                    await until(nb, lambda: na.address in nb.discovered())
                    assert nb.discovered() == {na.address: (club.id,)}
                    assert na.discovered() == {nb.address: (club.id,)}
                    assert na.peers() == [bob.public_key] and nb.peers() == [alice.public_key]


async def until(node: Node, ready: Callable[[], bool]) -> None:
    """Wait until ``ready()`` holds (checked whenever the node's state changes)."""
    while not ready():
        await node._wait_change()


async def test_a_node_outside_the_group_is_not_dialled(tmp_path: Path) -> None:
    alice, carol = generate_keypair(), generate_keypair()
    with store(tmp_path, "a") as sa, store(tmp_path, "c") as sc:
        club_of(alice, sa)
        Group.create(sc, carol, "Chess club", founder_name="carol")
        with trio.fail_after(PATIENCE):
            async with (
                open_node(sa, alice, discovery=ON_LOOPBACK) as na,
                open_node(sc, carol, discovery=ON_LOOPBACK) as nc,
            ):
                ev_a, ev_c = na.subscribe(), nc.subscribe()
                assert na.discovery is not None and nc.discovery is not None
                a_advert = await na.discovery.advertised()
                c_advert = await nc.discovery.advertised()
                # Each resolved the other's advert, and it names none of its groups.
                assert await na.discovery.resolved(c_advert.name) == ()
                assert await nc.discovery.resolved(a_advert.name) == ()
                assert decode_txt(c_advert.properties)  # a well-formed advert of the chess club
                for node, events in ((na, ev_a), (nc, ev_c)):
                    assert node.discovered() == {}
                    assert node.peers() == []
                    assert node.dial_failures() == {}
                    seen = drained(events)
                    assert not [e for e in seen if isinstance(e, (PeerDiscovered, PeerUp))], seen


async def test_what_is_advertised_names_no_group_and_no_member_and_rotates(
    tmp_path: Path,
) -> None:
    alice = generate_keypair()
    rotation_ms = 2000
    with store(tmp_path, "a") as sa:
        club = club_of(alice, sa)
        secrets_ = [
            *forms(club.id),
            *forms(alice.public_key),
            MemberId(alice.public_key).text().encode(),
        ]
        config = DiscoveryConfig(interfaces=(LOCALHOST,), rotation_ms=rotation_ms)
        with sniffer() as raw, trio.fail_after(PATIENCE):
            packets: list[bytes] = []
            sock = trio.socket.from_stdlib_socket(raw)

            async def capture() -> None:
                while True:
                    data, _ = await sock.recvfrom(9000)
                    packets.append(data)

            async with trio.open_nursery() as capturing:
                capturing.start_soon(capture)
                async with (
                    observer() as (zc, changes),
                    open_node(sa, alice, discovery=config) as na,
                ):
                    port = na.address[1]
                    seen: list[ServiceInfo] = []
                    for _ in range(2):  # the first advert, then the one after a rotation
                        info = await advert_of_port(zc, changes, port, {s.name for s in seen})
                        seen.append(info)
                # what the link saw of each advert: names, TXT, host name, address
                for info in seen:
                    assert info.parsed_addresses() == [LOCALHOST]
                    assert set(info.properties) == {b"v", b"t"}
                    shown = b"|".join(
                        [info.name.encode(), info.server.encode(), info.text or b""]
                    ).lower()
                    for s in secrets_:
                        assert s.lower() not in shown, (s, shown)
                # the adverts of two epochs share nothing but the port and address
                first_, second = seen
                assert first_.name != second.name and first_.server != second.server
                t1, t2 = decode_txt(first_.properties), decode_txt(second.properties)
                assert not set(t1) & set(t2)
                # ... and each carries the club's token of its epoch (so the right
                # advert was looked at), which only a holder of the club's id can compute
                now_epoch = now_ms() // rotation_ms  # the nodes' epoch (08: scaled clock)
                window = range(now_epoch - 6, now_epoch + 1)
                e1 = [e for e in window if discovery_token(club.id, e) in t1]
                e2 = [e for e in window if discovery_token(club.id, e) in t2]
                assert len(e1) == 1 and len(e2) == 1 and e2[0] > e1[0], (e1, e2)
                capturing.cancel_scope.cancel()
        # not a byte of any packet on the link names the club or alice
        assert packets
        for data in packets:
            for s in secrets_:
                assert s not in data and s.lower() not in data.lower()


async def test_adverts_that_break_the_rules_are_refused(tmp_path: Path) -> None:
    """TXT records are untrusted: oversized, unknown versions, extra keys and garbled
    tokens are refused, and no more than ``max_services`` adverts are tracked."""
    config = DiscoveryConfig(interfaces=(LOCALHOST,), max_services=64)
    good_t = base64.b32encode(bytes(range(64))).rstrip(b"=").lower()
    bad = {
        "big": {b"v": b"1", b"t": good_t, **{b"x%d" % i: b"y" * 200 for i in range(4)}},
        "version": {b"v": b"2", b"t": good_t},
        "extra": {b"v": b"1", b"t": good_t, b"g": b"1"},
        "garbled": {b"v": b"1", b"t": b"!" * len(good_t)},
        "short": {b"v": b"1", b"t": good_t[:-8]},
    }
    zc = await trio.to_thread.run_sync(
        lambda: Zeroconf(interfaces=[LOCALHOST], ip_version=IPVersion.V4Only)
    )
    tag = generate_keypair().public_key.hex()[:10]
    infos = [
        ServiceInfo(
            SERVICE_TYPE,
            f"{tag}{label}.{SERVICE_TYPE}",
            port=9,
            properties=props,
            server=f"{tag}{label}.local.",
            addresses=[socket.inet_aton(LOCALHOST)],
        )
        for label, props in bad.items()
    ]
    try:
        with trio.fail_after(PATIENCE):
            async with open_discovery(config, groups=[bytes(32)], port=None) as disc:
                for info in infos:
                    await trio.to_thread.run_sync(
                        lambda i=info: zc.register_service(i, cooperating_responders=True)
                    )
                for info in infos:
                    assert await disc.resolved(info.name) is None, info.name
                assert disc.found() == {}
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(zc.close)


async def test_no_more_adverts_are_tracked_than_the_bound(tmp_path: Path) -> None:
    config = DiscoveryConfig(interfaces=(LOCALHOST,), max_services=2)
    zc = await trio.to_thread.run_sync(
        lambda: Zeroconf(interfaces=[LOCALHOST], ip_version=IPVersion.V4Only)
    )
    tag = generate_keypair().public_key.hex()[:10]
    props = {b"v": b"1", b"t": base64.b32encode(bytes(range(64))).rstrip(b"=").lower()}
    infos = [
        ServiceInfo(
            SERVICE_TYPE,
            f"{tag}n{i}.{SERVICE_TYPE}",
            port=9,
            properties=props,
            server=f"{tag}n{i}.local.",
            addresses=[socket.inet_aton(LOCALHOST)],
        )
        for i in range(5)
    ]
    try:
        with trio.fail_after(PATIENCE):
            async with open_discovery(config, groups=[bytes(32)], port=None) as disc:
                for info in infos:
                    await trio.to_thread.run_sync(
                        lambda i=info: zc.register_service(i, cooperating_responders=True)
                    )
                outcomes = [await disc.resolved(info.name) for info in infos]
                # Other processes' adverts may take places too: at most 2 are tracked.
                assert outcomes.count(()) <= 2 and outcomes.count(None) >= 3, outcomes
                assert len(disc._services) <= 2
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(zc.close)
