"""Expert backends behind one async, batched protocol, and :func:`make_expert` to build them by name.

Backends register by name here (built-ins, imported lazily so optional dependencies stay optional)
and through the entry-point group ``eapo.experts`` (third-party packages add their own).
"""

from __future__ import annotations

from eapo_env.experts.base import (
    Expert,
    ExpertReply,
    ExpertRequest,
    SyncExpert,
    consult_blocking,
    failed_reply,
)
from eapo_env.experts.registry import available_experts, make_expert, register_expert

__all__ = [
    "Expert",
    "ExpertReply",
    "ExpertRequest",
    "SyncExpert",
    "available_experts",
    "consult_blocking",
    "failed_reply",
    "make_expert",
    "register_expert",
]
