"""Registration of the env ids with Gymnasium."""

from __future__ import annotations

import gymnasium as gym

TRAIN_ID = "EAPO-Math-v0"
EVAL_ID = "EAPO-Math-Eval-v0"
TOKEN_ID = "EAPO-Math-Token-v0"


def register_envs() -> None:
    """Register ``EAPO-Math-v0`` and ``EAPO-Math-Eval-v0`` (idempotent).

    Called on ``import eapo_env``; also declared as a ``gymnasium.envs`` entry point for Gymnasium
    versions that load plugins, and reachable as ``gym.make("eapo_env:EAPO-Math-v0")``.
    """
    if TRAIN_ID not in gym.registry:
        gym.register(
            TRAIN_ID,
            entry_point="envs.factory:make_math_env",
            vector_entry_point="envs.vector_env:make_vector_env",
        )
    if EVAL_ID not in gym.registry:
        gym.register(
            EVAL_ID,
            entry_point="envs.factory:make_eval_env",
            vector_entry_point="envs.vector_env:make_eval_vector_env",
        )
    if TOKEN_ID not in gym.registry:
        gym.register(TOKEN_ID, entry_point="envs.token_env:make_token_env")
