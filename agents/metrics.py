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
* ``masked_token_frac``: share of response tokens that are out of the loss (observations, expert
  text, filtered episodes). ``kept_group_frac``: share of groups kept by dynamic sampling;
  ``kept_episode_frac``: share of episodes contributing to the loss.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def episode_metrics(trajs: Sequence[Any]) -> dict[str, float]:
    """Behaviour metrics of a batch of :class:`agents.rollout.types.Trajectory` (see module docs)."""
    n = max(1, len(trajs))
    correct = [episode_correct(t) for t in trajs]
    queries = [sum(int(i.get("queries", 0)) for i in t.infos) for t in trajs]
    accepted = [sum(int(i.get("accepted", 0)) for i in t.infos) for t in trajs]
    attempts = [sum(1 for i in t.infos if i.get("action") == "consult") for t in trajs]
    consults = [max(int(t.consults), a) for t, a in zip(trajs, attempts)]
    p_used = [t.reset_info.get("acceptance_prob") for t in trajs if "acceptance_prob" in t.reset_info]
    turns_used = [t.reset_info.get("max_turns") for t in trajs if "max_turns" in t.reset_info]
    total_q = sum(queries)
    return {
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
    }


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
