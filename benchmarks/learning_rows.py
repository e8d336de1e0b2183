"""The rows of the learning benchmark, the paper's numbers beside them, and the budget each profile spends.

Every row is a packaged config (``agents/configs/<name>.toml``) run through :func:`agents.baselines.run`,
the path ``eapo train --config <name>`` takes. The benchmark changes only what makes rows comparable
at toy scale, identically for every row (:func:`row_config`):

* the policy (one starting policy for all rows), training and held-out problems, the evaluation
  (problems, samples, seed 4242, which no training run draws);
* the learner regime (learning rate, group size, token caps, turn budget and the learner's mini-batch
  fields) read from one packaged config, the profile's ``regime``: ``eapo_hint.toml`` for the paper
  rows on the expert-reader base (its 200-token turns fit level-2/3 solutions, and the mechanism rows
  run it), ``quickstart.toml`` for the tiny base (``--smoke``), since the packaged paper configs carry
  the paper's 7B values (lr 1e-6). The consult penalty and p(t) are the method's own (each row's
  config): they are what the EAPO rows compare;
* the update budget: RL rows run ``steps`` rollout batches; the packaged schedules write their step
  counts as shares of the run (``linear:1.0:0.0:25%``, :mod:`eapo_env.schedules`), so setting ``steps``
  is all it takes for an ablation to keep its shape (a budget-matched constant stays budget-matched);
  distillation SFT gets as many optimizer steps as RL takes.

Example:
    >>> [r.key for r in rows_for("smoke")][:3]
    ['base', 'self_collab', 'expert_workflow']
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.config import TrainConfig, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "agents" / "configs"
HELDOUT_SEED = 4242
#: Learner settings every row takes from its profile's regime config (see module doc).
REGIME_KEYS = (
    "lr",
    "warmup_steps",
    "group_size",
    "prompts_per_step",
    "max_turn_tokens",
    "max_total_tokens",
    "max_turns",
    "turn_schedule",
    "temperature",
    "top_p",
    "kl_coef",
    "weight_decay",
    "clip_low",
    "clip_high",
    "mini_batches",
    "minibatches",
    "num_minibatches",
    "epochs",
    "ppo_epochs",
    "update_epochs",
    "grad_accum",
    "dynamic_sampling",
    "overlong_filter",
    "eval_max_turns",
    "threads",
)


@dataclass(frozen=True)
class Row:
    """One line of the report: a packaged config, the table it belongs to, the paper's average there."""

    key: str
    config: str
    label: str
    table: str
    paper_pass: float | None = None  # the paper's Avg. Pass@32 (percent), None where it has none
    paper_var: float | None = None  # the paper's Avg. Var


ROWS: tuple[Row, ...] = (
    Row("base", "base", "Base model", "1", 42.53, 0.0947),
    Row("self_collab", "self_collab", "Self-collaboration workflow", "1", 41.83, 0.2072),
    Row("expert_workflow", "expert_workflow", "Expert-assisted workflow", "1", 49.39, 0.2039),
    Row("distill_full", "distill_sft", "Distillation SFT (full)", "1", 35.31, 0.1020),
    Row("distill_lora", "distill_lora", "Distillation SFT (LoRA)", "1", 43.24, 0.0969),
    Row("self_explore", "self_explore", "Self-exploratory RL", "1", 59.16, 0.0727),
    Row("eapo", "eapo", "EAPO (reference expert, K=3, default schedule)", "1", 64.07, 0.0643),
    Row("sched_const", "eapo_sched_const", "EAPO, budget-matched constant p", "9", 59.65),
    Row("sched_slow", "eapo_sched_slow", "EAPO, slow decay", "9", 62.82),
    Row("sched_fast", "eapo_sched_fast", "EAPO, fast decay", "9", 59.76),
    Row("expert_self", "eapo_expert_self", "EAPO, homogeneous experts (own replicas)", "3", 58.85, 0.0756),
    Row("expert_noisy", "eapo_expert_noisy", "EAPO, noisy experts (50% wrong), K=3 parallel", "3", None),
    Row("expert_constant", "eapo_expert_constant", "EAPO, constant (meaningless) experts", "3", None),
    Row("noisy_k1", "eapo_expert_noisy_k1", "EAPO, noisy experts, K=1 sequential", "2", 61.79, 0.0721),
    Row("workflow_noisy", "workflow_noisy", "Workflow, error-sampling experts", "E", 42.82, 0.2086),
    Row("workflow_constant", "workflow_constant", "Workflow, meaningless guidance", "E", 42.92, 0.1953),
)
ROW_BY_KEY = {r.key: r for r in ROWS}
#: The mechanism rows (issue 20, ``--profile mechanism``): one expert-reader base, one update budget,
#: the same training prompt and caps; they differ only in whether and what the experts answer.
MECH_ROWS: tuple[Row, ...] = (
    Row("base", "mech_base", "The expert-reader base, no RL", "M"),
    Row("self_explore", "mech_self_explore", "Self-exploratory RL (p(t) = 0, same prompt and caps)", "M"),
    Row("eapo_hint", "eapo_hint", "EAPO, hint expert (worked steps, no final answer)", "M"),
    Row("eapo_answer", "eapo_answer", "EAPO, reference expert (worked solution and answer)", "M"),
    Row("eapo_placebo", "eapo_placebo", "EAPO, constant expert (content-free), same schedule", "M"),
    Row("distill_full", "mech_distill_full", "Distillation SFT on the expert's solutions", "M"),
    Row("luffy", "mech_luffy", "Guidance: the expert's solution in every group (LUFFY)", "M"),
)
MECH_ROW_BY_KEY = {r.key: r for r in MECH_ROWS}


