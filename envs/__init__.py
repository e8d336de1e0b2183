"""The Gymnasium environments of EAPO (importable without torch)."""

from envs.factory import make_eval_env, make_math_env
from envs.math_env import EAPOMathEnv
from envs.step import ResetInfo, StepInfo, StepResult

__all__ = ["EAPOMathEnv", "ResetInfo", "StepInfo", "StepResult", "make_eval_env", "make_math_env"]
