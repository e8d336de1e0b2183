"""A vector env's ``info``: columns of the envs stepped together, written as Gymnasium's arrays + masks.

:class:`StepColumns` collects what happened to each stepped env while the turns are resolved
(consult outcomes, verdicts) and turns it into arrays once per step; :class:`InfoBuilder` writes
those arrays under Gymnasium's vector-info rules (one array per key plus its ``_key`` mask).
Kept apart from :mod:`envs.turns`, which holds the per-turn semantics every env shares.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from eapo_env.protocol import ParsedAction

#: ``info["action"]`` by kind code (0 reason, 1 consult, 2 answer).
KIND_NAMES = np.array(["reason", "consult", "answer"], dtype=object)


def object_array(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array holding ``values`` as they are (tuples stay tuples, not a 2-D array)."""
    return np.fromiter(values, dtype=object, count=len(values))


class InfoBuilder:
    """A vector env's ``info``: one array per key plus its ``_key`` mask, as Gymnasium builds it.

    Gymnasium's rule (``VectorEnv._add_info``): ``int``/``float``/``bool`` values give int64/float64/bool
    arrays filled with zeros elsewhere, anything else an object array filled with ``None``; a key
    exists only if some env reported it. Here whole columns are written with one fancy assignment.

    Example:
        >>> b = InfoBuilder(3)
        >>> b.put("turn", np.array([0, 2]), np.array([1, 4]))
        >>> b.infos["turn"].tolist(), b.infos["_turn"].tolist()
        ([1, 0, 4], [True, False, True])
    """

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.infos: dict[str, Any] = {}

    def put(self, key: str, envs: np.ndarray, values: np.ndarray, *, array: np.ndarray | None = None) -> None:
        """Write ``values`` (aligned with ``envs``) under ``key``; ``array``: use this full array as is."""
        if len(envs) == 0:
            return
        infos = self.infos
        current = infos.get(key)
        if current is None:
            if array is not None:
                current = array
            elif values.dtype == object:
                current = np.empty(self.num_envs, dtype=object)  # None-filled (np.full is slower)
            else:
                current = np.zeros(self.num_envs, dtype=values.dtype)
            infos[key] = current
            infos["_" + key] = np.zeros(self.num_envs, dtype=np.bool_)
        if array is None:
            current[envs] = values
        infos["_" + key][envs] = True

    def put_dict(self, key: str, envs: np.ndarray, sub: dict[str, Any]) -> None:
        """A nested info dict (``final_info``) reported by ``envs``."""
        if len(envs) == 0:
            return
        self.infos[key] = sub
        mask = self.infos.setdefault("_" + key, np.zeros(self.num_envs, dtype=np.bool_))
        mask[envs] = True

    def compact(self, idx: np.ndarray) -> dict[str, Any]:
        """The same info restricted to envs ``idx`` (entry j ↔ env ``idx[j]``)."""
        return {k: ({kk: vv[idx] for kk, vv in v.items()} if isinstance(v, dict) else v[idx]) for k, v in self.infos.items()}


