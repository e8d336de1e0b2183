"""Pieces of :class:`envs.vector_env.EAPOVectorEnv` kept apart: a pending batched step, and compact info.

:class:`PendingStep` is what ``submit`` hands out: the envs that finished at once and those that
wait on the step's batched expert call. :func:`compact_info` turns a vector ``info`` (one entry per
env, Gymnasium's arrays + ``_key`` masks) into the rows of chosen envs, for ``step_subset``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eapo_env.experts.base import ConsultCall
from envs.step import StepResult


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
    """

    completed: dict[int, StepResult]
    waiting: tuple[int, ...]
    actions: dict[int, str] = field(repr=False)
    calls: list[tuple[ConsultCall, list[ConsultSlice]]] = field(repr=False)
    collected: bool = field(default=False, repr=False)

    def ready(self) -> bool:
        """Whether every batched call returned (``collect`` will not block); True when nothing waits."""
        return all(call.done() for call, _ in self.calls)


def compact_info(infos: dict[str, Any], rows: Sequence[int]) -> dict[str, Any]:
    """The entries of ``rows`` of a vector ``info``, in that order (nested dicts alike); a key that none
    of ``rows`` reported is left out, as Gymnasium leaves out a key no env reported.

    Example:
        >>> info = {"turn": np.array([1, 0, 4]), "_turn": np.array([True, False, True])}
        >>> {k: v.tolist() for k, v in compact_info(info, [2, 1]).items()}
        {'turn': [4, 0], '_turn': [True, False]}
    """
    idx = np.asarray(rows, dtype=np.intp)
    unreported = {key for key in infos if isinstance(infos.get(f"_{key}"), np.ndarray) and not infos[f"_{key}"][idx].any()}
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key in unreported or (key.startswith("_") and key[1:] in unreported):
            continue
        out[key] = compact_info(value, rows) if isinstance(value, dict) else value[idx]
    return out
