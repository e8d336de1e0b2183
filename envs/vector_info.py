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
        # The mask of the last ``envs`` array seen: most keys of a step are written for the same envs,
        # so their masks are copies of one array instead of one scatter each.
        self._mask_envs: np.ndarray | None = None
        self._mask = np.zeros(num_envs, dtype=np.bool_)

    def _mask_of(self, envs: np.ndarray) -> np.ndarray:
        if envs is not self._mask_envs:  # identity: the cache holds ``envs``, so its id stays its own
            self._mask = np.zeros(self.num_envs, dtype=np.bool_)
            self._mask[envs] = True
            self._mask_envs = envs
        return self._mask

    def put(self, key: str, envs: np.ndarray, values: np.ndarray, *, array: np.ndarray | None = None) -> None:
        """Write ``values`` (aligned with ``envs``) under ``key``; ``array``: use this full array as is."""
        if len(envs) == 0:
            return
        infos = self.infos
        current = infos.get(key)
        mask = self._mask_of(envs)
        if current is None:
            if array is not None:
                current = array
            elif values.dtype == object:
                current = np.empty(self.num_envs, dtype=object)  # None-filled (np.full is slower)
            else:
                current = np.zeros(self.num_envs, dtype=values.dtype)
            infos[key] = current
            infos["_" + key] = mask.copy()
        else:
            np.logical_or(infos["_" + key], mask, out=infos["_" + key])
        if array is None:
            current[envs] = values

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
        self.verdicts: tuple[np.ndarray, list[str], list[str]] | None = None  # (positions, statuses, answers)
        self.charged = np.zeros(k, dtype=bool)  # consulting turns without a format error
        self.columns: list[tuple[str, np.ndarray | None, np.ndarray]] = []

    def finish(
        self,
        codes: np.ndarray,
        consult_pos: np.ndarray,
        consult_parsed: Sequence[ParsedAction],
        turn: np.ndarray,
        turns_left: np.ndarray,
        consults: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Build every column from what was recorded (bulk assignments from arrays, no per-env numpy).

        ``codes``: per stepped env, 0 reason / 1 consult / 2 answer; ``consult_parsed``: the parsed
        actions of the consulting envs, in the order of ``consult_pos``.
        """
        k = self.k
        zeros = functools.partial(np.zeros, k, dtype=np.int64)
        queries, dropped, blank, accepted, unavailable, timeouts, errors = (zeros() for _ in range(7))
        format_error = np.zeros(k, dtype=np.bool_)
        if len(consult_pos):
            cp = consult_pos
            _, _, q, d, b, f = zip(*consult_parsed)  # ParsedAction fields, one column each
            queries[cp] = np.fromiter(map(len, q), np.int64, len(q))
            if any(d):  # the usual consult drops nothing, keeps no blank and has no format error
                dropped[cp] = np.fromiter(d, np.int64, len(d))
            if any(b):
                blank[cp] = np.fromiter(b, np.int64, len(b))
            if any(f):
                format_error[cp] = np.fromiter(map(bool, f), np.bool_, len(f))
            self.charged[cp] = ~format_error[cp]
        slots_pos, slots, cut_pos, cut = [], [], [], []
        if self.consulted:
            pos, n_acc, n_unav, env_slots, n_timeouts, n_errors, n_cut = zip(*self.consulted)
            where = np.fromiter(pos, np.intp, len(pos))
            accepted[where] = np.fromiter(n_acc, np.int64, len(pos))
            if any(n_unav):
                unavailable[where] = np.fromiter(n_unav, np.int64, len(pos))
            if any(n_timeouts) or any(n_errors):
                timeouts[where] = n_timeouts
                errors[where] = n_errors
            # No slots when every query was rejected: no expert was called (as one env).
            if None in env_slots:
                slots_pos = [j for j, sl in zip(pos, env_slots) if sl is not None]
                slots = [sl for sl in env_slots if sl is not None]
            else:
                slots_pos, slots = where, env_slots
            if any(n_cut):
                cut_pos = [j for j, c in zip(pos, n_cut) if c]
                cut = [c for c in n_cut if c]
        cols = self.columns
        cols.append(("problem_id", None, self.problem_ids))
        cols.append(("action", None, KIND_NAMES[codes]))  # codes: uint8, 0/1/2
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
        if len(slots_pos):
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
                correct[pos] = object_array(status) == "correct"
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
