"""Entry points of the registered ids: build the env and apply the default wrappers.

Default wrappers are applied here rather than as spec ``additional_wrappers`` because
``gym.make_vec`` refuses specs that carry those (DESIGN §3 "Defaults"). They live in ``wrappers``, the
layer that knows both the env and its wrappers, so that no lower layer imports a higher one (DESIGN §2):
:mod:`eapo_env.registration` names them by string (``"wrappers.factory:make_math_env"``), which
Gymnasium resolves when an env is made, and :mod:`envs` reaches them only through the registered id.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from eapo_env.schedules import Schedule
from envs.math_env import EAPOMathEnv
from wrappers.annealing import AcceptanceAnnealing, TurnBudget
from wrappers.eval_mode import EvalMode
from wrappers.reward import ConsultPenalty, RewardVerification


def make_math_env(
    *,
    acceptance_schedule: str | Schedule | None = None,
    turn_schedule: str | Schedule | None = None,
    consult_penalty: float | str | Schedule = 0.0,
    verifier: Any = None,
    **kwargs: Any,
) -> gym.Env[str, str]:
    """``EAPO-Math-v0``: :class:`EAPOMathEnv` with reward verification, shaping nothing by default.

    Args:
        acceptance_schedule: if given, wrap in :class:`wrappers.AcceptanceAnnealing`.
        turn_schedule: if given, wrap in :class:`wrappers.TurnBudget`.
        consult_penalty: if non-zero (or a schedule), wrap in :class:`wrappers.ConsultPenalty`.
        verifier: a ``(prediction, problem) -> Verdict`` replacing the default math verifier.
        **kwargs: passed to :class:`EAPOMathEnv`.
    """
    env: gym.Env[str, str] = EAPOMathEnv(**kwargs)
    env = RewardVerification(env) if verifier is None else RewardVerification(env, verifier)
    if acceptance_schedule is not None:
        env = AcceptanceAnnealing(env, acceptance_schedule)
    if turn_schedule is not None:
        env = TurnBudget(env, turn_schedule)
    if consult_penalty not in (0, 0.0, "0", "const:0", "const:0.0"):
        env = ConsultPenalty(env, consult_penalty)
    return env


def make_eval_env(*, eval_max_turns: int | None = None, **kwargs: Any) -> gym.Env[str, str]:
    """``EAPO-Math-Eval-v0``: same arguments as ``EAPO-Math-v0``; consultation disabled.

    An ``expert`` given here is accepted (so configs can be shared) but never called.
    """
    kwargs["eval_mode"] = True
    return EvalMode(make_math_env(**kwargs), max_turns=eval_max_turns)
