"""The properties of DESIGN §3 that :func:`~eapo_env.testing.check_eapo_env` checks, one function each.

Each property is ``check(target, script)``: it builds fresh envs through the :class:`Target`, plays
the drawn script and raises :class:`Violation` (an ``AssertionError``, so hypothesis shrinks the
script) saying what it saw. They read the env only through Gymnasium's API and the documented
attributes of ``env.unwrapped`` (``problem``, ``transcript``, ``acceptance_prob``, ``max_turns``,
``eval_mode``), so they hold for any EAPO env however wrapped.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from eapo_env.testing.episodes import EnvWrapper, Episode, EpisodeScript, Step, Trace, is_finite_number, play, reset
from eapo_env.testing.experts import calls_of

#: ``info`` keys every step carries (DESIGN §3 lists them; ``action`` names the turn's kind).
STEP_INFO_TYPES: dict[str, type | tuple[type, ...]] = {
    "problem_id": str,
    "action": str,
    "turn": int,
    "turns_left": int,
    "consults": int,
    "queries": int,
    "accepted": int,
    "unavailable": int,
    "dropped_queries": int,
    "format_error": bool,
}
#: ``info`` keys of the step that ends an episode.
END_INFO_TYPES: dict[str, type | tuple[type, ...]] = {"answer": (str, type(None)), "verdict": str, "correct": bool}
#: ``info`` keys of ``reset``.
RESET_INFO_TYPES: dict[str, type | tuple[type, ...]] = {
    "problem_id": str,
    "turn": int,
    "turns_left": int,
    "consults": int,
}
#: Keys that, when present, must have these types (set by the env on some steps).
OPTIONAL_INFO_TYPES: dict[str, type | tuple[type, ...]] = {
    "blank_queries": int,
    "action_truncated": bool,
    "expert_timeouts": int,
    "expert_errors": int,
    "replies_cut": int,
    "consult_disabled": bool,
}
SOURCES = ("prompt", "policy", "expert", "env")
ACTION_KINDS = ("reason", "consult", "answer")
#: A turn of pure reasoning (the budget property spends the budget with it).
THINKING = "let me think about it"


class Violation(AssertionError):
    """A property does not hold on the drawn script (what was seen is the message)."""


@dataclass(frozen=True)
class Target:
    """How the checker builds the env under test.

    Attributes:
        build: ``expert -> env``: a fresh env consulting ``expert``, the user's wrappers applied.
        make_expert: a fresh deterministic expert that counts its calls.
        env_id: the registered id (``None`` for a factory: no vector-env parity).
        env_kwargs: the keyword arguments of ``gym.make`` (the expert aside).
        wrappers: the user's wrappers, innermost first.
        shaping: the wrappers declared that they pay rewards on non-answer turns.
        max_experts, max_action_chars: read from a probe env (the strategies use them).
    """

    build: Callable[[Any], gym.Env[Any, Any]]
    make_expert: Callable[[], Any]
    env_id: str | None
    env_kwargs: Mapping[str, Any]
    wrappers: tuple[EnvWrapper, ...]
    shaping: bool
    max_experts: int
    max_action_chars: int

    def fresh(self) -> tuple[gym.Env[Any, Any], Any]:
        """A new env and the new expert it consults."""
        expert = self.make_expert()
        return self.build(expert), expert


def _where(step: Step, k: int) -> str:
    return f"step {k} (action {step.action[:80]!r})"


def _type_errors(info: Any, types: Mapping[str, type | tuple[type, ...]], required: bool) -> list[str]:
    if not isinstance(info, dict):
        return [f"info is a {type(info).__name__}, not a dict"]
    problems = []
    for key, kind in types.items():
        if key not in info:
            if required:
                problems.append(f"missing {key!r}")
            continue
        value = info[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            problems.append(f"{key!r} is {value!r} ({type(value).__name__})")
    return problems


def _check_counts(step: Step, k: int, prev: Mapping[str, Any], max_experts: int) -> None:
    """The per-step counters agree with each other and with the episode totals."""
    info, where = step.info, _where(step, k)
    kind = info["action"]
    if kind not in ACTION_KINDS:
        raise Violation(f"{where}: info['action'] is {kind!r}, not one of {ACTION_KINDS}")
    if info["turn"] != prev["turn"] + 1 or info["turns_left"] != step.max_turns - info["turn"]:
        raise Violation(
            f"{where}: turn {info['turn']}, turns_left {info['turns_left']} after turn {prev['turn']} of {step.max_turns}"
        )
    if info["consults"] != prev["consults"] + (kind == "consult"):
        raise Violation(f"{where}: consults went from {prev['consults']} to {info['consults']} on a {kind} turn")
    counts = {key: info[key] for key in ("queries", "accepted", "unavailable", "dropped_queries")}
    if min(counts.values()) < 0 or counts["queries"] > max_experts or counts["accepted"] > counts["queries"]:
        raise Violation(f"{where}: impossible counts {counts} (K = {max_experts})")
    if kind != "consult" and (counts["queries"] or counts["accepted"] or counts["unavailable"]):
        raise Violation(f"{where}: a {kind} turn reports {counts}")
    block = kind == "consult" and counts["queries"] > 0 and not info.get("consult_disabled", False)
    # unavailable entries: the rejected queries (queries - accepted) and the accepted ones that failed
    if block and not counts["queries"] - counts["accepted"] <= counts["unavailable"] <= counts["queries"]:
        raise Violation(f"{where}: unavailable is not between queries - accepted and queries in {counts}")
    if info["format_error"] != (kind == "consult" and counts["queries"] == 0):
        raise Violation(f"{where}: format_error {info['format_error']} with {counts['queries']} kept queries")


def check_info_contract(target: Target, script: EpisodeScript) -> None:
    """``info`` keys and types (DESIGN §3), a fresh dict every call, Python ``bool`` flags, consistent counts."""
    env, _ = target.fresh()
    trace = play(env, script, finish=True)
    seen: set[int] = set()
    for episode in trace.episodes:
        if problems := _type_errors(episode.info, RESET_INFO_TYPES, required=True):
            raise Violation(f"reset info: {', '.join(problems)}: {episode.info!r}")
        seen.add(id(episode.info))
        prev: Mapping[str, Any] = episode.info
        for k, step in enumerate(episode.steps, start=1):
            where = _where(step, k)
            if type(step.terminated) is not bool or type(step.truncated) is not bool:
                raise Violation(f"{where}: terminated/truncated are {step.terminated!r}/{step.truncated!r}, not bool")
            problems = _type_errors(step.info, STEP_INFO_TYPES, required=True)
            problems += _type_errors(step.info, OPTIONAL_INFO_TYPES, required=False)
            if step.terminated or step.truncated:
                problems += _type_errors(step.info, END_INFO_TYPES, required=True)
            if problems:
                raise Violation(f"{where}: info {', '.join(problems)}; keys {sorted(step.info)}")
            if id(step.info) in seen:
                raise Violation(f"{where}: info is the same dict object as an earlier one (build a fresh dict)")
            seen.add(id(step.info))
            _check_counts(step, k, prev, target.max_experts)
            prev = step.info


@contextlib.contextmanager
def global_rngs_seeded(salt: int) -> Iterator[None]:
    """Python's and NumPy's global generators seeded from ``salt`` (restored after): an env that draws
    from them (it must use its own ``np_random``) then differs between two runs."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(1_000_003 * salt)
    np.random.seed(salt)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def same(a: Any, b: Any) -> bool:
    """Deep equality of traces: arrays by value, NaN equal to NaN, dicts by keys and values."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and bool(a == b)


def check_determinism(target: Target, script: EpisodeScript) -> None:
    """Two fresh envs, the same seed and turns, a deterministic expert: the same observations,
    rewards, flags, ``info`` and transcripts (with the global RNGs seeded differently for each)."""
    traces = []
    for salt in (1, 2):
        env, _ = target.fresh()
        with global_rngs_seeded(salt):
            traces.append(play(env, script).comparable())
    first, second = traces
    for k, (a, b) in enumerate(zip(first, second)):
        if not same(a, b):
            where = f"{a['record']}" + (f" (action {a['action']!r:.80})" if "action" in a else "")
            raise Violation(f"record {k}, a {where}, differs between two runs: {describe_difference(a, b)}")


def describe_difference(a: Any, b: Any, path: str = "") -> str:
    """The first places where ``a`` and ``b`` differ, as ``path: x vs y`` (at most three)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = [k for k in {**a, **b} if k not in a or k not in b or not same(a[k], b[k])]
        return "; ".join(
            describe_difference(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{path}[{k!r}]") for k in keys[:3]
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        idx = [i for i in range(len(a)) if not same(a[i], b[i])]
        return "; ".join(describe_difference(a[i], b[i], f"{path}[{i}]") for i in idx[:3])
    return f"{path or 'value'}: {a!r:.160} vs {b!r:.160}"


def _steps_after_end_raise(env: gym.Env[Any, Any], why: str) -> None:
    try:
        env.step("<answer>0</answer>")
    except Exception:
        return
    raise Violation(f"step() after the episode {why} returned instead of raising")


def check_finished_episode_raises(target: Target, script: EpisodeScript) -> None:
    """``step`` after an episode ended (terminated, or truncated by the budget) raises a clear error."""
    env, _ = target.fresh()
    play(env, script, finish=True)
    _steps_after_end_raise(env, "terminated")
    env, _ = target.fresh()
    reset(env, script.seed, script.acceptance_prob)
    for _ in range(env.unwrapped.max_turns):  # type: ignore[attr-defined]
        *_, terminated, truncated, _ = env.step(THINKING)
        if terminated or truncated:
            _steps_after_end_raise(env, "was truncated")
            return


def check_eval_mode_never_consults(target: Target, script: EpisodeScript) -> None:
    """In evaluation mode (``env.unwrapped.eval_mode = True`` before each reset, as ``EvalMode`` does)
    no expert is called, whatever the turns; no query is accepted."""
    env, expert = target.fresh()

    def evaluation(e: gym.Env[Any, Any]) -> None:
        e.unwrapped.eval_mode = True  # type: ignore[attr-defined]

    trace = play(env, script, before_reset=evaluation)
    calls = calls_of(expert)
    if calls:
        first = expert.calls[0][0].query if getattr(expert, "calls", None) else "?"
        raise Violation(f"the expert was called {calls} time(s) in evaluation mode (first query {first!r})")
    for k, step in enumerate(trace.steps, start=1):
        if isinstance(step.info, dict) and step.info.get("accepted", 0):
            raise Violation(f"{_where(step, k)}: {step.info['accepted']} queries accepted in evaluation mode")


def check_acceptance_zero(target: Target, script: EpisodeScript) -> None:
    """With p = 0 no expert is called and every entry of an experts block is ``unavailable``."""
    env, expert = target.fresh()
    trace = play(env, script)
    if calls := calls_of(expert):
        raise Violation(f"the expert was called {calls} time(s) with acceptance_prob 0")
    for k, step in enumerate(trace.steps, start=1):
        info = step.info
        if info.get("action") != "consult" or not info.get("queries") or info.get("consult_disabled"):
            continue
        entries = step.observation.count('status="unavailable"') if isinstance(step.observation, str) else -1
        if info.get("accepted") != 0 or info.get("unavailable") != info["queries"] or entries != info["queries"]:
            raise Violation(
                f"{_where(step, k)}: p = 0 but accepted {info.get('accepted')}, unavailable "
                f"{info.get('unavailable')}, {entries} unavailable entries for {info['queries']} queries"
            )


def check_rewards_on_answers_only(target: Target, script: EpisodeScript) -> None:
    """Rewards are finite numbers, and (unless the wrappers declare shaping) 0 on every turn that does
    not answer: reasoning, consulting, the truncated last turn (DESIGN §3.2, §3.6)."""
    env, _ = target.fresh()
    for k, step in enumerate(play(env, script).steps, start=1):
        if not is_finite_number(step.reward):
            raise Violation(f"{_where(step, k)}: reward {step.reward!r} is not a finite number")
        if not target.shaping and not step.terminated and step.reward != 0:
            kind = step.info.get("action", "?") if isinstance(step.info, dict) else "?"
            raise Violation(
                f"{_where(step, k)}: reward {step.reward!r} on a {kind} turn that did not answer "
                "(declare shaping=True if your wrapper shapes rewards)"
            )


def _check_budget_episode(target: Target, episode: Episode) -> None:
    for k, step in enumerate(episode.steps, start=1):
        where = _where(step, k)
        if k > episode.max_turns:
            raise Violation(f"{where}: turn {k} is past the budget of {episode.max_turns} turns")
        if bool(step.truncated) != (not step.terminated and k == episode.max_turns):
            raise Violation(
                f"{where}: truncated={step.truncated!r} at turn {k} of {episode.max_turns} (terminated={step.terminated!r})"
            )
        if step.terminated and isinstance(step.info, dict) and step.info.get("action", "answer") != "answer":
            raise Violation(f"{where}: terminated on a {step.info.get('action')!r} turn")
        if step.truncated and not step.terminated and not target.shaping and step.reward != 0:
            raise Violation(f"{where}: reward {step.reward!r} when the budget ran out (must be 0)")


def check_budget_truncates(target: Target, script: EpisodeScript) -> None:
    """The turn budget (``env.unwrapped.max_turns`` at reset) truncates exactly when it is spent
    without an answer, with reward 0; only an answer terminates."""
    env, _ = target.fresh()
    trace = play(env, script)
    for episode in trace.episodes:
        _check_budget_episode(target, episode)
    budget = trace.episodes[0].max_turns  # a fresh env reset with the same seed has the same budget
    spent = play(target.fresh()[0], EpisodeScript(script.seed, script.acceptance_prob, (THINKING,) * budget))
    first = spent.episodes[0]
    _check_budget_episode(target, first)
    if len(first.steps) != budget or not first.steps[-1].truncated:
        raise Violation(f"{budget} reasoning turns did not truncate the episode at its budget of {budget}")


def _check_transcript(episode: Episode, transcript: list[tuple[str, str]], max_chars: int) -> None:
    if episode.transcript_at_reset != [("prompt", episode.observation)]:
        raise Violation(f"after reset the transcript is {episode.transcript_at_reset!r:.300}, not [('prompt', <obs>)]")
    bad = [seg for seg in transcript if not (isinstance(seg, tuple) and len(seg) == 2 and seg[0] in SOURCES)]
    if bad:
        raise Violation(f"transcript segments {bad[:3]!r:.300} are not (source, text) with source in {SOURCES}")
    pos = 1
    for k, step in enumerate(episode.steps, start=1):
        where = _where(step, k)
        if pos >= len(transcript) or transcript[pos][0] != "policy" or len(transcript[pos][1]) > max_chars:
            raise Violation(
                f"{where}: no policy segment (of at most {max_chars} chars) at {pos} in {transcript!r:.300}"
            )
        pos += 1
        if not step.terminated:
            info = step.info if isinstance(step.info, dict) else {}
            block = info.get("action") == "consult" and info.get("queries") and not info.get("consult_disabled")
            want = "expert" if block else "env"
            if pos >= len(transcript) or transcript[pos] != (want, step.observation):
                got = transcript[pos] if pos < len(transcript) else None
                raise Violation(f"{where}: expected ({want!r}, <the observation>) at {pos}, got {got!r:.300}")
            pos += 1
        if step.transcript_len != pos:
            raise Violation(f"{where}: the transcript has {step.transcript_len} segments, expected {pos}")
    if pos != len(transcript):
        raise Violation(
            f"the transcript has {len(transcript) - pos} segment(s) after the last turn: {transcript[pos:]!r:.300}"
        )


def check_transcript_provenance(target: Target, script: EpisodeScript) -> None:
    """``env.unwrapped.transcript``: the prompt, then per turn the policy's segment and (unless it
    answered) the observation, marked ``expert`` for an experts block and ``env`` otherwise."""
    env, _ = target.fresh()
    trace: Trace = play(env, script)
    if len(trace.transcripts) != len(trace.episodes):
        raise Violation(f"{len(trace.episodes)} episodes but {len(trace.transcripts)} transcripts")
    for episode, transcript in zip(trace.episodes, trace.transcripts):
        _check_transcript(episode, transcript, target.max_action_chars)
