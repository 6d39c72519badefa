"""Gossip for one group (spec/07-gossip.md): peer sampling (HyParView-class) and
broadcast along a tree (Plumtree-class), sans-IO, behind ``GossipState.handle``."""

from .events import (
    Bootstrap as Bootstrap,
)
from .events import (
    Broadcast as Broadcast,
)
from .events import (
    Connect as Connect,
)
from .events import (
    Deliver as Deliver,
)
from .events import (
    DialFailed as DialFailed,
)
from .events import (
    Disconnect as Disconnect,
)
from .events import (
    Effect as Effect,
)
from .events import (
    Input as Input,
)
from .events import (
    Offer as Offer,
)
from .events import (
    PeerDown as PeerDown,
)
from .events import (
    PeerUp as PeerUp,
)
from .events import (
    Received as Received,
)
from .events import (
    SendTo as SendTo,
)
from .events import (
    SetTimer as SetTimer,
)
from .events import (
    TimerFired as TimerFired,
)
from .events import (
    Verdict as Verdict,
)
from .hyparview import HyParViewConfig as HyParViewConfig
from .messages import decode_message as decode_message
from .messages import encode_message as encode_message
from .plumtree import PlumtreeConfig as PlumtreeConfig
from .state import GossipConfig as GossipConfig
from .state import GossipState as GossipState

__all__ = [
    "Bootstrap",
    "Broadcast",
    "Connect",
    "Deliver",
    "DialFailed",
    "Disconnect",
    "Effect",
    "GossipConfig",
    "GossipState",
    "HyParViewConfig",
    "Input",
    "Offer",
    "PeerDown",
    "PeerUp",
    "PlumtreeConfig",
    "Received",
    "SendTo",
    "SetTimer",
    "TimerFired",
    "Verdict",
    "decode_message",
    "encode_message",
]
