"""How a turn crosses a wrapper stack in two typed phases (DESIGN §7): the one place that walks layers.

Every EAPO layer (the env, and each wrapper that changes a turn) speaks :class:`TurnLayer`:
``prepare(action) -> TurnPlan`` (the turn's expert requests; nothing blocks) and
``complete(plan, replies) -> TurnOutcome``. ``step(action)`` of such a layer is :func:`run_turn`:
prepare, ONE blocking expert call, complete. A vector env prepares every stepping env, sends all
their requests as one batched call, then completes each env: through the same front door.

Layers that do not speak the protocol are crossed by :func:`turn_layer`, by rule:

* Gymnasium's checkers that ``gym.make`` adds, ``OrderEnforcing`` and ``PassiveEnvChecker``, change
  no turn (they check call order and the first step's types; the env checks order itself), and a
  ``gym.Wrapper`` that does not override ``step`` passes every turn through: both are walked past.
* A ``gym.ActionWrapper`` rewrites the action: its ``action()`` is applied in ``prepare``, so a
  rewritten action still joins the batched call.
* Any other layer (a wrapper overriding ``step`` alone) cannot be split: :func:`turn_layer` returns
  ``None`` and a vector env steps that env through its blocking ``step`` (one expert call of its
  own), and says so once (``EAPOVectorEnv.blocking_envs``). Subclass ``wrappers.turn.TurnWrapper``
  to take part.

Example:
    >>> import gymnasium as gym, eapo_env
    >>> env = gym.make("EAPO-Math-v0", problems="generated:arithmetic")   # OrderEnforcing(PassiveEnvChecker(...))
    >>> _ = env.reset(seed=0)
    >>> layer = turn_layer(env)
    >>> plan = layer.prepare("<consult><query>How?</query></consult>")
    >>> outcome = layer.complete(plan, plan.expert.consult_sync(plan.requests))
    >>> outcome.counts.accepted, outcome.info()["turn"]
    (1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast, runtime_checkable

import gymnasium as gym
from gymnasium import logger
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker

from eapo_env.experts import ExpertReply, consult_blocking
from envs.step import TurnOutcome
from envs.turns import TurnPlan

#: Gymnasium's wrappers whose ``step`` only checks (``gym.make`` adds them): walked past.
CHECKING_WRAPPERS: tuple[type, ...] = (OrderEnforcing, PassiveEnvChecker)


@runtime_checkable
class TurnLayer(Protocol):
    """A layer that takes part in the two-phase turn (the env, ``wrappers.turn.TurnWrapper``)."""

    def prepare(self, action: str) -> TurnPlan: ...

    def complete(self, plan: TurnPlan, replies: Sequence[ExpertReply]) -> TurnOutcome: ...


class RewritingLayer:
    """A ``gym.ActionWrapper`` in the two-phase turn: ``prepare`` rewrites the action, then goes inward."""

    def __init__(self, wrapper: gym.ActionWrapper[Any, Any, Any], inner: TurnLayer) -> None:
        self.wrapper, self.inner = wrapper, inner

    def prepare(self, action: str) -> TurnPlan:
        return self.inner.prepare(self.wrapper.action(action))

    def complete(self, plan: TurnPlan, replies: Sequence[ExpertReply]) -> TurnOutcome:
        return self.inner.complete(plan, replies)


def _speaks(env: Any) -> bool:
    kind = type(env)
    return callable(getattr(kind, "prepare", None)) and callable(getattr(kind, "complete", None))


def turn_layer(env: Any) -> TurnLayer | None:
    """The outermost layer of ``env`` in the two-phase turn (see the module docs), or ``None`` when a
    layer on the way cannot be split (it overrides ``step`` and speaks no :class:`TurnLayer`)."""
    if not isinstance(env, gym.Wrapper):
        return cast(TurnLayer, env) if _speaks(env) else None
    inner = turn_layer(env.env)
    if inner is None:  # a layer below cannot be split: neither can this stack
        return None
    if _speaks(env):
        return cast(TurnLayer, env)
    if isinstance(env, gym.ActionWrapper):
        return RewritingLayer(env, inner)
    if isinstance(env, CHECKING_WRAPPERS) or type(env).step is gym.Wrapper.step:
        return inner
    return None


def inner_layer(wrapper: gym.Wrapper[Any, Any, Any, Any]) -> TurnLayer:
    """The layer under ``wrapper`` in the two-phase turn; a clear error when there is none."""
    layer = turn_layer(wrapper.env)
    if layer is None:
        raise TypeError(
            f"{type(wrapper).__name__} wraps {wrapper.env!r}, which has a layer that cannot be split in "
            "two phases (a wrapper that overrides step only): subclass wrappers.turn.TurnWrapper"
        )
    return layer


def fronts_of(envs: Sequence[Any]) -> tuple[list[TurnLayer | None], tuple[int, ...]]:
    """Per env, its :func:`turn_layer`; and the envs that have none (a warning names the first)."""
    fronts = [turn_layer(env) for env in envs]
    blocking = tuple(i for i, front in enumerate(fronts) if front is None)
    if blocking:
        logger.warn(
            f"EAPOVectorEnv: env {blocking[0]} has a wrapper that overrides step() alone ({envs[blocking[0]]}); "
            "such envs consult one by one. Subclass wrappers.turn.TurnWrapper so they join the batched call."
        )
    return fronts, blocking


def run_turn(layer: TurnLayer, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
    """``step(action)`` of a :class:`TurnLayer`: prepare, one blocking expert call, complete."""
    plan = layer.prepare(action)
    replies: list[ExpertReply] = []
    if plan.requests:
        replies = consult_blocking(plan.expert, plan.requests, timeout_s=plan.timeout_s)
    return layer.complete(plan, replies).as_step()
