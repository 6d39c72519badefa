"""mDNS discovery: python-zeroconf bridged into trio.

A node advertises ``_p2pcomm._tcp.local.`` with the advert of
:mod:`p2pcomm.core.discovery` (an instance name and a host name drawn at random for
each advert, and in TXT short tokens that only members of a group can compute and
recognise), browses for the adverts of others, and reports those whose tokens name one
of its groups. What an observer on the link learns is that a p2pcomm node listens at
an address and port; not which groups it holds, not who it is.

Theory of operation
-------------------
python-zeroconf's sync API runs its own asyncio loop in a thread (under trio no
asyncio loop runs, so that is the mode it picks). The bridge:

* Every blocking call (``Zeroconf()``, ``register_service``, ``unregister_service``,
  ``get_service_info``, ``close``) runs in a worker thread (``trio.to_thread``).
* The ``ServiceBrowser`` handler runs on the browser's own thread and does one thing:
  it posts ``(name, state change)`` into a bounded trio memory channel with
  ``trio.from_thread.run_sync(send.send_nowait, ...)``. It never resolves (resolving
  in a handler starves zeroconf's engine) and drops what does not fit.
* A trio task takes the changes; resolutions run in worker threads, at most
  ``max_resolving`` at once (a ``CapacityLimiter``), at most one per name.
* What a resolution brings is untrusted: the TXT must fit ``max_txt_bytes`` and decode
  strictly (:func:`~p2pcomm.core.discovery.decode_txt`), at most ``max_services``
  adverts are tracked at once, and only IPv4 addresses are used.
* At each rotation (and when the node's groups change) a new advert is registered and
  then the old one withdrawn, so that peers never see a gap; the adverts tracked are
  matched again, so a dead node's lingering advert stops matching within two epochs.
* Closing runs shielded: the browser is cancelled, the adverts withdrawn (goodbye
  packets) and the sockets closed, whatever cancelled the block.

Interfaces
----------
zeroconf listens and answers only on the addresses given, and the advert carries only
those addresses. :func:`interface_addresses` turns names (``eth0``) and IPv4 addresses
into addresses of this machine; :func:`lan_addresses` is what a person's node uses by
default (up, multicast-capable, non-loopback interfaces with an IPv4 address, bridges
of containers and virtual machines left out). Tests pin ``127.0.0.1``.

Probing: the names of an advert hold at least 64 random bits drawn for it alone, so
it is registered without the three probes of RFC 6762 section 8.1 (they would delay
each advert by about 1.2 s to guard against a collision that does not happen).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
import socket
import struct
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import trio
from zeroconf import (
    IPVersion,
    ServiceBrowser,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
)

from ..core.discovery import (
    ROTATION_MS,
    SERVICE_TYPE,
    Advert,
    decode_txt,
    encode_txt,
    make_advert,
    matching_groups,
)
from ..errors import ErrorCode, NotFoundError, P2PCommError
from ..group import now_ms

__all__ = [
    "DiscoveryConfig",
    "Discovery",
    "DiscoveryEvent",
    "PeerFound",
    "PeerLost",
    "interface_addresses",
    "lan_addresses",
    "open_discovery",
]

logger = logging.getLogger(__name__)

#: Interfaces a person's node leaves out by default: bridges and ends of containers
#: and virtual machines (a Docker host multicasting into every bridge stormed, zeroconf #330).
VIRTUAL_PREFIXES = ("docker", "veth", "br-", "virbr", "vboxnet", "vmnet", "cni", "flannel", "lxc")
#: Addresses of one resolved advert that are looked at.
MAX_ADDRESSES = 8

_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8
_IFF_MULTICAST = 0x1000


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryConfig:
    """Where and how a node speaks mDNS. ``interfaces`` has no default on purpose:
    the library never multicasts anywhere it was not told to (the CLI passes
    :func:`lan_addresses`; tests pass ``("127.0.0.1",)``)."""

    #: IPv4 addresses of this machine, or interface names (``eth0``).
    interfaces: tuple[str, ...]
    #: Advertise this node (when it listens). False: browse only.
    advertise: bool = True
    #: Real milliseconds per token epoch. The protocol fixes it at ``ROTATION_MS``;
    #: nodes that should find each other must agree. Tests shorten it.
    rotation_ms: int = ROTATION_MS
    #: Adverts tracked at once (a hostile link can announce many).
    max_services: int = 64
    #: Largest TXT record (bytes) that is decoded.
    max_txt_bytes: int = 512
    #: Resolutions running at once, and how long one may take.
    max_resolving: int = 4
    resolve_timeout_ms: int = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerFound:
    """An advert whose tokens name groups of this node (or its address or groups
    changed). ``name`` is the advert's service name: it changes at each rotation."""

    name: str
    address: tuple[str, int]
    groups: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerLost:
    """An advert reported by :class:`PeerFound` was withdrawn, expired, or no longer
    names any group of this node."""

    name: str
    address: tuple[str, int]


