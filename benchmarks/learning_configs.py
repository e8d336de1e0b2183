"""Rewrites the ablation configs from the configs they ablate (run from the repository root after editing
``agents/configs/eapo.toml``, ``distill_sft.toml`` or ``expert_workflow.toml``)::

    python benchmarks/learning_configs.py

Each ablation is its parent's body with only the ablated keys replaced (``tests/test_baselines.py``
checks that). The Table 9 schedules are derived from eapo.toml's own p(t): the constant is its mean
over the run (budget-matched), slow anneals over twice as long (capped at the run), fast over half.
"""

import re
from pathlib import Path

from agents.config import load_config
from eapo_env.schedules import parse_schedule

cfg = Path("agents/configs")


def setkey(text, key, value):
    pat = re.compile(rf"^{key}\s*=.*$", re.M)
    line = f"{key} = {value}"
    if pat.search(text):
        return pat.sub(lambda m: line, text, count=1)
    # insert before a [table] if any, else append
    if "\n[" in text:
        i = text.index("\n[")
        return text[:i] + "\n" + line + text[i:]
    return text + line + "\n"


def add_table(text, table):
    return text.rstrip("\n") + "\n\n" + table.strip("\n") + "\n"


def body_of(name):
    """``agents/configs/<name>.toml`` without its leading comment lines."""
    ls = (cfg / f"{name}.toml").read_text().splitlines()
    while ls and ls[0].startswith("#"):
        ls.pop(0)
    return "\n".join(ls) + "\n"


def write_derived(name, body, head, keys, table):
    """Write ``name``: ``body`` with ``keys`` set and ``table`` appended, under the comment ``head``."""
    text = body
    for k, v in keys.items():
        text = setkey(text, k, v)
    if table:
        text = add_table(text, table)
    (cfg / name).write_text(f"# {head}\n" + text)
    print("wrote", name)


