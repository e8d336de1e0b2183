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
    with the env's own RNG (one ``integers(len(source))`` draw, never a global RNG)."""
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
    return source[int(rng.integers(len(source)))]


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
    prefix: str, problem: Problem, queries: Sequence[str], accepted: Sequence[bool]
) -> list[ExpertRequest]:
    """One request per accepted query; ids are ``"<prefix>/<i>"`` with ``i`` the index among the sent ones
    (an expert pool reads the trailing ``/i`` as the slot).

    Example:
        >>> p = Problem("p1", "1+1?", "2")
        >>> [r.request_id for r in expert_requests("e0/1", p, ["a", "b", "c"], [True, False, True])]
        ['e0/1/0', 'e0/1/1']
    """
    sent = queries if all(accepted) else [q for q, ok in zip(queries, accepted) if ok]
    return [ExpertRequest(f"{prefix}/{i}", problem, q) for i, q in enumerate(sent)]


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


def experts_observation(accepted: Sequence[bool], texts: Sequence[str | None]) -> tuple[str, int, int]:
    """Phase 3: ``(experts block, accepted count, unavailable count)``.

    ``texts`` holds one entry per *accepted* query, in order; rejected queries become
    ``unavailable`` entries in place.
    """
    if len(texts) == len(accepted):  # all accepted (p = 1, the usual case): nothing to merge
        merged: Sequence[str | None] = texts
    else:
        it = iter(texts)
        merged = [next(it) if ok else None for ok in accepted]
    unavailable = sum(1 for text in merged if text is None)
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


# ---------------------------------------------------------------------- batched info (vector envs)
#: ``info["action"]`` by kind code (0 reason, 1 consult, 2 answer).
KIND_NAMES = np.array(["reason", "consult", "answer"], dtype=object)


