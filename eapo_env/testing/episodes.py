"""Drawn test cases (an episode script, a vector-env script), how the checker builds envs and plays them.

A script is what hypothesis draws and shrinks: a reset seed, the acceptance probability, the policy's
turns. :func:`play` steps a script through an env, resetting after each episode end (so one script
may cover several episodes), and returns the :class:`Trace` the properties read.

Example:
    >>> import gymnasium as gym, eapo_env
    >>> from eapo_env.testing.experts import FaultyExpert
    >>> env = gym.make("EAPO-Math-v0", expert=FaultyExpert(), problems="generated:arithmetic")
    >>> trace = play(env, EpisodeScript(seed=0, acceptance_prob=None, turns=("hmm", "<answer><GOLD></answer>")))
    >>> [s.reward for s in trace.steps], trace.steps[-1].info["correct"]
    ([0.0, 1.0], True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from hypothesis import strategies as st

from eapo_env.testing.strategies import fill_gold, policy_turns

#: A wrapper (or any ``env -> env`` callable), applied innermost first.
EnvWrapper = Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]]
#: Acceptance probabilities a script may pin (``None``: leave the env's own, e.g. an annealed p).
ACCEPTANCE_PROBS: tuple[float | None, ...] = (None, 0.0, 0.3, 0.7, 1.0)


@dataclass(frozen=True)
class EpisodeScript:
    """One drawn test case for a single env.

    Attributes:
        seed: the first ``reset``'s seed (later episodes continue the env's RNG).
        acceptance_prob: written to ``env.unwrapped.acceptance_prob`` after every reset (as an
            annealing wrapper would at reset), or ``None`` to leave the env's value.
        turns: the policy's turns; :data:`~eapo_env.testing.strategies.GOLD` is the episode's answer.
    """

    seed: int
    acceptance_prob: float | None
    turns: tuple[str, ...]


@dataclass(frozen=True)
class ParityScript:
    """One drawn test case for vector-env parity: ``num_envs`` envs, one row of turns per step."""

    num_envs: int
    seed: int
    acceptance_prob: float
    autoreset_mode: str
    rows: tuple[tuple[str, ...], ...]


@dataclass
class Step:
    """One step as the env returned it, with the action sent and the transcript's length after it."""

    action: str
    observation: Any
    reward: Any
    terminated: Any
    truncated: Any
    info: dict[str, Any]
    transcript_len: int
    max_turns: int


@dataclass
class Episode:
    """One episode of a trace: the reset's result, then its steps."""

    observation: Any
    info: dict[str, Any]
    max_turns: int
    transcript_at_reset: list[tuple[str, str]]
    steps: list[Step] = field(default_factory=list)


@dataclass
class Trace:
    """What :func:`play` saw; ``transcripts``: each episode's final transcript."""

    episodes: list[Episode]
    transcripts: list[list[tuple[str, str]]]

    @property
    def steps(self) -> list[Step]:
        return [s for e in self.episodes for s in e.steps]

    def comparable(self) -> list[dict[str, Any]]:
        """Everything an observer sees, as plain records (for the determinism comparison)."""
        out: list[dict[str, Any]] = []
        for e in self.episodes:
            out.append({"record": "reset", "observation": e.observation, "info": e.info})
            for s in e.steps:
                fields = ("action", "observation", "reward", "terminated", "truncated", "info")
                out.append({"record": "step", **{f: getattr(s, f) for f in fields}})
        return [*out, {"record": "transcripts", "transcripts": self.transcripts}]


@st.composite
def episode_scripts(
    draw: st.DrawFn, max_experts: int = 3, max_chars: int | None = None, max_turns: int = 12
) -> EpisodeScript:
    """A seed, a pinned acceptance probability (or none) and 1..``max_turns`` policy turns."""
    turns = draw(st.lists(policy_turns(max_experts, max_chars), min_size=1, max_size=max_turns))
    return EpisodeScript(draw(st.integers(0, 2**31 - 1)), draw(st.sampled_from(ACCEPTANCE_PROBS)), tuple(turns))


