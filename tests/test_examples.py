"""Every script in examples/ runs, as a user runs it, and tells what it promised.

Each is a separate process with a deadline, so an example that hangs fails here. The
scenarios of "What p2pcomm survives" (README) build hosts from network namespaces; one
that cannot make them here exits 77, and its test is skipped with the reason it
printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from p2pcomm.testing.netlab import SKIPPED

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: What each example must print (the claim it demonstrates).
EXPECTED = {
    "two_nodes.py": [
        "bob joined 'Garden club'",
        "alice's node received: \"Hi all, I'll bring tomato seeds.\"",
        "bob's node received: 'Great, see you Saturday!'",
        "both nodes hold the whole conversation",
    ],
    "sneakernet.py": [
        "bob's device goes offline: his node stops and the router drops his packets",
        "nothing unverified kept",
        "new entries verified and stored; reads 30 of 30 posts",
        "claim held: the stick carried the history with no network, the tampered copy added "
        "nothing unverified, and back online bob stored only what he still lacked",
    ],
    "local_meetup.py": [
        "three nodes start; none is given an address",
        "every node discovered the other two by mDNS",
        "the three nodes hold the same conversation: converged",
    ],
    "blocked_link.py": [
        "the router now drops every packet between alice and bob, both ways",
        "link blocked: 8 posts between alice and bob, each arrived readable",
        "claim held: every post crossed the blocked link through other members",
    ],
    "partition_heal.py": [
        "the router now drops every packet between {alice, carol, dave} and {bob, erin}",
        "after healing, all five hosts agree on the members",
        "claim held: every replica computes the same members and roles, every member the same "
        "visible posts, and the removed admin reads nothing written after its removal",
    ],
    "removal.py": [
        "alice removes mallory; mallory's node learns it at once",
        "mallory's node restarts and syncs with all 3 members",
        "of those written after her removal: 0; she is a member in her own view: False",
        "claim held: the removed member received nothing written after her removal",
    ],
    "blind_relay.py": [
        "bob comes online, dialling only the relay: he reads alice's post and replies",
        "the relay carried both entries",
        "0 readable; plaintext in its files: none",
        "it tells him he was removed and serves the new post: False",
        "claim held: alice and bob, never online together, talked through a relay",
    ],
    "equivocation.py": [
        "bob's home copied to a second device, bob-copy: same identity",
        "bob-copy posted 'Garden meeting moved to Sunday' (seq ",
        "frank is now cut off from every host",
        "bob posted 'Garden meeting stays on Saturday' (seq ",
        "both posts carry bob's sequence number ",
        "members --json on every honest host: bob is no member, expelled (forked at seq ",
        "read --json on every honest host: the same items, alice's welcome and bob's post "
        "before the fork; neither branch",
        "every honest store holds the same fork proof, byte for byte",
        "frank never showed 'Garden meeting stays on Saturday'",
        "claim held: the fork was found, proved and punished the same way everywhere",
    ],
    "tampering_relay.py": [
        "the router drops every packet between alice and bob: their posts go through carol or mallory",
        "6 posts by alice, bob and carol, each read by the two others",
        "alice's node refused mallory's node: bad-signature",
        "bob's node refused mallory's node: bad-signature",
        "carol's node refused mallory's node: bad-signature",
        "alice, bob and carol each read the 6 true posts; each store verifies",
        "entries mallory made up is stored by alice, bob or carol",
        "claim held: every honest node refused the tampering relay and read the true posts",
    ],
    "censoring_member.py": [
        "mallory's node passes on everything except alice's entries",
        "bob read alice's 4 posts",
        "carol read alice's 4 posts",
        "dave read alice's 4 posts",
        "her 4 posts among them, from every peer",
        "alice, bob, carol and dave each read every post of alice's",
        "claim held: alice's posts reached every member past the censoring member",
    ],
    "moderation.py": [
        "bob removes carol: refused (insufficient-role); 0 entries written",
        "carol removes alice: refused (insufficient-role); 0 entries written",
        "what a moderator sees: [('Hello gardeners!', False), ('Your tomatoes are ugly', True)]",
    ],
}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "TMPDIR": str(tmp_path),
            "HOME": str(tmp_path),
        },
        check=False,
    )
    if proc.returncode == SKIPPED:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in EXPECTED[name]:
        assert line in proc.stdout, f"{name} did not print {line!r}:\n{proc.stdout}"
    assert list(tmp_path.iterdir()) == [], "the example left files behind"
