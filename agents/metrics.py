"""Per-step training metrics: definitions, the JSONL stream (resume-safe) and TensorBoard.

Definitions (all over the episodes of one step, before any filtering):

* ``accuracy``: share of episodes whose final answer is verified correct (raw correctness).
* ``reward``: mean episode reward (correctness, minus the consult penalty when one is set).
* ``consult_rate``: share of episodes in which the policy **chose** to consult at least once
  (the policy's behaviour; it does not depend on p(t) directly).
* ``consults_per_episode``: mean number of consulting turns per episode (policy's choice).
* ``expert_call_rate``: share of episodes that received at least one **accepted** expert reply,
  i.e. an expert was actually called. It is the consult rate thinned by p(t), so it falls as p(t)
  anneals even when the policy keeps asking. This is the "expert call rate over training" of the
  paper's plots in the sense of experts actually used.
* ``expert_calls_per_episode``: accepted queries (expert calls) per episode.
* ``accept_rate``: accepted / kept queries (an empirical estimate of p(t) when there are queries).
* ``p_t`` / ``turn_budget``: the acceptance probability and turn budget the envs used this step
  (read back from the envs' ``reset`` info), ``p_schedule`` / ``turn_schedule``: the schedules'
  values at this step (the two agree unless a wrapper clamps).
* ``response_tokens``: tokens after the prompt per episode (policy + observations);
  ``policy_tokens``: the policy's own tokens per episode; ``turns``: policy turns per episode.
* ``accuracy_consulted`` / ``accuracy_unconsulted``, ``reward_consulted`` / ``reward_unconsulted``,
  ``episodes_consulted`` / ``episodes_unconsulted``: the same split by whether the policy consulted
  (NaN for an empty side). They feed the consult-collapse monitor (:class:`CollapseMonitor`).
* ``dose``: the same number as ``expert_call_rate`` under the name the mechanism benchmark uses
  (issue 20): the share of the step's episodes that received at least one accepted expert reply.
* ``solved_group_frac``: the densification: share of GRPO groups (episodes with one ``group_id``)
  with at least one correct episode; ``all_wrong_group_frac`` is its complement. Where every group
  is all-wrong self-exploration has no signal; an expert's replies can raise this share.
* ``masked_token_frac``: share of response tokens that are out of the loss (observations, expert
  text, filtered episodes). ``kept_group_frac``: share of groups kept by dynamic sampling;
  ``kept_episode_frac``: share of episodes contributing to the loss.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def episode_metrics(trajs: Sequence[Any]) -> dict[str, float]:
    """Behaviour metrics of a batch of :class:`agents.rollout.types.Trajectory` (see module docs)."""
    n = max(1, len(trajs))
    correct = [episode_correct(t) for t in trajs]
    queries = [sum(int(i.get("queries", 0)) for i in t.infos) for t in trajs]
    accepted = [sum(int(i.get("accepted", 0)) for i in t.infos) for t in trajs]
    consults = [int(t.consults) for t in trajs]  # the env's episode total (info["consults"]), not recounted
    p_used = [t.reset_info.get("acceptance_prob") for t in trajs if "acceptance_prob" in t.reset_info]
    turns_used = [t.reset_info.get("max_turns") for t in trajs if "max_turns" in t.reset_info]
    total_q = sum(queries)
    consulted = [c > 0 for c in consults]
    return {
        **split_by_consult(correct, [float(t.reward) for t in trajs], consulted),
        "episodes": len(trajs),
        "accuracy": sum(correct) / n,
        "reward": sum(float(t.reward) for t in trajs) / n,
        "consult_rate": sum(c > 0 for c in consults) / n,
        "consults_per_episode": sum(consults) / n,
        "queries_per_episode": total_q / n,
        "expert_call_rate": sum(a > 0 for a in accepted) / n,
        "expert_calls_per_episode": sum(accepted) / n,
        "accept_rate": (sum(accepted) / total_q) if total_q else float("nan"),
        "p_t": (sum(p_used) / len(p_used)) if p_used else float("nan"),
        "turn_budget": (sum(turns_used) / len(turns_used)) if turns_used else float("nan"),
        "response_tokens": sum(len(t.token_ids) for t in trajs) / n,
        "policy_tokens": sum(t.num_policy_tokens for t in trajs) / n,
        "turns": sum(t.num_turns for t in trajs) / n,
        "answered_rate": sum(bool(t.terminated) for t in trajs) / n,
        "overlong_rate": sum(bool(t.overlong) for t in trajs) / n,
        "format_error_rate": sum(any(i.get("format_error") for i in t.infos) for t in trajs) / n,
        "dose": sum(a > 0 for a in accepted) / n,
        **group_densification([t.group_id for t in trajs], correct),
    }


def group_densification(group_ids: Sequence[Any], correct: Sequence[bool]) -> dict[str, float]:
    """Share of groups with at least one correct episode (and of all-wrong groups); NaN with no episode.

    Example:
        >>> group_densification([0, 0, 1, 1, 2, 2], [False, True, False, False, True, True])
        {'solved_group_frac': 0.6666666666666666, 'all_wrong_group_frac': 0.33333333333333337}
    """
    solved: dict[Any, bool] = {}
    for gid, ok in zip(group_ids, correct):
        solved[gid] = solved.get(gid, False) or bool(ok)
    if not solved:
        return {"solved_group_frac": float("nan"), "all_wrong_group_frac": float("nan")}
    frac = sum(solved.values()) / len(solved)
    return {"solved_group_frac": frac, "all_wrong_group_frac": 1.0 - frac}


def split_by_consult(correct: Sequence[bool], rewards: Sequence[float], consulted: Sequence[bool]) -> dict[str, float]:
    """Accuracy and reward of the episodes that consulted vs those that did not (NaN when none).

    Example:
        >>> split_by_consult([True, False, True], [1.0, 0.0, 0.9], [True, False, False])["accuracy_unconsulted"]
        0.5
    """
    out: dict[str, float] = {}
    for name, want in (("consulted", True), ("unconsulted", False)):
        idx = [i for i, c in enumerate(consulted) if c == want]
        out[f"episodes_{name}"] = float(len(idx))
        out[f"accuracy_{name}"] = sum(bool(correct[i]) for i in idx) / len(idx) if idx else float("nan")
        out[f"reward_{name}"] = sum(rewards[i] for i in idx) / len(idx) if idx else float("nan")
    return out


def episode_correct(traj: Any) -> bool:
    """Raw verified correctness of an episode: the env's ``info["correct"]`` at its end, as the rollout
    recorded it in ``Trajectory.correct`` (False for an episode the token budget cut). Never the reward."""
    return bool(traj.correct)


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN/inf become None (strict JSON), numpy/torch scalars become floats."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLogger:
    """Appends one JSON line per step to ``<out>/metrics.jsonl`` (and TensorBoard scalars).

    Resume-safe: :meth:`truncate_after` drops every line with ``step >= next_step`` (and a torn last
    line left by a kill), so a resumed run writes each step exactly once.
    """

    def __init__(self, out_dir: str | Path, tensorboard: bool = True, start_step: int = 0) -> None:
        self.path = Path(out_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.truncate_after(start_step)
        self._fh = self.path.open("a", encoding="utf-8")
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step drops TensorBoard events at or after the resumed step
                self.tb = SummaryWriter(str(Path(out_dir) / "tb"), purge_step=start_step or None)
            except Exception:  # tensorboard is optional
                self.tb = None

    def truncate_after(self, next_step: int) -> None:
        """Keep only well-formed lines whose ``step`` is < ``next_step``; rewrite atomically."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line from a killed run
            if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] < next_step:
                kept.append(line)
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.path)

    def log(self, record: dict[str, Any]) -> None:
        """Write one step's record (must hold an int ``step``); flushed and fsynced."""
        rec = {k: _clean(v) for k, v in record.items()}
        self._fh.write(json.dumps(rec, sort_keys=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        if self.tb is not None:
            step = int(rec["step"])
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(k.replace(".", "/"), v, step)

    def close(self) -> None:
        self._fh.close()
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` (or of ``<dir>/metrics.jsonl``), torn lines skipped."""
    p = Path(path)
    if p.is_dir():
        p = p / METRICS_FILE
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def mean_of(records: Iterable[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over records where it is a number (NaN if none)."""
    vals = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    return sum(vals) / len(vals) if vals else float("nan")


# ------------------------------------------------------------------------ consult-collapse monitor


@dataclass(frozen=True)
class CollapseSignals:
    """The monitor's verdict on one step (logged as 0/1 columns every step)."""

    consult_rising: bool  # the policy's consult rate rose over the window while p(t) fell
    unconsulted_lag: bool  # late in training, unconsulted episodes are less accurate than consulted ones

    def warnings(self, step: int) -> list[str]:
        out = []
        if self.consult_rising:
            out.append(
                f"step {step}: consult collapse? the policy's consult rate is rising while p(t) falls "
                "(it is learning to ask experts that will stop answering; raise consult_penalty or anneal slower)"
            )
        if self.unconsulted_lag:
            out.append(
                f"step {step}: consult collapse? late in training, episodes without a consult are less accurate "
                "than consulted ones (the policy relies on experts it will not have at evaluation)"
            )
        return out


@dataclass
class CollapseMonitor:
    """Watches the policy's own consult rate beside p(t) and warns on consult collapse (DESIGN §8).

    Two signals, each over a moving window of ``window`` steps compared with the window before it:

    * ``consult_rising``: the mean consult rate rose by at least ``min_rise`` while the mean p(t)
      fell by at least ``min_p_drop``;
    * ``unconsulted_lag``: from ``late_frac`` of the run on, the windowed accuracy of unconsulted
      episodes is below that of consulted ones by at least ``min_gap`` (each side with at least
      ``min_episodes`` episodes in the window).

    A warning is printed when a signal turns on (not on every step it stays on).

    Example:
        >>> mon = CollapseMonitor(window=2)
        >>> recs = [{"consult_rate": c, "p_t": p} for c, p in [(0.2, 1.0), (0.2, 0.9), (0.5, 0.6), (0.6, 0.5)]]
        >>> [mon.update(r, step=i, total_steps=10).consult_rising for i, r in enumerate(recs)]
        [False, False, False, True]
    """

    window: int = 10
    min_rise: float = 0.05
    min_p_drop: float = 0.02
    late_frac: float = 0.5
    min_gap: float = 0.15
    min_episodes: int = 16
    history: list[dict[str, Any]] = field(default_factory=list)
    active: CollapseSignals = CollapseSignals(False, False)  # this step's signals
    new_warnings: list[str] = field(default_factory=list)  # messages for signals that turned on this step

    def update(self, record: dict[str, Any], step: int, total_steps: int) -> CollapseSignals:
        """Add one step's record; returns this step's signals (see :attr:`new_warnings`)."""
        self.history.append(record)
        w = self.window
        recent, before = self.history[-w:], self.history[-2 * w : -w]
        rising = False
        if len(before) == w:
            rise = mean_of(recent, "consult_rate") - mean_of(before, "consult_rate")
            p_drop = mean_of(before, "p_t") - mean_of(recent, "p_t")
            rising = rise >= self.min_rise and p_drop >= self.min_p_drop
        lag = step + 1 >= self.late_frac * total_steps and self._lag(recent)
        previous, self.active = self.active, CollapseSignals(rising, lag)
        self.new_warnings = CollapseSignals(
            rising and not previous.consult_rising, lag and not previous.unconsulted_lag
        ).warnings(step)
        return self.active

    def _lag(self, recent: Sequence[dict[str, Any]]) -> bool:
        def pooled(side: str) -> tuple[float, float]:
            n = sum(r.get(f"episodes_{side}") or 0.0 for r in recent)
            hits = sum((r.get(f"accuracy_{side}") or 0.0) * (r.get(f"episodes_{side}") or 0.0) for r in recent)
            return n, hits / n if n else float("nan")

        n_c, acc_c = pooled("consulted")
        n_u, acc_u = pooled("unconsulted")
        return n_c >= self.min_episodes and n_u >= self.min_episodes and acc_u <= acc_c - self.min_gap