class StepColumns:
    """The step ``info`` of k envs stepped together, as columns (entry j ↔ the j-th stepped env).

    The vector env records what happened per env (consult outcomes, verdicts) while resolving the
    turns; :meth:`finish` turns that into arrays; :meth:`emit` writes them into an :class:`InfoBuilder`
    (all of them, or only the envs of a mask, as ``SAME_STEP`` autoreset needs).
    """

    def __init__(self, k: int, problem_ids: np.ndarray, action_truncated: np.ndarray) -> None:
        self.k = k
        self.problem_ids = problem_ids
        self.action_truncated = action_truncated
        # (j, accepted, unavailable, expert slots or None if no expert was called, timeouts, errors, replies cut)
        self.consulted: list[tuple[int, int, int, tuple[str, ...] | None, int, int, int]] = []
        self.disabled: list[int] = []  # eval-mode consults
        self.verdicts: tuple[list[int], list[str], list[str]] | None = None  # (positions, statuses, answers)
        self.charged = np.zeros(k, dtype=bool)  # consulting turns without a format error
        self.columns: list[tuple[str, np.ndarray | None, np.ndarray]] = []

    def finish(
        self,
        consult_parsed: Sequence[ParsedAction],
        answer_pos: list[int],
        consult_pos: list[int],
        turn: np.ndarray,
        turns_left: np.ndarray,
        consults: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Build every column from what was recorded (each with one bulk assignment, no per-env numpy)."""
        k = self.k
        codes = np.zeros(k, dtype=np.intp)
        codes[consult_pos] = 1
        codes[answer_pos] = 2
        zeros = functools.partial(np.zeros, k, dtype=np.int64)
        queries, dropped, blank, accepted, unavailable, timeouts, errors = (zeros() for _ in range(7))
        format_error = np.zeros(k, dtype=np.bool_)
        if consult_pos:
            cp = np.asarray(consult_pos, dtype=np.intp)
            _, _, q, d, b, f = zip(*consult_parsed)  # ParsedAction fields, one column each
            queries[cp] = list(map(len, q))
            dropped[cp] = d
            blank[cp] = b
            format_error[cp] = list(map(bool, f))
            self.charged[cp] = ~format_error[cp]
        slots_pos, slots, cut_pos, cut = [], [], [], []
        if self.consulted:
            pos, n_acc, n_unav, env_slots, n_timeouts, n_errors, n_cut = zip(*self.consulted)
            where = list(pos)
            accepted[where] = n_acc
            unavailable[where] = n_unav
            if any(n_timeouts) or any(n_errors):
                timeouts[where] = n_timeouts
                errors[where] = n_errors
            # No slots when every query was rejected: no expert was called (as one env).
            if None in env_slots:
                slots_pos = [j for j, sl in zip(pos, env_slots) if sl is not None]
                slots = [sl for sl in env_slots if sl is not None]
            else:
                slots_pos, slots = where, list(env_slots)
            if any(n_cut):
                cut_pos = [j for j, c in zip(pos, n_cut) if c]
                cut = [c for c in n_cut if c]
        cols = self.columns
        cols.append(("problem_id", None, self.problem_ids))
        cols.append(("action", None, KIND_NAMES[codes]))
        cols.append(("queries", None, queries))
        cols.append(("accepted", None, accepted))
        cols.append(("unavailable", None, unavailable))
        cols.append(("dropped_queries", None, dropped))
        cols.append(("blank_queries", None, blank))
        cols.append(("format_error", None, format_error))
        cols.append(("action_truncated", None, self.action_truncated))
        cols.append(("expert_timeouts", None, timeouts))
        cols.append(("expert_errors", None, errors))
        cols.append(("turn", None, turn))
        cols.append(("turns_left", None, turns_left))
        cols.append(("consults", None, consults))
        if slots_pos:
            cols.append(("expert_slots", np.asarray(slots_pos, dtype=np.intp), object_array(slots)))
        if cut_pos:
            cols.append(("replies_cut", np.asarray(cut_pos, dtype=np.intp), np.asarray(cut, dtype=np.int64)))
        if self.disabled:
            cols.append(("consult_disabled", np.asarray(self.disabled, dtype=np.intp), np.ones(len(self.disabled), dtype=np.bool_)))
        # Episode end (RewardVerification): the answer, its verdict; "no_answer" when truncated.
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            answers = np.empty(k, dtype=object)  # None-filled
            verdict = np.empty(k, dtype=object)
            verdict[truncated] = "no_answer"
            correct = np.zeros(k, dtype=np.bool_)
            if self.verdicts is not None:
                pos, status, answer = self.verdicts
                answers[pos] = object_array(answer)
                verdict[pos] = status
                correct[pos] = [st == "correct" for st in status]
            cols.append(("answer", ended, answers[ended]))
            cols.append(("verdict", ended, verdict[ended]))
            cols.append(("correct", ended, correct[ended]))

    def add_penalty(self, cost: float) -> np.ndarray:
        """ConsultPenalty's ``info["consult_penalty"]``; returns the mask of charged envs."""
        charged = np.flatnonzero(self.charged)
        if len(charged):
            self.columns.append(("consult_penalty", charged, np.full(len(charged), cost)))
        return self.charged

    def emit(self, builder: InfoBuilder, envs: np.ndarray, keep: np.ndarray | None) -> None:
        """Write the columns for ``envs`` (entry j ↔ ``envs[j]``), only where ``keep`` if given."""
        for key, pos, values in self.columns:
            if keep is None:
                builder.put(key, envs if pos is None else envs[pos], values)
                continue
            sel = keep if pos is None else keep[pos]
            if sel.any():
                builder.put(key, (envs if pos is None else envs[pos])[sel], values[sel])
