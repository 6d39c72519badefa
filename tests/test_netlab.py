"""The lab the scenarios run in (p2pcomm/testing/netlab.py): a LAN lab puts every host
on one link, where multicast (mDNS) goes from host to host; a routed lab keeps its
hosts behind a router, which does not forward it.

Needs root and ``ip netns``; skipped with the reason otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcomm.testing.netlab import Host, Lab, LabUnavailable

pytestmark = pytest.mark.slow

#: mDNS's group; the port is the lab's own (7447), inside its namespaces only.
GROUP = "224.0.0.251"

LISTEN = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 7447))
mreq = socket.inet_aton(sys.argv[1]) + socket.inet_aton(sys.argv[2])
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
s.settimeout(float(sys.argv[3]))
print("ready", flush=True)
try:
    print(s.recv(100).decode(), flush=True)
except TimeoutError:
    print("nothing", flush=True)
"""

SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[2]))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.sendto(b"hello from " + sys.argv[2].encode(), (sys.argv[1], 7447))
"""


def lab(tmp_path: Path, *, lan: bool) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip(f"network namespaces need root (ip netns add); running as uid {os.geteuid()}")
    try:
        with Lab(["a", "b", "c"], tmp_path, lan=lan) as made:
            yield made
    except LabUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lab]:
    yield from lab(tmp_path, lan=True)


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[Lab]:
    yield from lab(tmp_path, lan=False)


def python(host: Host, code: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", host.ns, sys.executable, "-c", code, *args]


def multicast(sender: Host, receiver: Host, wait: float) -> str:
    """What ``receiver`` hears of one datagram ``sender`` sends to the mDNS group."""
    listening = subprocess.Popen(
        python(receiver, LISTEN, GROUP, receiver.ip, str(wait)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listening.stdout is not None
        assert listening.stdout.readline().strip() == "ready"
        subprocess.run(python(sender, SEND, GROUP, sender.ip), check=True, timeout=20)
        return listening.stdout.readline().strip()
    finally:
        listening.wait(timeout=wait + 20)


def test_a_lan_lab_is_one_link_that_carries_multicast(lan: Lab) -> None:
    assert [h.ip for h in lan.hosts.values()] == [
        "169.254.128.1",
        "169.254.128.2",
        "169.254.128.3",
    ]
    assert multicast(lan["a"], lan["c"], wait=20.0) == "hello from 169.254.128.1"
    with pytest.raises(ValueError, match="no router"):
        lan.block("a", "b")


def test_a_routed_lab_does_not_forward_multicast(routed: Lab) -> None:
    assert [h.ip for h in routed.hosts.values()] == ["169.254.1.2", "169.254.2.2", "169.254.3.2"]
    # A fixed wait, to show that nothing arrives.
    assert multicast(routed["a"], routed["c"], wait=2.0) == "nothing"
