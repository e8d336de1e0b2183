"""The progress clock: how the trainer's global step reaches every env, wrapper and vector env."""

from __future__ import annotations

from typing import Any


def set_progress(env: Any, step: int) -> None:
    """Tell ``env`` (and everything it wraps) that training is at global ``step``.

    Walks down a wrapper chain to the outermost object that defines ``set_progress`` (our wrappers
    and envs do, and each forwards inward), skipping wrappers that don't (Gymnasium's own, e.g.
    ``OrderEnforcing``). Vector envs define ``set_progress`` and forward to every sub-env.

    Example:
        >>> import gymnasium as gym, eapo_env
        >>> env = gym.make("EAPO-Math-v0")
        >>> set_progress(env, 10)
        >>> env.unwrapped.progress_step
        10
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    target = env
    while not callable(getattr(type(target), "set_progress", None)):
        inner = getattr(target, "env", None)
        if inner is None:
            raise TypeError(f"{type(env).__name__} has no set_progress anywhere in its wrapper chain")
        target = inner
    target.set_progress(step)
