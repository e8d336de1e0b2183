"""The expert protocol: batched and async first, with a blocking convenience call.

An expert receives a *batch* of :class:`ExpertRequest` and returns one :class:`ExpertReply` per
request, in order. A backend never raises for a per-request failure: it returns a reply whose
``status`` is ``"timeout"`` or ``"error"`` (the env then marks that entry ``unavailable``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from eapo_env.problems.base import Problem

ReplyStatus = Literal["ok", "timeout", "error"]
REPLY_STATUSES: tuple[str, ...] = ("ok", "timeout", "error")


class ExpertRequest(NamedTuple):
    """One query to one expert about one problem.

    A NamedTuple: immutable, typed fields, cheap to build (a vector env builds thousands per step).
    """

    request_id: str
    problem: Problem
    query: str


class ExpertReply(NamedTuple):
    """One expert's reply (a NamedTuple, like :class:`ExpertRequest`).

    Attributes:
        text: the reply text (empty unless ``status == "ok"``).
        status: ``"ok"``, ``"timeout"`` or ``"error"``.
        latency_s: wall time spent on this request, seconds.
        tokens: completion tokens produced (0 when unknown or failed).
        expert: name of the expert/slot that answered (pools fill this in).
        error: a short reason when ``status != "ok"``.
    """

    text: str
    status: ReplyStatus = "ok"
    latency_s: float = 0.0
    tokens: int = 0
    expert: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def failed_reply(status: ReplyStatus, error: str, latency_s: float = 0.0, expert: str = "") -> ExpertReply:
    """A reply that carries no text, for a request that timed out or failed."""
    return ExpertReply(text="", status=status, latency_s=latency_s, tokens=0, expert=expert, error=error)


@runtime_checkable
class Expert(Protocol):
    """Anything that answers a batch of requests asynchronously.

    Example:
        >>> import asyncio
        >>> from eapo_env.experts import make_expert, ExpertRequest
        >>> from eapo_env.problems import load_problems
        >>> problem = load_problems("generated:arithmetic")[0]
        >>> expert = make_expert("constant")
        >>> [r.status for r in asyncio.run(expert.consult([ExpertRequest("r0", problem, "help?")]))]
        ['ok']
    """

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]: ...


class SyncExpert:
    """Base for experts whose work is pure CPU and fast (no I/O): implement :meth:`consult_sync`.

    The env calls ``consult_sync`` directly on such experts, which skips the event loop entirely
    (this is what keeps a single env above 20k steps/s with the ``reference`` expert).
    """

    name: str = "expert"

    def consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        raise NotImplementedError

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        return self.consult_sync(requests)


class _LoopThread:
    """One daemon thread running an event loop, shared by every blocking consult in the process.

    Running coroutines there (rather than ``asyncio.run`` per call) works whether or not the caller
    is itself inside a running loop (Jupyter, an async trainer), and keeps HTTP connection pools of
    async backends alive across calls.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="eapo-experts", daemon=True)
                thread.start()
                self._loop = loop
            return self._loop


_LOOP = _LoopThread()


def expert_loop() -> asyncio.AbstractEventLoop:
    """The shared background event loop used for blocking consults."""
    return _LOOP.loop()


