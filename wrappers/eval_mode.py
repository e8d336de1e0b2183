"""Evaluation mode: consultation off, evaluation prompt, optional evaluation turn budget."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from eapo_env.progress import set_progress
from envs.text_env import eapo_unwrapped


class EvalMode(gym.Wrapper[str, str, str, str]):
    """Put the env in evaluation mode at every reset: no expert is ever called (DESIGN §3.4).

    Args:
        env: an EAPO env (or a wrapper around one).
        max_turns: the evaluation turn budget; ``None`` keeps the env's.

    Example:
        >>> import gymnasium as gym, eapo_env
        >>> env = EvalMode(gym.make("EAPO-Math-v0"))
        >>> _ = env.reset(seed=0)
        >>> obs, *_ , info = env.step("<consult><query>help</query></consult>")
        >>> info["accepted"], "disabled" in obs
        (0, True)
    """

    def __init__(self, env: gym.Env[str, str], max_turns: int | None = None) -> None:
        super().__init__(env)
        self.eval_max_turns = max_turns
        self._apply()

    def _apply(self) -> None:
        base = eapo_unwrapped(self.env)
        base.eval_mode = True
        if self.eval_max_turns is not None:
            base.max_turns = self.eval_max_turns

    def set_progress(self, step: int) -> None:
        set_progress(self.env, step)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        # eval_mode is owned by this wrapper alone; keep it outermost so that an inner TurnBudget
        # cannot overwrite the evaluation turn budget.
        self._apply()
        return self.env.reset(seed=seed, options=options)
