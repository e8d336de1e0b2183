"""The Gymnasium environments of EAPO (importable without torch).

The registered ids' entry points (the env with its default wrappers) live one layer up, in
:mod:`wrappers.factory`: ``envs`` never imports ``wrappers`` (DESIGN §2).
"""

from envs.math_env import EAPOMathEnv
from envs.step import ResetInfo, StepInfo, StepResult

__all__ = ["EAPOMathEnv", "ResetInfo", "StepInfo", "StepResult"]