@dataclass(frozen=True)
class Profile:
    """How much each row spends. ``segments``: held-out evaluations along an RL run (curve points)."""

    name: str
    rows: tuple[str, ...]
    seeds: int
    steps: int
    eval_problems: int
    eval_k: int
    segments: int
    prompts_per_step: int | None = None  # None: the regime's
    group_size: int | None = None
    max_turn_tokens: int | None = None
    distill_problems: int = 2000
    row_set: str = "paper"  # "paper": ROWS; "mechanism": MECH_ROWS
    regime: str | None = "quickstart"  # the config whose REGIME_KEYS every row takes; None: each row's own
    #: (row key, packaged config) pairs that replace a row's config in this profile
    row_configs: tuple[tuple[str, str], ...] = ()
    policy: str | None = None  # starting policy relative to the repository root (None: the shipped tiny base)
    problems: str | None = None  # training and held-out spec (None: learning.DEFAULT_PROBLEMS)


#: The mechanism rows' levels: 3 is the target (the expert-reader base alone ~1 %, with a hint ~45 %),
#: 2 the retention level (alone ~20 %).
MECH_PROBLEMS = "generated:arithmetic:2-3"
#: The expert-reader base (issue 20), relative to the repository root: the mechanism and paper rows' start.
READER_BASE = "agents/assets/expert_reader_base"


def on_reader_base(profile: Profile) -> Profile:
    """``profile`` on the expert-reader base, with the mechanism rows' levels and learner (``eapo_hint``).

    Two rows take the mechanism's configs: self-exploration (EAPO's training prompt and caps with
    p(t) = 0: no prompt confound; its runs are the mechanism report's, reused when copied in) and full
    distillation (the reader base's distillation lr, 1e-4: the tiny base's 1e-3 undoes its pretraining).
    Every row, the base and the workflows included, is evaluated at the regime's final turn budget.
    """
    own = (("self_explore", "mech_self_explore"), ("distill_full", "mech_distill_full"))
    return dataclasses.replace(profile, regime="eapo_hint", policy=READER_BASE, problems=MECH_PROBLEMS, row_configs=own)


TABLE1 = ("base", "self_collab", "expert_workflow", "distill_full", "distill_lora", "self_explore", "eapo")
PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        ("base", "self_collab", "expert_workflow", "distill_full", "self_explore", "eapo"),
        seeds=1,
        steps=2,
        eval_problems=4,
        eval_k=2,
        segments=1,
        prompts_per_step=2,
        group_size=2,
        max_turn_tokens=12,
        distill_problems=16,
    ),
    # Table 1's core rows, 1 seed, half the prompts of `full` and half its steps: <= 15 min on 2 cores.
    "quick": on_reader_base(
        Profile(
            "quick",
            ("base", "expert_workflow", "self_collab", "self_explore", "eapo"),
            seeds=1,
            steps=40,
            eval_problems=100,
            eval_k=4,
            segments=1,
            prompts_per_step=8,
        )
    ),
    # Every row, 3 seeds, 80 RL steps on the expert-reader base (the mechanism rows' base, levels and
    # learner): ~4 h of single-thread runs, ~2 h on 2 cores as two --rows streams into one --out
    # (benchmarks/results/full/report.md); self_explore's runs are the mechanism report's (see on_reader_base).
    "full": on_reader_base(
        Profile("full", tuple(r.key for r in ROWS), seeds=3, steps=80, eval_problems=200, eval_k=8, segments=2)
    ),
    # The paper rows on the tiny base and the quickstart's level 1-2 regime (the `full` profile until issue 20
    # moved it to the expert-reader base): benchmarks/results/tiny/report.md.
    "tiny": Profile("tiny", tuple(r.key for r in ROWS), seeds=3, steps=60, eval_problems=200, eval_k=8, segments=2),
    # Issue 20: the mechanism rows from the expert-reader base, their own (identical) learner and caps
    # (level-2 solutions need ~83 tokens: the tiny base's 64-token turns would cut them).
    "mechanism": Profile(
        "mechanism",
        tuple(r.key for r in MECH_ROWS),
        seeds=3,
        steps=80,
        eval_problems=200,
        eval_k=8,
        segments=2,
        row_set="mechanism",
        regime=None,
        policy=READER_BASE,
        problems=MECH_PROBLEMS,
    ),
    "mechanism_quick": Profile(
        "mechanism_quick",
        tuple(r.key for r in MECH_ROWS),
        seeds=1,
        steps=40,
        eval_problems=100,
        eval_k=4,
        segments=1,
        prompts_per_step=8,  # half the full profile's: 1 seed of all seven rows in <= 15 min on one core
        row_set="mechanism",
        regime=None,
        policy=READER_BASE,
        distill_problems=1000,
        problems=MECH_PROBLEMS,
    ),
}