def object_array(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array holding ``values`` as they are (tuples stay tuples, not a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


class InfoBuilder:
    """A vector env's ``info``: one array per key plus its ``_key`` mask, as Gymnasium builds it.

    Gymnasium's rule (``VectorEnv._add_info``): ``int``/``float``/``bool`` values give int64/float64/bool
    arrays filled with zeros elsewhere, anything else an object array filled with ``None``; a key
    exists only if some env reported it. Here whole columns are written with one fancy assignment.

    Example:
        >>> b = InfoBuilder(3)
        >>> b.put("turn", np.array([0, 2]), np.array([1, 4]))
        >>> b.infos["turn"].tolist(), b.infos["_turn"].tolist()
        ([1, 0, 4], [True, False, True])
    """

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.infos: dict[str, Any] = {}

    def put(self, key: str, envs: np.ndarray, values: np.ndarray, *, array: np.ndarray | None = None) -> None:
        """Write ``values`` (aligned with ``envs``) under ``key``; ``array``: use this full array as is."""
        if len(envs) == 0:
            return
        infos = self.infos
        current = infos.get(key)
        if current is None:
            if array is not None:
                current = array
            elif values.dtype == object:
                current = np.full(self.num_envs, None, dtype=object)
            else:
                current = np.zeros(self.num_envs, dtype=values.dtype)
            infos[key] = current
            infos["_" + key] = np.zeros(self.num_envs, dtype=np.bool_)
        if array is None:
            current[envs] = values
        infos["_" + key][envs] = True

    def put_dict(self, key: str, envs: np.ndarray, sub: dict[str, Any]) -> None:
        """A nested info dict (``final_info``) reported by ``envs``."""
        if len(envs) == 0:
            return
        self.infos[key] = sub
        mask = self.infos.setdefault("_" + key, np.zeros(self.num_envs, dtype=np.bool_))
        mask[envs] = True

    def compact(self, idx: np.ndarray) -> dict[str, Any]:
        """The same info restricted to envs ``idx`` (entry j ↔ env ``idx[j]``)."""
        return {k: ({kk: vv[idx] for kk, vv in v.items()} if isinstance(v, dict) else v[idx]) for k, v in self.infos.items()}


class StepColumns:
    """The step ``info`` of k envs stepped together, as columns (entry j ↔ the j-th stepped env).

    The vector env records what happened per env (consult outcomes, verdicts) while resolving the
    turns; :meth:`finish` turns that into arrays; :meth:`emit` writes them into an :class:`InfoBuilder`
    (all of them, or only the envs of a mask, as ``SAME_STEP`` autoreset needs).
    """

    def __init__(self, k: int, problem_ids: np.ndarray, action_truncated: np.ndarray) -> None:
        self.k = k
        self.problem_ids = problem_ids
        self.action_truncated = action_truncated
        self.consulted: list[tuple[int, int, int, ReplyStats | None]] = []  # (j, accepted, unavailable, stats)
        self.disabled: list[int] = []  # eval-mode consults
        self.verdicts: list[tuple[int, str, bool, str | None]] = []  # (j, status, correct, answer)
        self.charged = np.zeros(k, dtype=bool)  # consulting turns without a format error
        self.columns: list[tuple[str, np.ndarray | None, np.ndarray]] = []

    def finish(
        self,
        parsed: Sequence[ParsedAction],
        answer_pos: list[int],
        consult_pos: list[int],
        turn: np.ndarray,
        turns_left: np.ndarray,
        consults: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        k = self.k
        codes = np.zeros(k, dtype=np.intp)
        codes[consult_pos] = 1
        codes[answer_pos] = 2
        ints = {name: np.zeros(k, dtype=np.int64) for name in (
            "queries", "accepted", "unavailable", "dropped_queries", "blank_queries", "expert_timeouts", "expert_errors")}
        format_error = np.zeros(k, dtype=np.bool_)
        if consult_pos:
            cp = np.asarray(consult_pos, dtype=np.intp)
            ps = [parsed[j] for j in consult_pos]
            ints["queries"][cp] = [len(p.queries) for p in ps]
            ints["dropped_queries"][cp] = [p.dropped_queries for p in ps]
            ints["blank_queries"][cp] = [p.blank_queries for p in ps]
            format_error[cp] = [bool(p.format_error) for p in ps]
            self.charged[cp] = ~format_error[cp]
        slots_pos, slots, cut_pos, cut = [], [], [], []
        for j, n_acc, n_unav, stats in self.consulted:
            ints["accepted"][j] = n_acc
            ints["unavailable"][j] = n_unav
            if stats is None:  # every query rejected: no expert was called (no slots, as one env)
                continue
            ints["expert_timeouts"][j] = stats.timeouts
            ints["expert_errors"][j] = stats.errors
            slots_pos.append(j)
            slots.append(stats.slots)
            if stats.cut:
                cut_pos.append(j)
                cut.append(stats.cut)
        cols = self.columns
        cols.append(("problem_id", None, self.problem_ids))
        cols.append(("action", None, KIND_NAMES[codes]))
        cols.extend((name, None, ints[name]) for name in ("queries", "accepted", "unavailable", "dropped_queries", "blank_queries"))
        cols.append(("format_error", None, format_error))
        cols.append(("action_truncated", None, self.action_truncated))
        cols.append(("expert_timeouts", None, ints["expert_timeouts"]))
        cols.append(("expert_errors", None, ints["expert_errors"]))
        cols.append(("turn", None, turn))
        cols.append(("turns_left", None, turns_left))
        cols.append(("consults", None, consults))
        if slots_pos:
            cols.append(("expert_slots", np.asarray(slots_pos, dtype=np.intp), object_array(slots)))
        if cut_pos:
            cols.append(("replies_cut", np.asarray(cut_pos, dtype=np.intp), np.asarray(cut, dtype=np.int64)))
        if self.disabled:
            cols.append(("consult_disabled", np.asarray(self.disabled, dtype=np.intp), np.ones(len(self.disabled), dtype=np.bool_)))
        # Episode end (RewardVerification): the answer, its verdict; "no_answer" when truncated.
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            answers = np.full(k, None, dtype=object)
            verdict = np.full(k, "no_answer", dtype=object)
            correct = np.zeros(k, dtype=np.bool_)
            for j, status, ok, answer in self.verdicts:
                answers[j], verdict[j], correct[j] = answer, status, ok
            cols.append(("answer", ended, answers[ended]))
            cols.append(("verdict", ended, verdict[ended]))
            cols.append(("correct", ended, correct[ended]))

    def add_penalty(self, cost: float) -> np.ndarray:
        """ConsultPenalty's ``info["consult_penalty"]``; returns the mask of charged envs."""
        charged = np.flatnonzero(self.charged)
        if len(charged):
            self.columns.append(("consult_penalty", charged, np.full(len(charged), cost)))
        return self.charged

    def emit(self, builder: InfoBuilder, envs: np.ndarray, keep: np.ndarray | None) -> None:
        """Write the columns for ``envs`` (entry j ↔ ``envs[j]``), only where ``keep`` if given."""
        for key, pos, values in self.columns:
            if keep is None:
                builder.put(key, envs if pos is None else envs[pos], values)
                continue
            sel = keep if pos is None else keep[pos]
            if sel.any():
                builder.put(key, (envs if pos is None else envs[pos])[sel], values[sel])
