"""The paper's claims that the learning benchmark checks: each a difference ``a - b`` between two
rows (keys of ``learning_rows.ROWS``) with an expected sign and the paper's own value. The statistics
that judge them live in :mod:`agents.stats`."""

from __future__ import annotations

from agents.stats import Claim

CLAIMS: tuple[Claim, ...] = (
    Claim("1", "EAPO beats self-exploratory RL", "eapo", "self_explore", +1, 64.07 - 59.16),
    Claim("1", "EAPO beats the base model", "eapo", "base", +1, 64.07 - 42.53),
    Claim("1", "Self-exploratory RL beats the base model", "self_explore", "base", +1, 59.16 - 42.53),
    Claim("1", "EAPO beats the expert-assisted workflow", "eapo", "expert_workflow", +1, 64.07 - 49.39),
    Claim("1", "The expert-assisted workflow beats the base model", "expert_workflow", "base", +1, 49.39 - 42.53),
    Claim("1", "Self-collaboration does not beat the base model", "self_collab", "base", 0, 41.83 - 42.53),
    Claim("1", "Full distillation SFT falls below the base model", "distill_full", "base", -1, 35.31 - 42.53),
    Claim("1", "LoRA distillation stays near the base model", "distill_lora", "base", 0, 43.24 - 42.53),
    Claim("1", "EAPO beats LoRA distillation", "eapo", "distill_lora", +1, 64.07 - 43.24),
    Claim(
        "1",
        "EAPO has a lower per-problem variance than self-exploratory RL",
        "eapo",
        "self_explore",
        -1,
        0.0643 - 0.0727,
        "variances",
    ),
    Claim("9", "The default schedule beats a budget-matched constant p", "eapo", "sched_const", +1, 64.07 - 59.65),
    Claim("9", "The default schedule beats a slower decay", "eapo", "sched_slow", +1, 64.07 - 62.82),
    Claim("9", "The default schedule beats a faster decay", "eapo", "sched_fast", +1, 64.07 - 59.76),
    Claim(
        "3", "A stronger (heterogeneous) expert beats homogeneous replicas", "eapo", "expert_self", +1, 64.07 - 58.85
    ),
    Claim("3", "Homogeneous replicas give about self-exploratory RL", "expert_self", "self_explore", 0, 58.85 - 59.16),
    Claim(
        "3", "Informative experts beat noisy (error-sampling) experts in EAPO", "eapo", "expert_noisy", +1, float("nan")
    ),
    Claim("3", "Informative experts beat meaningless guidance in EAPO", "eapo", "expert_constant", +1, float("nan")),
    Claim(
        "2",
        "Parallel consults (K=3) beat sequential (K=1) at the same turn budget",
        "expert_noisy",
        "noisy_k1",
        +1,
        64.07 - 61.79,
    ),
    Claim("E", "Error-sampling experts hurt the workflow", "workflow_noisy", "expert_workflow", -1, 42.82 - 49.39),
    Claim("E", "Meaningless guidance hurts the workflow", "workflow_constant", "expert_workflow", -1, 42.92 - 49.39),
)
