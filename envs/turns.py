"""The turn semantics of DESIGN §3, as small pure functions shared by every EAPO env.

:class:`envs.math_env.EAPOMathEnv` (one env) and :class:`envs.vector_env.EAPOVectorEnv` (N envs,
one batched expert call per step) both run a turn through these functions, so the two cannot drift
apart. A consulting turn is split in two phases so that a vector env can gather the requests of
every sub-env before calling the experts once:

1. :func:`plan_consult` — format error / evaluation mode / acceptance draws (the env's own RNG);
2. the caller sends the accepted queries (:func:`expert_requests`) and reads the replies back with
   :func:`read_replies`;
3. :func:`experts_observation` renders the experts block, one entry per kept query.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> obs, accepted = plan_consult(("q1", "q2"), max_experts=3, eval_mode=False, acceptance_prob=1.0, rng=rng)
    >>> obs, accepted
    (None, [True, True])
    >>> print(experts_observation(accepted, ["x = 7", None])[0], end="")
    <BLANKLINE>
    <experts>
    <expert index="1">x = 7</expert>
    <expert index="2" status="unavailable">unavailable</expert>
    </experts>
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from eapo_env import prompts
from eapo_env.experts import ExpertReply, ExpertRequest
from eapo_env.problems import Problem
from eapo_env.protocol import ParsedAction

#: Keys every step's ``info`` carries (before wrappers); optional keys are listed apart.
STEP_INFO_KEYS: tuple[str, ...] = (
    "problem_id", "action", "queries", "accepted", "unavailable", "dropped_queries", "blank_queries",
    "format_error", "action_truncated", "expert_timeouts", "expert_errors", "turn", "turns_left", "consults",
)
#: Keys a step's ``info`` carries only sometimes.
OPTIONAL_STEP_INFO_KEYS: tuple[str, ...] = ("expert_slots", "replies_cut", "consult_disabled", "answer")
#: Keys of the ``info`` returned by ``reset``.
RESET_INFO_KEYS: tuple[str, ...] = ("problem_id", "turn", "turns_left", "consults", "acceptance_prob", "max_turns")


def check_env_args(max_experts: Any, max_turns: Any, render_mode: Any) -> None:
    """The constructor checks every EAPO env shares."""
    if not isinstance(max_experts, int) or max_experts < 1:
        raise ValueError(f"max_experts must be an int >= 1, got {max_experts!r}")
    if not isinstance(max_turns, int) or max_turns < 1:
        raise ValueError(f"max_turns must be an int >= 1, got {max_turns!r}")
    if render_mode not in (None, "ansi"):
        raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")


def choose_problem(source: Any, options: dict[str, Any] | None, rng: np.random.Generator, env: int = 0) -> Problem:
    """The problem of a new episode: pinned by ``options`` (``problem``, ``problem_id`` or
    ``problem_index``; a vector env also accepts a sequence of N values, ``env`` picks one), else drawn
    with the env's own RNG (:func:`draw_index`, never a global RNG)."""
    if options:
        for key in ("problem", "problem_id", "problem_index"):
            if key not in options:
                continue
            value = options[key]
            if isinstance(value, Sequence) and not isinstance(value, str):
                value = value[env]
            if key == "problem":
                if not isinstance(value, Problem):
                    raise TypeError(f"options['problem'] must be a Problem, got {type(value).__name__}")
                return value
            if key == "problem_id":
                try:
                    return source.get(str(value))
                except KeyError:
                    raise ValueError(f"unknown problem_id {value!r}") from None
            return source[int(value) % len(source)]
    return source[draw_index(rng, len(source))]


def draw_index(rng: np.random.Generator, size: int) -> int:
    """A uniform index in ``[0, size)`` from one 64-bit draw of ``rng``'s bit generator.

    ``(u * size) >> 64`` with a uniform 64-bit ``u`` (Lemire's multiply-shift): the bias is below
    ``size / 2**64``, nil for any problem set. One raw draw costs a fifth of ``integers(size)``,
    which matters when thousands of envs reset per step.

    Example:
        >>> draw_index(np.random.default_rng(0), 10)
        6
    """
    return (rng.bit_generator.random_raw() * size) >> 64


def clip_action(action: Any, max_chars: int) -> tuple[str, bool]:
    """Check an action's type and cut it to ``max_chars`` (§3.7: cut and flagged, never an error).

    Example:
        >>> clip_action("abcdef", 4)
        ('abcd', True)
    """
    if not isinstance(action, str):
        raise TypeError(f"action must be str, got {type(action).__name__}")
    if len(action) > max_chars:
        return action[:max_chars], True
    return action, False


def draw_acceptance(rng: np.random.Generator, p: float, n: int) -> list[bool]:
    """Accept each of ``n`` kept queries independently with probability ``p``, from the env's RNG.

    ``p >= 1`` and ``p <= 0`` draw nothing, so the RNG stream (and so the problems later drawn from
    it) does not depend on whether a run consulted with p = 1.

    Example:
        >>> draw_acceptance(np.random.default_rng(0), 1.0, 2)
        [True, True]
    """
    if p >= 1.0:
        return [True] * n
    if p <= 0.0:
        return [False] * n
    return (rng.random(n) < p).tolist()