def row_table(profile: Profile) -> dict[str, Row]:
    """The rows a profile may name, by key."""
    return MECH_ROW_BY_KEY if profile.row_set == "mechanism" else ROW_BY_KEY


def rows_for(profile: str) -> list[Row]:
    table = row_table(PROFILES[profile])
    return [table[k] for k in PROFILES[profile].rows]


def regime_settings(name: str) -> dict[str, Any]:
    """The learner settings (``REGIME_KEYS``) of the packaged config ``name`` that :class:`TrainConfig` knows."""
    regime = load_config(CONFIGS / f"{name}.toml")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: getattr(regime, k) for k in REGIME_KEYS if k in known}


def updates_per_step(config: TrainConfig) -> int:
    """Optimizer steps one RL step takes (mini-batches x epochs when the learner has those fields)."""
    mb = next((getattr(config, k) for k in ("mini_batches", "minibatches", "num_minibatches") if hasattr(config, k)), 1)
    ep = next((getattr(config, k) for k in ("epochs", "ppo_epochs", "update_epochs") if hasattr(config, k)), 1)
    return max(1, int(mb)) * max(1, int(ep))


def row_config(
    row: Row,
    profile: Profile,
    seed: int,
    policy: str,
    problems: str,
    eval_problems: str,
    segment_steps: int | None = None,
) -> TrainConfig:
    """The packaged config of ``row`` with the benchmark's shared settings (module doc)."""
    own = load_config(dict(profile.row_configs).get(row.key, row.config))
    steps = profile.steps
    changes: dict[str, Any] = regime_settings(profile.regime) if profile.regime else {}
    changes.update(
        policy=policy,
        seed=seed,
        problems=problems,
        problems_seed=0,
        eval_problems=eval_problems,
        eval_problems_seed=HELDOUT_SEED,
        eval_num_problems=profile.eval_problems,
        eval_k=profile.eval_k,
        eval_pass_ks=tuple(k for k in (1, 8, 32) if k <= profile.eval_k),
        steps=steps,
        progress_bar=False,
        tensorboard=False,
        checkpoint_every=max(1, steps),
        keep_checkpoints=1,
    )
    for name in ("prompts_per_step", "group_size", "max_turn_tokens"):
        if getattr(profile, name) is not None:
            changes[name] = getattr(profile, name)
    full = own.replace(**changes)
    if full.expert == "policy":  # replicas reply as long as a turn may be (the packaged 96 cuts level-3 solutions)
        cap = max(int(full.expert_kwargs.get("max_new_tokens", 0)), full.max_turn_tokens)
        full = full.replace(expert_kwargs={**full.expert_kwargs, "max_new_tokens": cap})
    # The schedules resolved over the whole run, written out: a segment (``segment_steps``, a curve point)
    # runs to an earlier end on the same schedules, and the record and report name the counts that ran.
    cfg = full.replace(
        steps=segment_steps or steps, acceptance_schedule=str(full.acceptance()), turn_schedule=str(full.turns())
    )
    if cfg.method == "distill_sft":  # the same number of optimizer steps as an RL row
        cfg = cfg.replace(distill_steps=steps * updates_per_step(cfg), distill_num_problems=profile.distill_problems)
    return cfg


def describe_schedule(spec: str) -> str:
    """A schedule string for the report, e.g. ``linear:1.0:0.0:96`` -> ``1.0 -> 0.0 over 96 steps``."""
    m = re.fullmatch(r"(linear|cosine):([^:]+):([^:]+):(\d+)", spec)
    return f"{m.group(2)} -> {m.group(3)} over {m.group(4)} steps ({m.group(1)})" if m else spec
