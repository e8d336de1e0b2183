"""Wrappers that anneal the env's knobs from schedules: acceptance probability p(t) and turn budget."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from eapo_env.progress import set_progress
from eapo_env.schedules import Schedule, as_schedule
from envs.text_env import eapo_unwrapped


class ScheduledKnob(gym.Wrapper[str, str, str, str]):
    """Base for wrappers that write one knob of ``env.unwrapped`` from a schedule.

    The schedule's clock is the trainer's global step once :meth:`set_progress` has been called,
    and otherwise the number of episodes this wrapper has reset. The knob is written on ``reset``
    and on ``set_progress`` — but never in the middle of an episode: a ``set_progress`` that arrives
    mid-episode takes effect at the next reset.
    """

    def __init__(self, env: gym.Env[str, str], schedule: Schedule | str | float) -> None:
        super().__init__(env)
        self.schedule: Schedule = as_schedule(schedule)
        self._external_step: int | None = None
        self._episodes = 0

    @property
    def clock(self) -> int:
        """The step the schedule is evaluated at."""
        return self._episodes if self._external_step is None else self._external_step

    def write_knob(self, value: float) -> None:
        raise NotImplementedError

    def set_progress(self, step: int) -> None:
        self._external_step = int(step)
        if not eapo_unwrapped(self.env).in_episode:
            self.write_knob(self.schedule(self.clock))
        set_progress(self.env, step)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self.write_knob(self.schedule(self.clock))
        self._episodes += 1
        return self.env.reset(seed=seed, options=options)


class AcceptanceAnnealing(ScheduledKnob):
    """Anneal p(t), the probability that each expert query is accepted (DESIGN §1, §6).

    Example:
        >>> import gymnasium as gym, eapo_env
        >>> env = AcceptanceAnnealing(gym.make("EAPO-Math-v0"), "linear:1.0:0.0:100")
        >>> env.set_progress(50); _ = env.reset(seed=0)
        >>> env.unwrapped.acceptance_prob
        0.5
    """

    def write_knob(self, value: float) -> None:
        eapo_unwrapped(self.env).acceptance_prob = min(1.0, max(0.0, float(value)))


class TurnBudget(ScheduledKnob):
    """Anneal the per-episode turn budget from its training value toward the evaluation budget.

    The schedule's value is rounded to the nearest int and floored at ``min_turns`` (default 1).

    Example:
        >>> import gymnasium as gym, eapo_env
        >>> env = TurnBudget(gym.make("EAPO-Math-v0"), "linear:8:2:60")
        >>> env.set_progress(30); _ = env.reset(seed=0)
        >>> env.unwrapped.max_turns
        5
    """

    def __init__(self, env: gym.Env[str, str], schedule: Schedule | str | float, min_turns: int = 1) -> None:
        super().__init__(env, schedule)
        self.min_turns = min_turns

    def write_knob(self, value: float) -> None:
        eapo_unwrapped(self.env).max_turns = max(self.min_turns, int(round(float(value))))