@st.composite
def parity_scripts(
    draw: st.DrawFn, max_envs: int = 3, max_experts: int = 3, max_chars: int | None = None
) -> ParityScript:
    """2..``max_envs`` envs (at least 2: a difference between env 0 and env 1 must show), 1..8 steps."""
    n = draw(st.integers(min(2, max_envs), max_envs))
    rows = draw(
        st.lists(st.lists(policy_turns(max_experts, max_chars), min_size=n, max_size=n), min_size=1, max_size=8)
    )
    p = draw(st.sampled_from([0.0, 0.5, 1.0]))
    mode = draw(st.sampled_from([AutoresetMode.NEXT_STEP.value, AutoresetMode.SAME_STEP.value]))
    return ParityScript(n, draw(st.integers(0, 2**16)), p, mode, tuple(tuple(r) for r in rows))


def apply_wrappers(env: gym.Env[Any, Any], wrappers: Sequence[EnvWrapper]) -> gym.Env[Any, Any]:
    """``env`` wrapped in ``wrappers``, innermost first (as ``gym.make_vec(env_wrappers=...)`` does)."""
    for wrap in wrappers:
        env = wrap(env)
    return env


def reset(env: gym.Env[Any, Any], seed: int | None, acceptance_prob: float | None) -> tuple[Any, dict[str, Any]]:
    """``env.reset(seed=seed)``, then pin p for the episode (knobs are written at reset, DESIGN §3)."""
    obs, info = env.reset(seed=seed)
    if acceptance_prob is not None:
        env.unwrapped.acceptance_prob = acceptance_prob  # type: ignore[attr-defined]
    return obs, info


def _base(env: gym.Env[Any, Any]) -> Any:
    return env.unwrapped


def play(
    env: gym.Env[Any, Any],
    script: EpisodeScript,
    *,
    before_reset: Callable[[gym.Env[Any, Any]], None] | None = None,
    finish: bool = False,
) -> Trace:
    """Step ``script``'s turns through ``env``, resetting after every episode end.

    Args:
        before_reset: called before every reset (e.g. to switch on evaluation mode).
        finish: after the turns, answer until the episode in progress ends (so the trace ends an episode).
    """
    episodes: list[Episode] = []
    transcripts: list[list[tuple[str, str]]] = []

    def new_episode(seed: int | None) -> None:
        if before_reset is not None:
            before_reset(env)
        obs, info = reset(env, seed, script.acceptance_prob)
        base = _base(env)
        episodes.append(Episode(obs, info, int(base.max_turns), list(base.transcript)))

    new_episode(script.seed)
    turns = list(script.turns)
    ended = False
    finishing = 0  # answers sent after the turns ran out (an env that never ends must not hang the check)
    while turns or (finish and not ended):
        if ended:
            new_episode(None)
        if not turns:
            finishing += 1
            if finishing > episodes[-1].max_turns + 1:
                raise AssertionError(f"the episode did not end after {finishing - 1} answers and the turn budget")
        action = fill_gold(turns.pop(0) if turns else "<answer><GOLD></answer>", _base(env).problem)
        obs, reward, terminated, truncated, info = env.step(action)
        base = _base(env)
        step = Step(action, obs, reward, terminated, truncated, info, len(base.transcript), episodes[-1].max_turns)
        episodes[-1].steps.append(step)
        ended = bool(terminated or truncated)
        if ended or not (turns or finish):
            transcripts.append(list(base.transcript))
    return Trace(episodes, transcripts)


def is_finite_number(value: Any) -> bool:
    """A real number (not a bool) that is finite: what a reward must be."""
    return (
        isinstance(value, int | float | np.floating | np.integer)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def assert_info_equal(got: Mapping[str, Any], want: Mapping[str, Any], path: str = "info") -> None:
    """Two vector-env ``info`` dicts (Gymnasium's merged form: arrays and ``_key`` masks) are equal:
    the same keys, at every depth, and arrays of the same dtype and values. Raises ``AssertionError``
    naming the first difference."""
    assert set(got) == set(want), f"{path}: keys {sorted(set(got) ^ set(want))} differ"
    for key, w in want.items():
        g = got[key]
        if isinstance(w, Mapping):
            assert isinstance(g, Mapping), f"{path}[{key!r}]: {g!r} is not a dict like {w!r}"
            assert_info_equal(g, w, f"{path}[{key!r}]")
            continue
        assert isinstance(g, np.ndarray) and g.dtype == w.dtype, f"{path}[{key!r}]: {g!r} vs {w!r}"
        assert g.tolist() == w.tolist(), f"{path}[{key!r}]: {g.tolist()} != {w.tolist()}"
