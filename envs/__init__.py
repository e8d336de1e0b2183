"""The Gymnasium environments of EAPO (importable without torch)."""

from envs.math_env import EAPOMathEnv
from envs.factory import make_eval_env, make_math_env

__all__ = ["EAPOMathEnv", "make_eval_env", "make_math_env"]