DiscoveryEvent: TypeAlias = PeerFound | PeerLost


# --------------------------------------------------------------------------- interfaces


def _ioctl(name: str, request: int) -> bytes:
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        arg = struct.pack("256s", name.encode()[:15])
        return fcntl.ioctl(s.fileno(), request, arg)


def _interface_ipv4(name: str) -> str | None:
    """The IPv4 address of interface ``name`` (Linux ioctl), None if it has none."""
    try:
        return socket.inet_ntoa(_ioctl(name, _SIOCGIFADDR)[20:24])
    except OSError:
        return None


def _interface_flags(name: str) -> int:
    try:
        return int(struct.unpack("H", _ioctl(name, _SIOCGIFFLAGS)[16:18])[0])
    except OSError:
        return 0


def _interface_names() -> list[str]:
    try:
        return [n for _, n in socket.if_nameindex()]
    except OSError:
        return []


def _is_local(address: str) -> bool:
    """Whether ``address`` belongs to this machine (binding to it works)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


def interface_addresses(specs: Iterable[str]) -> tuple[str, ...]:
    """IPv4 addresses for ``specs``: each an IPv4 address of this machine or the name
    of an interface that has one. Raises :class:`~p2pcomm.errors.NotFoundError` naming
    the first that is neither (with the interfaces there are)."""
    out: list[str] = []
    for spec in specs:
        try:
            ip = ipaddress.ip_address(spec)
        except ValueError:
            ip = None
        if ip is not None:
            if ip.version != 4:
                raise NotFoundError(
                    ErrorCode.NOT_FOUND,
                    f"mDNS runs over IPv4 here: {spec} is an IPv6 address (give an IPv4 "
                    "address or an interface name)",
                )
            if not _is_local(str(ip)):
                raise NotFoundError(
                    ErrorCode.NOT_FOUND, f"no interface of this machine has the address {spec}"
                )
            address = str(ip)
        else:
            names = _interface_names()
            if spec not in names:
                raise NotFoundError(
                    ErrorCode.NOT_FOUND,
                    f"no network interface named {spec!r} "
                    f"(interfaces here: {', '.join(names) or 'none found'})",
                )
            found = _interface_ipv4(spec) if sys.platform.startswith("linux") else None
            if found is None:
                raise NotFoundError(
                    ErrorCode.NOT_FOUND,
                    f"interface {spec!r} has no IPv4 address"
                    + ("" if sys.platform.startswith("linux") else " (give its address instead)"),
                )
            address = found
        if address not in out:
            out.append(address)
    return tuple(out)


def lan_addresses() -> tuple[str, ...]:
    """The IPv4 addresses of this machine's LAN interfaces: up, multicast-capable,
    not loopback, not a container or virtual machine bridge. Sends nothing."""
    if not sys.platform.startswith("linux"):
        return _primary_address()
    out: list[str] = []
    for name in _interface_names():
        if name.startswith(VIRTUAL_PREFIXES):
            continue
        flags = _interface_flags(name)
        if not flags & _IFF_UP or flags & _IFF_LOOPBACK or not flags & _IFF_MULTICAST:
            continue
        address = _interface_ipv4(name)
        if address is not None and not ipaddress.ip_address(address).is_loopback:
            out.append(address)
    return tuple(dict.fromkeys(out))


def _primary_address() -> tuple[str, ...]:
    """Where the machine would route to the internet from (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: the route is looked up, not used
            address = str(s.getsockname()[0])
        except OSError:
            return ()
    return () if ipaddress.ip_address(address).is_loopback else (address,)


def _kind(address: str) -> int:
    ip = ipaddress.ip_address(address)
    return 0 if ip.is_loopback else 1 if ip.is_link_local else 2


def _pick(candidates: Sequence[str], ours: Sequence[str]) -> str | None:
    """One address to dial among an advert's: the first of the kind (loopback,
    link-local, other) of an address we speak on, else the first usable."""
    usable = []
    for a in candidates[:MAX_ADDRESSES]:
        try:
            ip = ipaddress.IPv4Address(a)
        except ValueError:
            continue
        if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
            continue
        usable.append(a)
    kinds = {_kind(a) for a in ours}
    for a in usable:
        if _kind(a) in kinds:
            return a
    return usable[0] if usable else None


# --------------------------------------------------------------------------- the bridge


@dataclass(slots=True)
class _Service:
    tokens: tuple[bytes, ...] = ()
    address: tuple[str, int] | None = None
    #: Groups it matched when last reported (empty: not reported).
    groups: tuple[bytes, ...] = ()


@dataclass(slots=True, eq=False)
class Discovery:
    """A running mDNS advert and browser (made by :func:`open_discovery`).

    ``async for event in discovery`` yields :data:`DiscoveryEvent`."""

    config: DiscoveryConfig
    #: The IPv4 addresses it speaks on.
    addresses: tuple[str, ...]
    _zc: Zeroconf
    _port: int | None
    _groups: frozenset[bytes]
    _clock: Callable[[], int]
    _events_send: trio.MemorySendChannel[DiscoveryEvent]
    _events: trio.MemoryReceiveChannel[DiscoveryEvent]
    _changes_send: trio.MemorySendChannel[tuple[str, ServiceStateChange]]
    _changes: trio.MemoryReceiveChannel[tuple[str, ServiceStateChange]]
    _token: trio.lowlevel.TrioToken
    _limiter: trio.CapacityLimiter
    _info: ServiceInfo | None = None
    _own: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    _services: dict[str, _Service] = field(default_factory=dict)
    _resolving: set[str] = field(default_factory=set)
    _again: set[str] = field(default_factory=set)
    _regroup: trio.Event = field(default_factory=trio.Event)
    _changed: trio.Event = field(default_factory=trio.Event)
    _refused_names: deque[str] = field(default_factory=lambda: deque(maxlen=64))
    #: Browser changes dropped because the channel was full, adverts refused.
    dropped: int = 0
    refused: int = 0

    def __aiter__(self) -> trio.MemoryReceiveChannel[DiscoveryEvent]:
        return self._events

    @property
    def advert(self) -> ServiceInfo | None:
        """What this node advertises now (None: nothing)."""
        return self._info

    def found(self) -> dict[str, PeerFound]:
        """The adverts reported now, by service name."""
        return {
            n: PeerFound(name=n, address=s.address, groups=s.groups)
            for n, s in self._services.items()
            if s.groups and s.address is not None
        }

    async def advertised(self) -> ServiceInfo:
        """Wait until an advert of this node is out; return it."""
        while self._info is None:
            await self._changed.wait()
        return self._info

    async def resolved(self, name: str) -> tuple[bytes, ...] | None:
        """Wait until the advert named ``name`` was resolved; return the groups of
        this node it names (empty: none, so it is not reported), or None if it was
        refused (its TXT too large or not well-formed, no usable address, or more
        adverts tracked than ``max_services``) or did not answer."""
        while (service := self._services.get(name)) is None or service.address is None:
            if name in self._refused_names:
                return None
            await self._changed.wait()
        return service.groups

    def _note(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def set_groups(self, groups: Iterable[bytes]) -> None:
        """The node's groups changed: advertise anew and match again."""
        groups = frozenset(groups)
        if groups != self._groups:
            self._groups = groups
            self._regroup.set()

    # -- time

    def _now(self) -> int:
        """Discovery time: the clock scaled so that an epoch of the core
        (``ROTATION_MS``) lasts ``rotation_ms`` of real time."""
        return self._clock() * ROTATION_MS // self.config.rotation_ms

    def _until_rotation(self) -> float:
        period = self.config.rotation_ms
        return (period - self._clock() % period) / 1000 + 0.02

    # -- advertising

    def _service_info(self, advert: Advert) -> ServiceInfo:
        return ServiceInfo(
            SERVICE_TYPE,
            advert.service_name,
            port=advert.port,
            properties=encode_txt(advert),
            server=advert.server,
            addresses=[socket.inet_aton(a) for a in self.addresses],
        )

    @staticmethod
    def _call(fn: Callable[[ServiceInfo], None], info: ServiceInfo) -> bool:
        try:
            fn(info)
        except Exception as exc:  # EventLoopBlocked on a loaded machine, a closing instance
            logger.warning("mDNS: %s of %s failed: %r", fn.__name__, info.name, exc)
            return False
        return True

    def _register(self, info: ServiceInfo) -> None:
        # No probing: see the module docstring.
        self._zc.register_service(info, cooperating_responders=True)

    async def _advertise(self) -> None:
        while True:
            self._regroup = trio.Event()
            old = self._info
            if self.config.advertise and self._port and self._groups:
                advert = make_advert(
                    sorted(self._groups),
                    now_ms=self._now(),
                    port=self._port,
                    random_bytes=secrets.token_bytes,
                )
                info = self._service_info(advert)
                self._own.append(info.name.lower())
                if await trio.to_thread.run_sync(self._call, self._register, info):
                    self._info = info
                    self._note()
                else:
                    old = None  # keep the old advert until a new one is out
                    self._regroup.set()  # try again shortly
                    await trio.sleep(1.0)
            else:
                self._info = None
            if old is not None and old is not self._info:
                await trio.to_thread.run_sync(self._call, self._zc.unregister_service, old)
            for name in list(self._services):
                await self._match(name)
            with trio.move_on_after(self._until_rotation()):
                await self._regroup.wait()

    # -- browsing

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """On the browser's thread: post the change, nothing else."""
        try:
            trio.from_thread.run_sync(
                self._changes_send.send_nowait, (name, state_change), trio_token=self._token
            )
        except trio.WouldBlock:
            self.dropped += 1
        except (trio.RunFinishedError, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _browse(self) -> None:
        async with trio.open_nursery() as nursery:
            async for name, change in self._changes:
                key = name.lower()
                if key in self._own or not key.endswith(SERVICE_TYPE.lower()):
                    continue
                if change is ServiceStateChange.Removed:
                    await self._forget(name)
                    continue
                if name not in self._services:
                    if len(self._services) >= self.config.max_services:
                        self.refused += 1
                        self._refused_names.append(name)
                        self._note()
                        logger.debug(
                            "mDNS: %s not tracked (%d adverts tracked)", name, len(self._services)
                        )
                        continue
                    self._services[name] = _Service()
                if name in self._resolving:
                    self._again.add(name)
                else:
                    self._resolving.add(name)
                    nursery.start_soon(self._resolve, name)

    def _lookup(self, name: str) -> ServiceInfo | None:
        try:
            return self._zc.get_service_info(
                SERVICE_TYPE, name, timeout=self.config.resolve_timeout_ms
            )
        except Exception as exc:  # zeroconf refuses odd names, or is closing
            logger.debug("mDNS: resolving %s failed: %r", name, exc)
            return None

    async def _resolve(self, name: str) -> None:
        try:
            while True:
                async with self._limiter:
                    info = await trio.to_thread.run_sync(self._lookup, name, abandon_on_cancel=True)
                await self._update(name, info)
                if name not in self._again:
                    return
                self._again.discard(name)
        finally:
            self._resolving.discard(name)
            self._again.discard(name)

    def _read(self, info: ServiceInfo) -> tuple[tuple[bytes, ...], tuple[str, int]] | None:
        """Tokens and address of a resolved advert; None if it is not acceptable."""
        if info.text is not None and len(info.text) > self.config.max_txt_bytes:
            return None
        try:
            tokens = decode_txt(info.properties)
        except (P2PCommError, ValueError, TypeError):
            return None
        port = info.port
        if port is None or not 0 < port < 65536:
            return None
        host = _pick(info.parsed_addresses(IPVersion.V4Only), self.addresses)
        if host is None:
            return None
        return tokens, (host, port)

    async def _update(self, name: str, info: ServiceInfo | None) -> None:
        service = self._services.get(name)
        if service is None:
            return  # withdrawn while it was resolved
        read = self._read(info) if info is not None else None
        if read is None:
            self.refused += 1
            self._refused_names.append(name)
            await self._forget(name)
            self._note()
            return
        service.tokens, address = read
        if service.groups and address != service.address and service.address is not None:
            await self._events_send.send(PeerLost(name=name, address=service.address))
            service.groups = ()
        service.address = address
        await self._match(name)
        self._note()

    async def _match(self, name: str) -> None:
        service = self._services.get(name)
        if service is None or service.address is None:
            return
        groups = tuple(matching_groups(service.tokens, sorted(self._groups), now_ms=self._now()))
        if groups == service.groups:
            return
        service.groups = groups
        if groups:
            await self._events_send.send(
                PeerFound(name=name, address=service.address, groups=groups)
            )
        else:
            await self._events_send.send(PeerLost(name=name, address=service.address))

    async def _forget(self, name: str) -> None:
        service = self._services.pop(name, None)
        if service is not None and service.groups and service.address is not None:
            await self._events_send.send(PeerLost(name=name, address=service.address))

    # -- closing

    def _shutdown(self, browser: ServiceBrowser | None) -> None:
        if browser is not None:
            browser.cancel()
        self._info = None
        # close() withdraws what is registered (three goodbyes, 125 ms apart) and waits.
        self._zc.close()


@contextlib.asynccontextmanager
async def open_discovery(
    config: DiscoveryConfig,
    *,
    groups: Iterable[bytes],
    port: int | None,
    clock: Callable[[], int] = now_ms,
) -> AsyncIterator[Discovery]:
    """Advertise ``port`` (None: browse only) for ``groups`` on ``config.interfaces``
    and browse, until the block exits. Iterate the result for
    :data:`DiscoveryEvent`. ``clock`` gives milliseconds since the Unix epoch."""
    if not config.interfaces:
        raise P2PCommError(ErrorCode.BAD_OPERATION, "mDNS needs at least one interface")
    addresses = await trio.to_thread.run_sync(interface_addresses, config.interfaces)
    try:
        zc = await trio.to_thread.run_sync(
            lambda: Zeroconf(interfaces=list(addresses), ip_version=IPVersion.V4Only)
        )
    except OSError as exc:
        raise P2PCommError(
            ErrorCode.BAD_OPERATION,
            f"cannot start mDNS on {', '.join(addresses)}: {exc.strerror or exc}",
        ) from exc
    bound = max(256, 4 * config.max_services)
    changes_send, changes = trio.open_memory_channel[tuple[str, ServiceStateChange]](bound)
    events_send, events = trio.open_memory_channel[DiscoveryEvent](bound)
    disc = Discovery(
        config=config,
        addresses=addresses,
        _zc=zc,
        _port=port,
        _groups=frozenset(groups),
        _clock=clock,
        _events_send=events_send,
        _events=events,
        _changes_send=changes_send,
        _changes=changes,
        _token=trio.lowlevel.current_trio_token(),
        _limiter=trio.CapacityLimiter(config.max_resolving),
    )
    browser: ServiceBrowser | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(disc._browse)
            browser = await trio.to_thread.run_sync(
                lambda: ServiceBrowser(zc, SERVICE_TYPE, handlers=[disc._on_change])
            )
            nursery.start_soon(disc._advertise)
            try:
                yield disc
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(5):
                await trio.to_thread.run_sync(disc._shutdown, browser)
            changes_send.close()
            events_send.close()
