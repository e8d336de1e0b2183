"""Pieces of :class:`envs.vector_env.EAPOVectorEnv` kept apart: a pending batched step, and compact info.

:class:`PendingStep` is what ``submit`` hands out: the envs that finished at once and those that
wait on the step's batched expert call. :func:`compact_info` turns a vector ``info`` (one entry per
env, Gymnasium's arrays + ``_key`` masks) into the rows of chosen envs, for ``step_subset``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eapo_env.experts.base import ConsultCall
from envs.step import StepResult
from envs.turns import TurnPlan


@dataclass(frozen=True)
class ConsultSlice:
    """Env ``env``'s requests are ``count`` consecutive entries of a batched call, from ``start``."""

    env: int
    start: int
    count: int


@dataclass
class PendingStep:
    """A step handed out by :meth:`EAPOVectorEnv.submit <envs.vector_env.EAPOVectorEnv.submit>`.

    Attributes:
        completed: the envs that needed no expert (reasoning, answer, format error, evaluation
            mode, every query rejected), already stepped: env index -> :class:`StepResult`.
        waiting: the envs whose requests went out in the batched call; ``collect`` completes them.
        plans: per waiting env, its turn's plan (the pending turn lives here, not in the env).
    """

    completed: dict[int, StepResult]
    waiting: tuple[int, ...]
    plans: dict[int, TurnPlan] = field(repr=False)
    calls: list[tuple[ConsultCall, list[ConsultSlice]]] = field(repr=False)
    collected: bool = field(default=False, repr=False)

    def ready(self) -> bool:
        """Whether every batched call returned (``collect`` will not block); True when nothing waits."""
        return all(call.done() for call, _ in self.calls)


#: Value types Gymnasium stores in a numeric array (``VectorEnv._add_info``); others go to object arrays.
_NUMERIC = (int, float, bool)


def merge_infos(entries: Sequence[tuple[int, Mapping[str, Any]]], num_envs: int) -> dict[str, Any]:
    """Gymnasium's vector ``info`` of ``(env index, info)`` pairs, built column by column.

    The same result as calling ``VectorEnv._add_info`` for each pair in order (a key's array takes the
    type of its first value: int/float/bool/numpy number -> that dtype, zeros elsewhere; a numpy array ->
    stacked; anything else -> an object array of ``None``; nested dicts alike; ``_key`` masks), which
    ``tests/test_vector_env.py`` checks against ``SyncVectorEnv``. Per env and key that method does a
    few numpy calls: at N = 4096 it was a third of a vector step (``benchmarks/bench_vector_env.py``).

    Example:
        >>> info = merge_infos([(0, {"turn": 1}), (2, {"turn": 4, "answer": "7"})], 3)
        >>> info["turn"].tolist(), info["_turn"].tolist(), info["answer"].tolist()
        ([1, 0, 4], [True, False, True], [None, None, '7'])
    """
    envs_of: dict[str, list[int]] = {}  # per key, in order of first appearance: the envs that have it
    values_of: dict[str, list[Any]] = {}  # and their values (one pass over the infos, no tuple per value)
    for env, info in entries:
        for key, value in info.items():
            if key in values_of:
                envs_of[key].append(env)
                values_of[key].append(value)
            else:
                envs_of[key], values_of[key] = [env], [value]
    out: dict[str, Any] = {}
    for key, values in values_of.items():
        envs = envs_of[key]
        first = values[0]
        if key != "final_obs" and isinstance(first, dict):
            out[key] = merge_infos(list(zip(envs, values)), num_envs)
        else:
            out[key] = array = _empty_column(key, first, num_envs)
            for env, value in zip(envs, values):  # one by one, as Gymnasium assigns (same casts)
                array[env] = value
        out[f"_{key}"] = mask = np.zeros(num_envs, dtype=np.bool_)
        mask[envs] = True
    return out


def _empty_column(key: str, first: Any, num_envs: int) -> np.ndarray:
    """The array Gymnasium starts a key's column with, from the key's first value."""
    if key != "final_obs" and (type(first) in _NUMERIC or isinstance(first, np.number)):
        return np.zeros(num_envs, dtype=type(first))
    if key != "final_obs" and isinstance(first, np.ndarray):
        return np.zeros((num_envs, *first.shape), dtype=first.dtype)
    return np.full(num_envs, None, dtype=object)


def compact_info(infos: dict[str, Any], rows: Sequence[int]) -> dict[str, Any]:
    """The entries of ``rows`` of a vector ``info``, in that order (nested dicts alike); a key that none
    of ``rows`` reported is left out, as Gymnasium leaves out a key no env reported.

    Example:
        >>> info = {"turn": np.array([1, 0, 4]), "_turn": np.array([True, False, True])}
        >>> {k: v.tolist() for k, v in compact_info(info, [2, 1]).items()}
        {'turn': [4, 0], '_turn': [True, False]}
    """
    idx = np.asarray(rows, dtype=np.intp)
    unreported = {
        key for key in infos if isinstance(infos.get(f"_{key}"), np.ndarray) and not infos[f"_{key}"][idx].any()
    }
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key in unreported or (key.startswith("_") and key[1:] in unreported):
            continue
        out[key] = compact_info(value, rows) if isinstance(value, dict) else value[idx]
    return out
