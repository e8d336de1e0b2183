"""``EvalConfig``: the knobs of one held-out evaluation, built once and passed through.

Why a dataclass: :func:`agents.evaluation.evaluate`, :func:`agents.evaluation.evaluate_policy_dir`
and :func:`agents.baselines.compare_workflow` took the same ~15 keywords, filled one by one by the
CLI and by :class:`~agents.config.TrainConfig`; a knob added to one caller was silently missing in
another. Now ``eapo eval`` builds one from its flags and ``TrainConfig.evaluation()`` from its
``eval_*`` fields, and every evaluation reads the same frozen object. No torch import (the config
imports it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvalConfig:
    """One held-out evaluation with consultation off (``EAPO-Math-Eval-v0``, or ``env_id``)."""

    k: int = 32
    """Samples per problem."""
    pass_ks: tuple[int, ...] = (1,)
    """k values of the unbiased pass@k estimator (each in ``[1, k]``)."""
    num_problems: int = 64
    """Problems evaluated (the first N of a spec; a list of problems is used as given)."""
    problems_seed: int = 1
    """Seed of a generated problem spec."""
    max_turns: int = 4
    """The evaluation turn budget."""
    max_experts: int = 3
    """K of the env (consults are refused at evaluation; it only shapes the prompt)."""
    engine: str = "ours"
    """Rollout engine name (:data:`agents.rollout.ENGINES`)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_turn_tokens: int = 64
    """Per-turn cap on policy tokens."""
    max_total_tokens: int = 512
    """Per-episode token budget (prompt + response)."""
    batch_episodes: int = 256
    """Episodes rolled out together (memory / speed trade-off)."""
    seed: int = 0
    """Seeds env resets and sampling: the same config gives the same episodes."""
    device: str | None = None
    """``cpu``, ``cuda[:i]`` or ``auto`` (:func:`agents.device.pick_device`); ``None``: the model's device."""
    env_id: str = ""
    """The evaluation env id; ``""``: ``EAPO-Math-Eval-v0``. A task's id (``EAPO-QA-Eval-v0``,
    ``EAPO-Choice-Eval-v0``, ...) evaluates that task, and a problem spec is then read by that task."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pass_ks", tuple(int(k) for k in self.pass_ks))

    def replace(self, **changes: Any) -> EvalConfig:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


def eval_env_id(env_id: str = "") -> str:
    """The evaluation env id: ``EAPO-Math-Eval-v0`` for ``""``; a registered ``*-Eval-v<N>`` id as it is;
    a training id ``<Name>-v<N>`` as its twin ``<Name>-Eval-v<N>`` (consultation stays off). Else ``ValueError``.

    Example:
        >>> eval_env_id("EAPO-QA-v0"), eval_env_id()
        ('EAPO-QA-Eval-v0', 'EAPO-Math-Eval-v0')
    """
    import gymnasium as gym

    import eapo_env

    if not env_id:
        return eapo_env.EVAL_ID
    name, dash_v, version = env_id.rpartition("-v")
    twin = env_id if name.endswith("-Eval") else f"{name}-Eval{dash_v}{version}"
    if env_id not in gym.registry or twin not in gym.registry:
        known = sorted(i for i in gym.registry if i.startswith("EAPO-") and "-Eval-v" in i)
        raise ValueError(f"unknown env id {env_id!r} (or no -Eval- twin); evaluation ids: {', '.join(known)}")
    return twin
