"""p2pcomm: peer-to-peer micro-communities.

Signed append-only group logs, CRDT membership and moderation, an encrypted gossip
transport and discovery, with no server. The sans-IO protocol core lives in
:mod:`p2pcomm.core`; storage in :mod:`p2pcomm.store`; trio networking in
:mod:`p2pcomm.net`. This module re-exports the most used names.

The names that live above the core (stores, ``GroupLog``, key files) are imported on
first use, so ``import p2pcomm.core`` loads no I/O module (sqlite3, trio, sockets).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .core.content import Item as Item
from .core.identity import KeyPair as KeyPair
from .core.identity import MemberId as MemberId
from .core.invitation import InvitationCode as InvitationCode
from .core.log import Entry as Entry
from .core.log import ForkProof as ForkProof
from .core.log import Header as Header
from .core.log import IngestResult as IngestResult
from .core.membership import GroupState as GroupState
from .core.membership import Member as Member
from .core.membership import Role as Role
from .errors import BundleError as BundleError
from .errors import ControlError as ControlError
from .errors import DecodeError as DecodeError
from .errors import ErrorCode as ErrorCode
from .errors import IdentityError as IdentityError
from .errors import LocalProtocolError as LocalProtocolError
from .errors import NotFoundError as NotFoundError
from .errors import P2PCommError as P2PCommError
from .errors import ProtocolError as ProtocolError
from .errors import RefusedError as RefusedError
from .errors import RemoteProtocolError as RemoteProtocolError
from .errors import SealError as SealError
from .errors import StoreError as StoreError
from .errors import ValidationError as ValidationError

if TYPE_CHECKING:
    from .bundle import export_bundle as export_bundle
    from .bundle import import_bundle as import_bundle
    from .community import Group as Group
    from .community import Invitation as Invitation
    from .group import GroupLog as GroupLog
    from .group import ThreadedSignatures as ThreadedSignatures
    from .group import VerifyReport as VerifyReport
    from .keys import generate_keypair as generate_keypair
    from .keys import load_keypair as load_keypair
    from .keys import save_keypair as save_keypair
    from .net.live import LiveGroup as LiveGroup
    from .net.node import Node as Node
    from .net.node import open_node as open_node
    from .store import MemoryStore as MemoryStore
    from .store import SqliteStore as SqliteStore
    from .store import Store as Store

_LAZY = {
    "Group": ".community",
    "Invitation": ".community",
    "export_bundle": ".bundle",
    "import_bundle": ".bundle",
    "LiveGroup": ".net.live",
    "Node": ".net.node",
    "open_node": ".net.node",
    "GroupLog": ".group",
    "ThreadedSignatures": ".group",
    "VerifyReport": ".group",
    "generate_keypair": ".keys",
    "load_keypair": ".keys",
    "save_keypair": ".keys",
    "MemoryStore": ".store",
    "SqliteStore": ".store",
    "Store": ".store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'p2pcomm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "BundleError",
    "ControlError",
    "DecodeError",
    "Entry",
    "ErrorCode",
    "ForkProof",
    "Group",
    "GroupLog",
    "GroupState",
    "Header",
    "IdentityError",
    "IngestResult",
    "Invitation",
    "InvitationCode",
    "Item",
    "KeyPair",
    "LiveGroup",
    "LocalProtocolError",
    "Member",
    "MemberId",
    "MemoryStore",
    "Node",
    "NotFoundError",
    "P2PCommError",
    "ProtocolError",
    "RefusedError",
    "RemoteProtocolError",
    "Role",
    "SealError",
    "SqliteStore",
    "Store",
    "StoreError",
    "ThreadedSignatures",
    "ValidationError",
    "VerifyReport",
    "__version__",
    "export_bundle",
    "generate_keypair",
    "import_bundle",
    "load_keypair",
    "open_node",
    "save_keypair",
]
