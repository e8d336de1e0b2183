"""``pool``: K expert slots behind one expert (homogeneous replicas or a heterogeneous mix).

Which slot answers a request (``assignment``):

* ``"round_robin"`` (default): the query's index ``i`` within its consult, modulo K: query 1 of a
  consult goes to slot 0, query 2 to slot 1, ... The index is read from the request id, whose
  convention (set by the envs) is ``"<env>/<turn>/<i>"``: the integer after the last ``/``. An id
  without such a suffix uses its position in the batch instead.
* ``"hash"``: a stable hash (BLAKE2b) of the request id, modulo K. Use it for heterogeneous mixes
  when policies mostly ask a single query, which round-robin would always send to slot 0.

A batch (e.g. every consult of a vector-env step) is grouped per expert object, each expert is
called **once** with its sub-batch, all concurrently (``asyncio.gather``), and the replies are put
back in request order with ``reply.expert`` set to the slot's name (``"slot0:reference"``).

Example:
    >>> from eapo_env.experts import ExpertRequest
    >>> from eapo_env.problems import Problem
    >>> pool = ExpertPool(["reference", "constant"])
    >>> p = Problem("p", "2+2?", "4")
    >>> [r.expert for r in pool.consult_sync([ExpertRequest(f"e0/0/{i}", p, "q") for i in range(3)])]
    ['slot0:reference', 'slot1:constant', 'slot0:reference']
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eapo_env.experts.base import Expert, ExpertReply, ExpertRequest, failed_reply, normalize_replies

ExpertSpec = Expert | str | Mapping[str, Any]


def build_expert(spec: ExpertSpec) -> Expert:
    """An expert from an object, a registered name, or ``{"name": <registered name>, **kwargs}``."""
    from eapo_env.experts.registry import make_expert  # lazy: avoid an import cycle with the registry

    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        try:
            name = kwargs.pop("name")
        except KeyError:
            raise ValueError(f"an expert spec mapping needs a 'name' key, got {sorted(spec)}") from None
        return make_expert(name, **kwargs)
    return make_expert(spec)


def query_index(request_id: str, position: int) -> int:
    """The query index encoded in ``"<env>/<turn>/<i>"``, else ``position``."""
    tail = request_id.rpartition("/")[2]
    return int(tail) if tail.isdigit() else position


class ExpertPool:
    """K slots, each an expert; see the module docstring for the slot assignment.

    Args:
        experts: one spec per slot (object, registered name, or ``{"name": ..., **kwargs}``).
        names: slot names (default ``"slot<i>:<expert name>"``).
        assignment: ``"round_robin"`` or ``"hash"``.
    """

    name = "pool"

    def __init__(
        self,
        experts: Sequence[ExpertSpec],
        names: Sequence[str] | None = None,
        assignment: str = "round_robin",
    ) -> None:
        if isinstance(experts, str | Mapping) or not experts:
            raise ValueError("ExpertPool needs a non-empty sequence of experts (one per slot)")
        if assignment not in ("round_robin", "hash"):
            raise ValueError(f"assignment must be 'round_robin' or 'hash', got {assignment!r}")
        self.experts: list[Expert] = [build_expert(e) for e in experts]
        if names is None:
            names = [f"slot{i}:{getattr(e, 'name', type(e).__name__)}" for i, e in enumerate(self.experts)]
        if len(names) != len(self.experts):
            raise ValueError(f"{len(names)} names for {len(self.experts)} slots")
        self.names = [str(n) for n in names]
        self.assignment = assignment
        # Slots sharing one expert object (replicas) are served by a single call to it.
        self._groups: dict[int, Expert] = {id(e): e for e in self.experts}
        self._syncs = [getattr(e, "consult_sync", None) for e in self.experts]

    @classmethod
    def replicas(cls, expert: ExpertSpec, k: int = 3, assignment: str = "round_robin") -> ExpertPool:
        """A homogeneous pool: one expert object shared by ``k`` slots (``"replica<i>:<name>"``).

        Example:
            >>> ExpertPool.replicas("reference", 3).names
            ['replica0:reference', 'replica1:reference', 'replica2:reference']
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        shared = build_expert(expert)
        base = getattr(shared, "name", type(shared).__name__)
        return cls([shared] * k, names=[f"replica{i}:{base}" for i in range(k)], assignment=assignment)

    def __len__(self) -> int:
        return len(self.experts)

    def slot_of(self, request: ExpertRequest, position: int) -> int:
        """The slot that answers ``request`` (``position``: its index in the batch)."""
        if self.assignment == "hash":
            digest = hashlib.blake2b(request.request_id.encode(), digest_size=8).digest()
            return int.from_bytes(digest, "little") % len(self.experts)
        return query_index(request.request_id, position) % len(self.experts)

    def _group(self, requests: Sequence[ExpertRequest]) -> tuple[list[int], dict[int, list[int]]]:
        slots = [self.slot_of(r, i) for i, r in enumerate(requests)]
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(slots):
            groups.setdefault(id(self.experts[s]), []).append(i)
        return slots, groups

    def _relabel(self, reply: ExpertReply, slot: int) -> ExpertReply:
        name = self.names[slot]
        return ExpertReply(reply.text, reply.status, reply.latency_s, reply.tokens, name, reply.error)

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        """Replies in request order; a slot whose expert raises gets ``error`` replies, others are unaffected."""
        if not requests:
            return []
        slots, groups = self._group(requests)
        keys = list(groups)

        async def call(key: int) -> list[ExpertReply]:
            idx = groups[key]
            return await self._groups[key].consult([requests[i] for i in idx])

        results = await asyncio.gather(*(call(k) for k in keys), return_exceptions=True)
        out: list[ExpertReply | None] = [None] * len(requests)
        for key, result in zip(keys, results):
            idx = groups[key]
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                replies = [failed_reply("error", f"{type(result).__name__}: {result}"[:200])] * len(idx)
            else:
                replies = normalize_replies(result, len(idx))
            for i, reply in zip(idx, replies):
                out[i] = self._relabel(reply, slots[i])
        filled = [reply for reply in out if reply is not None]
        assert len(filled) == len(out), "groups partition the batch: every index is filled"
        return filled

    @property
    def consult_sync(self) -> Callable[[Sequence[ExpertRequest]], list[ExpertReply]]:
        """The blocking path; exists (no ``AttributeError``) only when every slot's expert is sync."""
        if any(s is None for s in self._syncs):
            raise AttributeError("this pool has an async-only slot (no consult_sync)")
        return self._consult_sync

    def _consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        slots, groups = self._group(requests)
        out: list[ExpertReply | None] = [None] * len(requests)
        for key, idx in groups.items():
            expert = self._groups[key]
            try:
                replies = normalize_replies(expert.consult_sync([requests[i] for i in idx]), len(idx))  # type: ignore[attr-defined]
            except Exception as exc:  # one broken slot must not take the others down
                replies = [failed_reply("error", f"{type(exc).__name__}: {exc}"[:200])] * len(idx)
            for i, reply in zip(idx, replies):
                out[i] = self._relabel(reply, slots[i])
        return out  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Close every slot's expert that has an ``aclose``."""
        for expert in self._groups.values():
            close = getattr(expert, "aclose", None)
            if close is not None:
                await close()