class ConsultCall:
    """One batched ``expert.consult(requests)`` in flight; started by the constructor, never blocking.

    An async backend runs on the shared background loop (:func:`expert_loop`), so the caller keeps
    working (a vector env's ``submit``); an expert with ``consult_sync`` (pure CPU, microseconds) is
    called right away. :meth:`result` never raises for expert faults: a backend exception, a batch past
    ``timeout_s``, a wrong number of replies or a reply of the wrong type become ``timeout`` / ``error``
    replies, so the env marks those entries ``unavailable``.

    Example:
        >>> from eapo_env.experts import make_expert
        >>> from eapo_env.problems import Problem
        >>> call = ConsultCall(make_expert("constant", text="hi"), [ExpertRequest("r0", Problem("p", "?", "1"), "q")])
        >>> call.done(), [r.text for r in call.result()]
        (True, ['hi'])
    """

    def __init__(self, expert: Expert, requests: Sequence[ExpertRequest], timeout_s: float | None = None) -> None:
        self.requests = list(requests)
        self.timeout_s = timeout_s
        self._start = time.perf_counter()
        self._replies: list[ExpertReply] | None = None  # set at once for a sync expert
        self._future: concurrent.futures.Future[list[ExpertReply]] | None = None
        sync = getattr(expert, "consult_sync", None)
        if not self.requests:
            self._replies = []
        elif sync is not None:
            self._replies = self._call_sync(sync)
        else:
            self._future = asyncio.run_coroutine_threadsafe(self._call_async(expert), expert_loop())

    def done(self) -> bool:
        """Whether the replies are in (:meth:`result` returns at once)."""
        return self._future is None or self._future.done()

    def result(self) -> list[ExpertReply]:
        """One reply per request, in order; waits at most ``timeout_s`` (plus a second of grace)."""
        if self._future is None:
            assert self._replies is not None
            return self._replies
        wait = None if self.timeout_s is None else self.timeout_s + 1.0
        try:
            return self._future.result(timeout=wait)
        except concurrent.futures.TimeoutError:  # the loop is stuck (a backend blocking it): give up on it
            self._future.cancel()
            return self._failed("timeout", "batch deadline exceeded")
        except concurrent.futures.CancelledError:
            return self._failed("error", "consult cancelled")

    def _call_sync(self, sync: Callable[[Sequence[ExpertRequest]], object]) -> list[ExpertReply]:
        try:
            replies = sync(self.requests)
        except Exception as exc:  # a backend bug must not crash the env: the contract is a status
            return self._failed("error", f"{type(exc).__name__}: {exc}")
        return normalize_replies(replies, len(self.requests), self._elapsed())

    async def _call_async(self, expert: Expert) -> list[ExpertReply]:
        try:
            async with asyncio.timeout(self.timeout_s):  # not wait_for: that adds a task, two loop turns
                replies = await expert.consult(self.requests)
        except TimeoutError:
            return self._failed("timeout", "batch deadline exceeded")
        except Exception as exc:
            return self._failed("error", f"{type(exc).__name__}: {exc}")
        return normalize_replies(replies, len(self.requests), self._elapsed())

    def _elapsed(self) -> float:
        return time.perf_counter() - self._start

    def _failed(self, status: ReplyStatus, error: str) -> list[ExpertReply]:
        elapsed = self._elapsed()
        return [failed_reply(status, error[:200], elapsed) for _ in self.requests]


def consult_blocking(
    expert: Expert, requests: Sequence[ExpertRequest], timeout_s: float | None = None
) -> list[ExpertReply]:
    """Consult ``expert`` and wait for the replies; never raises for expert failures.

    Args:
        expert: any object with ``async consult(requests)`` (or a fast ``consult_sync``).
        requests: the batch.
        timeout_s: overall deadline for the batch; requests still pending then get ``timeout``.

    Returns:
        One reply per request, in order (see :class:`ConsultCall` for how faults become replies).
    """
    if not requests:
        return []
    return ConsultCall(expert, requests, timeout_s).result()


def normalize_replies(replies: object, expected: int, elapsed_s: float = 0.0) -> list[ExpertReply]:
    """Check a backend's return value: exactly ``expected`` :class:`ExpertReply` objects."""
    if not isinstance(replies, list | tuple) or len(replies) != expected:
        got = len(replies) if isinstance(replies, list | tuple) else type(replies).__name__
        return [failed_reply("error", f"backend returned {got} replies for {expected} requests", elapsed_s)] * expected
    out: list[ExpertReply] = []
    for reply in replies:
        if not isinstance(reply, ExpertReply):
            out.append(failed_reply("error", f"backend returned {type(reply).__name__}, not ExpertReply", elapsed_s))
        elif reply.status not in REPLY_STATUSES:
            out.append(failed_reply("error", f"backend returned status {reply.status!r:.60}", elapsed_s))
        else:
            out.append(reply)
    return out