def plan_consult(
    queries: Sequence[str],
    *,
    max_experts: int,
    eval_mode: bool,
    acceptance_prob: float,
    rng: np.random.Generator,
) -> tuple[str | None, list[bool]]:
    """Phase 1 of a consult: ``(observation, [])`` when no expert may be called, else ``(None, accepted)``.

    No query left → the format-error text; evaluation mode → the consultation-disabled text (and no
    acceptance draw: evaluation must not consume the RNG differently from a run without consults).

    Example:
        >>> plan_consult((), max_experts=3, eval_mode=False, acceptance_prob=1.0, rng=None)[0].strip()[:18]
        '<env>Format error:'
    """
    if not queries:
        return prompts.EMPTY_CONSULT.format(max_experts=max_experts), []
    if eval_mode:
        return prompts.CONSULT_DISABLED, []
    return None, draw_acceptance(rng, acceptance_prob, len(queries))


def expert_requests(
    prefix: str, problem: Problem, queries: Sequence[str], accepted: Sequence[bool] | None
) -> list[ExpertRequest]:
    """One request per accepted query (``accepted=None``: all); ids are ``"<prefix>/<i>"`` with ``i`` the
    index among the sent ones (an expert pool reads the trailing ``/i`` as the slot).

    Example:
        >>> p = Problem("p1", "1+1?", "2")
        >>> [r.request_id for r in expert_requests("e0/1", p, ["a", "b", "c"], [True, False, True])]
        ['e0/1/0', 'e0/1/1']
    """
    sent = queries if accepted is None or all(accepted) else [q for q, ok in zip(queries, accepted) if ok]
    if len(sent) <= len(_ID_SUFFIXES):
        # tuple.__new__ is what the NamedTuple's own constructor calls, minus a Python-level frame:
        # a vector env builds thousands of requests per step.
        return [_new_tuple(ExpertRequest, (prefix + suffix, problem, q)) for suffix, q in zip(_ID_SUFFIXES, sent)]
    return [ExpertRequest(f"{prefix}/{i}", problem, q) for i, q in enumerate(sent)]


# "/<i>" for the first request ids of a consult, prebuilt: ids are built on every consult.
_ID_SUFFIXES = tuple(f"/{i}" for i in range(16))
_new_tuple = tuple.__new__


class ReplyStats:
    """Counters of one turn's replies (what ``info`` reports), filled by :func:`read_replies`."""

    __slots__ = ("cut", "errors", "latency_s", "slots", "timeouts")

    def __init__(self) -> None:
        self.cut = 0
        self.timeouts = 0
        self.errors = 0
        self.latency_s = 0.0
        self.slots: tuple[str, ...] = ()


def read_replies(replies: Iterable[ExpertReply], max_reply_chars: int, stats: ReplyStats) -> list[str | None]:
    """Reply texts (cut to ``max_reply_chars``), ``None`` for a timed-out or failed reply.

    Example:
        >>> stats = ReplyStats()
        >>> read_replies([ExpertReply("abcdef", expert="e1"), ExpertReply("", "timeout")], 3, stats)
        ['abc', None]
        >>> stats.cut, stats.timeouts, stats.slots
        (1, 1, ('e1',))
    """
    texts: list[str | None] = []
    slots: list[str] = []
    for reply in replies:
        stats.latency_s += reply.latency_s
        if reply.status == "ok":
            text = reply.text
            if len(text) > max_reply_chars:
                text = text[:max_reply_chars]
                stats.cut += 1
            texts.append(text)
            slots.append(reply.expert)
        else:
            texts.append(None)
            if reply.status == "timeout":
                stats.timeouts += 1
            else:
                stats.errors += 1
    stats.slots = tuple(slots)
    return texts


def experts_observation(accepted: Sequence[bool] | None, texts: Sequence[str | None]) -> tuple[str, int, int]:
    """Phase 3: ``(experts block, accepted count, unavailable count)``.

    ``texts`` holds one entry per *accepted* query, in order; rejected queries become
    ``unavailable`` entries in place (``accepted=None``: every query was accepted).
    """
    if accepted is None or len(texts) == len(accepted):  # all accepted (p = 1, the usual case): nothing to merge
        merged: Sequence[str | None] = texts
    else:
        it = iter(texts)
        merged = [next(it) if ok else None for ok in accepted]
    unavailable = merged.count(None)
    return prompts.render_experts_block(merged), len(texts), unavailable


def base_step_info(problem_id: str, parsed: ParsedAction, action_truncated: bool) -> dict[str, Any]:
    """The ``info`` of a step before the turn is resolved (counters filled in afterwards)."""
    return {
        "problem_id": problem_id,
        "action": parsed.kind,
        "queries": len(parsed.queries),
        "accepted": 0,
        "unavailable": 0,
        "dropped_queries": parsed.dropped_queries,
        "blank_queries": parsed.blank_queries,
        "format_error": bool(parsed.format_error),
        "action_truncated": action_truncated,
        "expert_timeouts": 0,
        "expert_errors": 0,
    }


def is_truncated(terminated: bool, turn: int, max_turns: int) -> bool:
    """§3.6: the budget is spent without an answer."""
    return not terminated and turn >= max_turns
