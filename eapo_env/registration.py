"""Registration of the env ids with Gymnasium.

The entry points are ``"module:attr"`` strings that Gymnasium resolves when an env is made, not
imports: the ids are declared here, in the core, while the code that builds them lives in the layers
above (``wrappers.factory`` applies the default wrappers, ``envs.vector_env`` batches), and the core
never imports those (DESIGN §2, checked by ``tests/test_layers.py``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

TRAIN_ID = "EAPO-Math-v0"
EVAL_ID = "EAPO-Math-Eval-v0"
TOKEN_ID = "EAPO-Math-Token-v0"

#: Tasks beyond math (DESIGN §11): ``EAPO-<Name>-v0`` and ``EAPO-<Name>-Eval-v0`` are the math ids'
#: entry points with ``task=<task name>`` (a name in :data:`eapo_env.tasks.TASKS`), so every wrapper,
#: the vector env and the trainer serve them unchanged. An id is registered once its task is known.
TASK_IDS: dict[str, str] = {"QA": "qa", "Choice": "choice", "Code": "code"}


def register_envs() -> None:
    """Register ``EAPO-Math-v0``, ``EAPO-Math-Eval-v0``, the token id and the task ids (idempotent).

    Called on ``import eapo_env``; also declared as a ``gymnasium.envs`` entry point for Gymnasium
    versions that load plugins, and reachable as ``gym.make("eapo_env:EAPO-Math-v0")``.
    """
    if TRAIN_ID not in gym.registry:
        gym.register(
            TRAIN_ID,
            entry_point="wrappers.factory:make_math_env",
            vector_entry_point="envs.vector_env:make_vector_env",
        )
    if EVAL_ID not in gym.registry:
        gym.register(
            EVAL_ID,
            entry_point="wrappers.factory:make_eval_env",
            vector_entry_point="envs.vector_env:make_eval_vector_env",
        )
    if TOKEN_ID not in gym.registry:
        gym.register(TOKEN_ID, entry_point="envs.token_env:make_token_env")
    from eapo_env.tasks import TASKS  # here, not at the top: eapo_env.tasks imports the experts

    for name, task in TASK_IDS.items():
        if task not in TASKS or f"EAPO-{name}-v0" in gym.registry:
            continue
        gym.register(
            f"EAPO-{name}-v0",
            entry_point="wrappers.factory:make_math_env",
            vector_entry_point="envs.vector_env:make_vector_env",
            kwargs={"task": task},
        )
        gym.register(
            f"EAPO-{name}-Eval-v0",
            entry_point="wrappers.factory:make_eval_env",
            vector_entry_point="envs.vector_env:make_eval_vector_env",
            kwargs={"task": task},
        )


def make_from_entry_point(env_id: str, **kwargs: Any) -> gym.Env[Any, Any]:
    """The env that ``env_id``'s entry point builds, without the checker/order wrappers ``gym.make`` adds.

    Why: an env that composes another (the token env drives an ``EAPO-Math-v0`` text env) needs the
    id's env with its default wrappers, and gets it through the registry rather than by importing
    the layer that builds it, which would point ``envs`` at ``wrappers``.
    """
    register_envs()
    entry_point = gym.spec(env_id).entry_point
    if entry_point is None:
        raise ValueError(f"{env_id!r} has no entry point")
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    env = creator(**kwargs)
    if not isinstance(env, gym.Env):
        raise TypeError(f"{env_id!r}'s entry point built a {type(env).__name__}, not a gymnasium.Env")
    return env
