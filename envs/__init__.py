"""The Gymnasium environments of EAPO (importable without torch).

The registered ids' entry points (the env with its default wrappers) live one layer up, in
:mod:`wrappers.factory`: ``envs`` never imports ``wrappers`` (DESIGN §2).
"""

from envs.layers import TurnLayer, turn_layer
from envs.math_env import EAPOMathEnv
from envs.step import Penalty, ResetInfo, StepInfo, StepResult, TurnCounts, TurnOutcome
from envs.turns import TurnPlan

__all__ = [
    "EAPOMathEnv",
    "Penalty",
    "ResetInfo",
    "StepInfo",
    "StepResult",
    "TurnCounts",
    "TurnLayer",
    "TurnOutcome",
    "TurnPlan",
    "turn_layer",
]
