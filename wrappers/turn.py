"""``TurnWrapper``: the base of every wrapper that changes a turn, in both typed phases (DESIGN §7).

Override :meth:`TurnWrapper.action` to rewrite the policy's action (as Gymnasium's
``ActionWrapper.action``) and/or :meth:`TurnWrapper.outcome` to refine the turn's
:class:`~envs.step.TurnOutcome` (add a :class:`~envs.step.Penalty`, score the answer, record the
episode). Both default to pass-through. ``step`` is then the plain blocking Gymnasium call, and a
vector env still sends the turn's expert requests in its one batched call: it calls
:meth:`prepare` / :meth:`complete`, which run the same two hooks.

Example:
    >>> import dataclasses, gymnasium as gym, eapo_env
    >>> class LengthPenalty(TurnWrapper):
    ...     def outcome(self, outcome, plan):
    ...         return outcome.penalized("length_penalty", 0.001 * len(plan.action))
    >>> env = LengthPenalty(gym.make("EAPO-Math-v0", problems="generated:arithmetic"))
    >>> _ = env.reset(seed=0)
    >>> env.step("abcd")[1], env.step("ab")[4]["length_penalty"]
    (-0.004, 0.002)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from eapo_env.experts import ExpertReply
from eapo_env.progress import set_progress
from envs.layers import TurnLayer, inner_layer, run_turn
from envs.step import TurnOutcome
from envs.turns import TurnPlan


class TurnWrapper(gym.Wrapper[str, str, str, str]):
    """A wrapper taking part in the two-phase turn through two pass-through hooks (see module docs)."""

    def action(self, action: str) -> str:
        """The action the inner env receives (default: unchanged)."""
        return action

    def outcome(self, outcome: TurnOutcome, plan: TurnPlan) -> TurnOutcome:
        """This layer's view of the inner layer's outcome (default: unchanged). ``plan.action`` is
        the action as the env received it (after this wrapper's :meth:`action`)."""
        return outcome

    @property
    def inner(self) -> TurnLayer:
        """The layer under this one in the two-phase turn (found once: a wrapper's ``env`` is fixed)."""
        layer: TurnLayer | None = self.__dict__.get("_inner_layer")
        if layer is None:
            layer = self.__dict__["_inner_layer"] = inner_layer(self)
        return layer

    def prepare(self, action: str) -> TurnPlan:
        """Phase 1 through this layer: rewrite the action, then prepare inward."""
        return self.inner.prepare(self.action(action))

    def complete(self, plan: TurnPlan, replies: Sequence[ExpertReply]) -> TurnOutcome:
        """Phase 2 through this layer: complete inward, then refine the outcome."""
        return self.outcome(self.inner.complete(plan, replies), plan)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        return run_turn(self, action)

    def set_progress(self, step: int) -> None:
        set_progress(self.env, step)
