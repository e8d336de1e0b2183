"""The turn semantics of DESIGN §3 as small pure functions: the one implementation every EAPO env runs.

A turn has two phases, so that a vector env can gather the expert requests of many envs into one
batched call (DESIGN §7):

1. :func:`plan_turn` — clip and parse the action, decide what needs no expert (nudge, format error,
   evaluation mode, answer), draw the acceptance of each kept query from the env's own RNG, and build
   the :class:`~eapo_env.experts.ExpertRequest` of each accepted query. Nothing blocks.
2. :func:`consult_observation` — with the replies in hand, render the experts block (one entry per
   kept query, ``unavailable`` for rejected or failed ones) and count what ``info`` reports.

Example:
    >>> import numpy as np
    >>> from eapo_env.experts import ExpertReply
    >>> from eapo_env.problems import Problem
    >>> knobs = TurnKnobs(max_experts=3, acceptance_prob=1.0, eval_mode=False, max_action_chars=100)
    >>> plan = plan_turn("<consult><query>q1</query><query>q2</query></consult>", knobs,
    ...                  Problem("p", "1+1?", "2"), TurnKey(0, 0, 1), lambda: np.random.default_rng(0))
    >>> [r.request_id for r in plan.requests]
    ['e0/1/0', 'e0/1/1']
    >>> obs, counts = consult_observation(plan, [ExpertReply("x = 7"), ExpertReply("", "timeout")], 1000)
    >>> print(obs, end="")
    <BLANKLINE>
    <experts>
    <expert index="1">x = 7</expert>
    <expert index="2" status="unavailable">unavailable</expert>
    </experts>
    >>> counts.accepted, counts.unavailable, counts.timeouts
    (2, 1, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from eapo_env import prompts
from eapo_env.experts import ExpertReply, ExpertRequest
from eapo_env.problems import Problem, ProblemSource
from eapo_env.protocol import ParsedAction
from eapo_env.scoring import read_action


def check_env_args(max_experts: Any, max_turns: Any, render_mode: Any) -> None:
    """The constructor checks of an EAPO env."""
    if not isinstance(max_experts, int) or max_experts < 1:
        raise ValueError(f"max_experts must be an int >= 1, got {max_experts!r}")
    if not isinstance(max_turns, int) or max_turns < 1:
        raise ValueError(f"max_turns must be an int >= 1, got {max_turns!r}")
    if render_mode not in (None, "ansi"):
        raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")


def pinned_problem(source: ProblemSource, options: Mapping[str, Any] | None) -> Problem | None:
    """The problem ``options`` pins for a new episode (``problem``, ``problem_id`` or
    ``problem_index``), or ``None``: then the env draws one with its own RNG (:func:`draw_index`)."""
    options = options or {}
    if "problem" in options:
        if not isinstance(options["problem"], Problem):
            raise TypeError(f"options['problem'] must be a Problem, got {type(options['problem']).__name__}")
        return options["problem"]
    if "problem_id" in options:
        try:
            return source.get(str(options["problem_id"]))
        except KeyError:
            raise ValueError(f"unknown problem_id {options['problem_id']!r}") from None
    if "problem_index" in options:
        return source[int(options["problem_index"]) % len(source)]
    return None


def draw_index(rng: np.random.Generator, size: int) -> int:
    """A uniform index in ``[0, size)`` from one 64-bit draw of ``rng``'s bit generator.

    ``(u * size) >> 64`` with a uniform 64-bit ``u`` (Lemire's multiply-shift); the bias is below
    ``size / 2**64``, nil for any problem set. (Kept over ``rng.integers`` because recorded runs and
    seeds map to problems through it.)

    Example:
        >>> draw_index(np.random.default_rng(0), 10)
        6
    """
    return int((int(rng.bit_generator.random_raw()) * size) >> 64)


def clip_action(action: Any, max_chars: int) -> tuple[str, bool]:
    """Check an action's type and cut it to ``max_chars`` (§3.7: cut and flagged, never an error).

    The rule lives in :func:`eapo_env.scoring.read_action`, which :func:`plan_turn` calls (and so
    does :func:`eapo_env.score_turn`).

    Example:
        >>> clip_action("abcdef", 4)
        ('abcd', True)
    """
    read = read_action(action, 1, max_chars)
    return read.text, read.truncated


def draw_acceptance(rng: Callable[[], np.random.Generator], p: float, n: int) -> list[bool]:
    """Accept each of ``n`` kept queries independently with probability ``p``, from the env's RNG.

    ``p >= 1`` and ``p <= 0`` draw nothing (``rng``, which returns the env's generator, is then not
    even called), so the RNG stream (and so the problems later drawn from it) does not depend on
    whether a run consulted with p = 1.

    Example:
        >>> draw_acceptance(lambda: np.random.default_rng(0), 1.0, 2)
        [True, True]
    """
    if p >= 1.0:
        return [True] * n
    if p <= 0.0:
        return [False] * n
    return [bool(u < p) for u in rng().random(n)]


class TurnKnobs(NamedTuple):
    """The env settings a turn is planned under."""

    max_experts: int
    acceptance_prob: float
    eval_mode: bool
    max_action_chars: int


class TurnKey(NamedTuple):
    """Which turn a plan is for: the env that planned it (``id``), its episode and the turn number
    (1-based). ``complete`` refuses a plan whose key is not the env's next turn (a stale plan)."""

    env: int
    episode: int
    turn: int


class TurnPlan(NamedTuple):
    """Phase 1 of a turn: everything decided before any expert is called. The plan owns the pending
    turn: the env keeps nothing between ``prepare`` and ``complete``. Immutable (a ``NamedTuple``:
    built on every step, where a frozen dataclass's ``__init__`` costs 3x more).

    Attributes:
        key: the turn it plans (see :class:`TurnKey`).
        action: the action as the env received it (after any wrapper rewrote it), before clipping.
        knobs: the settings it was planned under.
        text: the action cut to ``max_action_chars``; ``truncated``: whether it was cut.
        parsed: the parsed action.
        problem: the episode's problem (requests carry it; a verifier reads it).
        early_observation: the observation when no expert is needed: the nudge of a reasoning turn,
            the format-error or consultation-disabled text of a consult; ``None`` for an answer and
            for a consult that reaches the experts block.
        accepted: one flag per kept query (a consult that reaches the experts block).
        requests: one request per accepted query, in order.
        expert: the expert the requests are for (a vector env batches the plans of one expert).
        timeout_s: the deadline for the replies.
    """

    key: TurnKey
    action: str
    knobs: TurnKnobs
    text: str
    truncated: bool
    parsed: ParsedAction
    problem: Problem
    early_observation: str | None = None
    accepted: tuple[bool, ...] = ()
    requests: tuple[ExpertRequest, ...] = ()
    expert: Any = None
    timeout_s: float | None = None


def plan_turn(
    action: Any,
    knobs: TurnKnobs,
    problem: Problem,
    key: TurnKey,
    rng: Callable[[], np.random.Generator],
    *,
    request_prefix: str = "",
    expert: Any = None,
    timeout_s: float | None = None,
) -> TurnPlan:
    """Phase 1 of a turn (§3 rules 1-5); draws acceptance from the generator ``rng()`` returns (called
    only for a draw: a consult with 0 < p < 1), never blocks.

    Request ids are ``"<request_prefix>e<episode>/<turn>/<i>"`` with ``i`` the index among the sent
    queries (an expert pool reads the trailing ``/i`` as the slot).
    """
    # One reading of the action for the env and for eapo_env.score_turn (so they cannot drift).
    text, truncated, parsed = read_action(action, knobs.max_experts, knobs.max_action_chars)
    early: str | None = None
    accepted: tuple[bool, ...] = ()
    requests: tuple[ExpertRequest, ...] = ()
    if parsed.kind == "reason":
        early = prompts.NUDGE
    elif parsed.kind == "consult":
        if not parsed.queries:
            early = prompts.EMPTY_CONSULT.format(max_experts=knobs.max_experts)
        elif knobs.eval_mode:  # no acceptance draw: evaluation consumes the RNG as a run without consults
            early = prompts.CONSULT_DISABLED
        else:
            accepted = tuple(draw_acceptance(rng, knobs.acceptance_prob, len(parsed.queries)))
            sent = [q for q, ok in zip(parsed.queries, accepted) if ok]
            prefix = f"{request_prefix}e{key.episode}/{key.turn}"
            requests = tuple(ExpertRequest(f"{prefix}/{i}", problem, q) for i, q in enumerate(sent))
    return TurnPlan(key, action, knobs, text, truncated, parsed, problem, early, accepted, requests, expert, timeout_s)


@dataclass(slots=True)
class ReplyCounts:
    """What a consult's replies add to ``info``."""

    accepted: int = 0
    unavailable: int = 0
    timeouts: int = 0
    errors: int = 0
    cut: int = 0
    latency_s: float = 0.0
    slots: tuple[str, ...] = ()


def consult_observation(
    plan: TurnPlan, replies: Sequence[ExpertReply], max_reply_chars: int
) -> tuple[str, ReplyCounts]:
    """Phase 2 of a consult: the experts block from one reply per request of ``plan``, and its counts.

    A reply that is not ``ok`` (timeout, error) becomes an ``unavailable`` entry, as does a rejected
    query; an ok reply is cut to ``max_reply_chars`` (counted in ``cut``).
    """
    if len(replies) != len(plan.requests):
        raise ValueError(f"{len(replies)} replies for {len(plan.requests)} requests")
    counts = ReplyCounts(accepted=len(plan.requests))
    texts: list[str | None] = []
    slots: list[str] = []
    for reply in replies:
        counts.latency_s += reply.latency_s
        if reply.status == "ok":
            if len(reply.text) > max_reply_chars:
                counts.cut += 1
            texts.append(reply.text[:max_reply_chars])
            slots.append(reply.expert)
        else:
            texts.append(None)
            counts.timeouts += reply.status == "timeout"
            counts.errors += reply.status != "timeout"
    answered = iter(texts)
    entries = [next(answered) if ok else None for ok in plan.accepted]
    counts.unavailable = entries.count(None)
    counts.slots = tuple(slots)
    return prompts.render_experts_block(entries), counts


def is_truncated(terminated: bool, turn: int, max_turns: int) -> bool:
    """§3.6: the budget is spent without an answer."""
    return not terminated and turn >= max_turns