e = load_config("eapo")
sched = parse_schedule(e.acceptance_schedule)
budget = sum(sched(t) for t in range(e.steps)) / e.steps
L = int(e.acceptance_schedule.split(":")[3])
slow, fast = min(e.steps, 2 * L), max(1, L // 2)
ABL = {
    "eapo_sched_const.toml": (
        f"Table 9 ablation: a constant p(t) matched to the default schedule's total consultation budget\n"
        f"# (the mean of {e.acceptance_schedule} over {e.steps} steps is {budget:.3g}). Only acceptance_schedule differs from eapo.toml.",
        {"acceptance_schedule": f'"const:{budget:.3g}"'},
        None,
    ),
    "eapo_sched_slow.toml": (
        f"Table 9 ablation: slower decay, p(t) 1 -> 0 over {slow} of {e.steps} steps (default: {L}).\n"
        "# Only acceptance_schedule differs from eapo.toml.",
        {"acceptance_schedule": f'"linear:1.0:0.0:{slow}"'},
        None,
    ),
    "eapo_sched_fast.toml": (
        f"Table 9 ablation: faster decay, p(t) 1 -> 0 over {fast} of {e.steps} steps (default: {L}).\n"
        "# Only acceptance_schedule differs from eapo.toml.",
        {"acceptance_schedule": f'"linear:1.0:0.0:{fast}"'},
        None,
    ),
    "eapo_expert_self.toml": (
        "Table 3 ablation: a homogeneous expert pool, the policy's own replicas (frozen copies of the\n"
        "# starting policy; `policy_dir` empty = this run's policy). Only the expert differs from eapo.toml.",
        {"expert": '"policy"'},
        "[expert_kwargs]\nmax_new_tokens = 96\ntemperature = 1.0",
    ),
    "eapo_expert_noisy.toml": (
        "Table 3 / App. E ablation: the reference expert with half of its answers made wrong (error\n"
        "# sampling). Only the expert differs from eapo.toml. With K = 3 a majority of replies is right more often\n"
        "# than one reply: the parallel half of Table 2 (eapo_expert_noisy_k1.toml is the sequential half).",
        {"expert": '"noisy"'},
        '[expert_kwargs]\nbase = "reference"\nerror_rate = 0.5',
    ),
    "eapo_expert_noisy_k1.toml": (
        "Table 2 ablation: sequential consults (K = 1 query per turn) at the same turn budget as\n"
        "# eapo_expert_noisy.toml (K = 3 in parallel). Only max_experts differs from it.",
        {"expert": '"noisy"', "max_experts": "1"},
        '[expert_kwargs]\nbase = "reference"\nerror_rate = 0.5',
    ),
    "eapo_expert_constant.toml": (
        "Table 3 / App. E ablation: meaningless guidance, every reply is the same content-free text.\n"
        "# Only the expert differs from eapo.toml.",
        {"expert": '"constant"'},
        None,
    ),
}
for name, (head, keys, table) in ABL.items():
    write_derived(name, body_of("eapo"), head, keys, table)


# ---- configs derived from distill_sft.toml / expert_workflow.toml
DERIVED = {
    "distill_lora.toml": (
        "distill_sft",
        'Distillation SFT with LoRA adapters (Table 1, "Distillation (LoRA)"): as distill_sft.toml (rejection-\n'
        "# sampled expert trajectories), but only rank-8 adapters on the attention/MLP projections are trained.",
        {"lora_r": "8", "lora_alpha": "16"},
        None,
    ),
    "self_collab.toml": (
        "expert_workflow",
        "Self-collaboration workflow (offline, evaluation-time; Table 1): each held-out question is shown with\n"
        "# the replies of K = max_experts (3) replicas of the policy itself (the `policy` expert sampling from the\n"
        "# policy directory; no `policy_dir` = the policy being evaluated); the policy then answers alone.",
        {"expert": '"policy"'},
        "[expert_kwargs]\nmax_new_tokens = 96\ntemperature = 1.0                # replicas sample as the policy does (paper: 1.0)",
    ),
    "workflow_noisy.toml": (
        "expert_workflow",
        'Appendix E, "error sampling": the expert-assisted workflow (evaluation-time, no training) with\n'
        "# experts whose answers are wrong half of the time (K = 3 independent replies per question).",
        {"expert": '"noisy"'},
        '[expert_kwargs]\nbase = "reference"\nerror_rate = 0.5',
    ),
    "workflow_constant.toml": (
        "expert_workflow",
        'Appendix E, "meaningless guidance": the expert-assisted workflow (evaluation-time, no training)\n'
        "# where every expert reply is the same content-free text.",
        {"expert": '"constant"'},
        None,
    ),
}
for name, (parent, head, keys, table) in DERIVED.items():
    write_derived(name, body_of(parent), head, keys, table)


# ---- the mechanism rows (issue 20), derived from eapo_hint.toml: only the expert or p(t) differs
MECH = {
    "eapo_answer.toml": (
        "Mechanism row `eapo_answer`: as eapo_hint.toml, but the reply is the reference worked solution\n"
        "# with its boxed final answer (today's default expert). Only the expert differs from eapo_hint.toml.",
        {"expert": '"reference"'},
    ),
    "eapo_placebo.toml": (
        "Mechanism row `eapo_placebo`: as eapo_hint.toml, but every reply is the same content-free text\n"
        "# (the constant expert) on the same schedule. Only the expert differs from eapo_hint.toml.",
        {"expert": '"constant"'},
    ),
    "mech_self_explore.toml": (
        "Mechanism row `self_explore`: self-exploratory RL as eapo_hint.toml with p(t) = 0: the same training\n"
        "# prompt, turn caps, consult penalty and learner, but no expert ever answers (every consult is\n"
        '# "unavailable", so a consult costs a turn and the penalty). Only acceptance_schedule differs from\n'
        "# eapo_hint.toml; unlike self_explore.toml it does not train on the evaluation prompt (no prompt confound).",
        {"acceptance_schedule": '"const:0.0"'},
    ),
}
for name, (head, keys) in MECH.items():
    write_derived(name, body_of("eapo_hint"), head, keys, None)
