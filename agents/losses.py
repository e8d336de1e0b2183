"""GRPO/DAPO objective pieces as pure tensor functions (verl ``core_algos`` style; DESIGN §8).

Shapes: B sequences (trajectories), T tokens (right-padded, aligned with ``RolloutBatch``).
Every mask is 1 on policy tokens and 0 on prompt, env/expert observation and padding tokens, so
those tokens contribute neither to the loss nor to its gradient.

The trainer imports these functions by name (``agents.update``); there is no registry to resolve
them from a string, since every config uses the same objective.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, denom: float | torch.Tensor | None = None) -> torch.Tensor:
    """sum(x * mask) / denom (default: mask.sum(), at least 1). Scalar."""
    total = (x * mask).sum()
    if denom is None:
        denom = mask.sum().clamp(min=1.0)
    return total / denom


# ---------------------------------------------------------------------------------- advantages


def group_advantages(
    rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6, normalize_std: bool = True
) -> torch.Tensor:
    """Group-relative advantages: (r - mean_group) / (std_group + eps).

    Args:
        rewards: [B] float.
        group_ids: [B] long (any values; sequences of the same prompt share one).
        eps: added to the std.
        normalize_std: False gives Dr.GRPO-style ``r - mean`` only.

    Returns:
        [B] float. The std is unbiased (as ``torch.std``); a group of one, or any group whose
        rewards are all equal, gets advantage exactly 0 (it carries no learning signal).
    """
    rewards = rewards.float()
    _, inv = torch.unique(group_ids, return_inverse=True)  # [B] dense group index
    G = int(inv.max()) + 1
    count = torch.zeros(G, device=rewards.device).index_add_(0, inv, torch.ones_like(rewards))
    mean = torch.zeros(G, device=rewards.device).index_add_(0, inv, rewards) / count
    centered = rewards - mean[inv]
    adv = centered
    if normalize_std:
        sq = torch.zeros(G, device=rewards.device).index_add_(0, inv, centered * centered)
        std = (sq / (count - 1).clamp(min=1.0)).sqrt()
        adv = centered / (std[inv] + eps)
    # constant groups by value, not by a float std that rounding leaves at ~1e-8 (which would
    # turn (r - mean) ~ 1e-8 into an O(1) advantage)
    lo = torch.full((G,), float("inf"), device=rewards.device).scatter_reduce(0, inv, rewards, "amin")
    hi = torch.full((G,), float("-inf"), device=rewards.device).scatter_reduce(0, inv, rewards, "amax")
    informative = (hi > lo)[inv]
    return torch.where(informative, adv, torch.zeros_like(adv))


# ------------------------------------------------------------------------------ policy losses


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    clip_low: float = 0.20,
    clip_high: float = 0.28,
    num_tokens: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate with decoupled clip range (DAPO clip-higher), token-level mean.

    Args:
        logprobs: [B, T] current policy log-probs (requires grad).
        old_logprobs: [B, T] sampling log-probs from the rollout.
        advantages: [B] per-sequence advantage, broadcast over its tokens.
        loss_mask: [B, T] 1 on policy tokens.
        clip_low / clip_high: ratio clipped to [1 - clip_low, 1 + clip_high].
        num_tokens: the denominator; default this batch's policy-token count. Pass the count of the
            whole (gradient-accumulated) batch so every policy token weighs the same (DAPO).

    Returns:
        (loss scalar, metrics): ``clipfrac`` (share of tokens where the clipped term is taken),
        ``clipfrac_low`` / ``clipfrac_high``, ``approx_kl`` (mean old - new), ``ratio_mean``.
    """
    mask = loss_mask.to(logprobs.dtype)
    log_ratio = (logprobs - old_logprobs).clamp(-20.0, 20.0)  # exp overflow guard
    ratio = log_ratio.exp()
    adv = advantages.to(logprobs.dtype)[:, None]  # [B, 1]
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)  # pessimistic bound
    loss = masked_mean(per_token, mask, num_tokens)
    with torch.no_grad():
        took_clip = (clipped > unclipped).to(mask.dtype)
        metrics = {
            "clipfrac": masked_mean(took_clip, mask).item(),
            "clipfrac_low": masked_mean(took_clip * (ratio < 1.0 - clip_low), mask).item(),
            "clipfrac_high": masked_mean(took_clip * (ratio > 1.0 + clip_high), mask).item(),
            "approx_kl": masked_mean(-log_ratio, mask).item(),
            "ratio_mean": masked_mean(ratio, mask).item(),
        }
    return loss, metrics


def kl_k3(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    num_tokens: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref), token-level mean. [B, T] inputs → scalar.

    k3 = exp(ref - logp) - (ref - logp) - 1 >= 0, unbiased, low variance. The log-ratio is clamped
    to [-10, 10] (as verl) so one outlier token cannot blow the loss up.
    """
    d = (ref_logprobs - logprobs).clamp(-10.0, 10.0)
    return masked_mean(d.exp() - d - 1.0, mask.to(logprobs.dtype), num_tokens)


# ------------------------------------------------------------------- engine/learner mismatch

#: Values of ``TrainConfig.mismatch_correction`` (:func:`mismatch_weights`).
MISMATCH_CORRECTIONS = ("none", "token_tis", "seq_tis", "token_mask", "seq_mask")


def mismatch_weights(
    learner_logprobs: torch.Tensor,
    engine_logprobs: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "none",
    cap: float = 2.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token loss weights that correct for the rollout engine sampling from a slightly different
    distribution than the learner computes (another kernel, dtype or batch shape: vLLM vs HF).

    The PPO ratio keeps using the engine's sampling log-probs; these weights multiply each policy
    token's surrogate term. With ``r = exp(learner - engine)`` per token (the learner's log-prob under
    the weights that produced the rollout, recomputed before the update):

    * ``none``: all ones (our own engine agrees with the learner to ~1e-5).
    * ``token_tis``: truncated importance sampling per token, ``min(r, cap)`` (verl / OpenRLHF style).
    * ``seq_tis``: per sequence, ``min(prod_t r_t, cap)`` on every token of it.
    * ``token_mask``: 0 on tokens with ``r`` outside ``[1/cap, cap]``, else 1.
    * ``seq_mask``: 0 on every token of a sequence whose geometric-mean ratio
      ``exp(mean_t log r_t)`` is outside ``[1/cap, cap]`` (TRL's sequence mask), else 1.

    Args:
        learner_logprobs / engine_logprobs: [B, T] float (no gradient needed; the weights are detached).
        mask: [B, T] 1 on policy tokens.
        mode: one of :data:`MISMATCH_CORRECTIONS`. cap: the bound (> 1).

    Returns:
        ``(weights [B, T], stats)``: weights are 0 off ``mask``; ``stats`` are over the policy tokens:
        ``mismatch_abs_mean`` (mean ``|learner - engine|``), ``mismatch_ratio_max`` (largest ``r``),
        ``mismatch_masked_frac`` (share of policy tokens whose weight is 0 by the correction).
    """
    if mode not in MISMATCH_CORRECTIONS:
        raise ValueError(f"mismatch correction {mode!r}: one of {', '.join(MISMATCH_CORRECTIONS)}")
    if cap <= 1.0:
        raise ValueError(f"mismatch cap {cap}: must be > 1")
    m = mask.to(learner_logprobs.dtype)
    log_r = ((learner_logprobs - engine_logprobs) * m).detach().clamp(-20.0, 20.0)
    seq_log_r = log_r.sum(dim=1, keepdim=True)  # [B, 1]
    ones = torch.ones_like(log_r)
    bound = float(torch.log(torch.tensor(cap)))
    if mode == "none":
        weights = ones
    elif mode == "token_tis":
        weights = log_r.exp().clamp(max=cap)
    elif mode == "seq_tis":
        weights = seq_log_r.exp().clamp(max=cap) * ones
    elif mode == "token_mask":
        weights = (log_r.abs() <= bound).to(m.dtype)
    else:  # seq_mask
        mean_log_r = seq_log_r / m.sum(dim=1, keepdim=True).clamp(min=1.0)
        weights = (mean_log_r.abs() <= bound).to(m.dtype) * ones
    weights = weights * m
    n = m.sum().clamp(min=1.0)
    has = bool(m.sum() > 0)
    stats = {
        "mismatch_abs_mean": float(log_r.abs().sum() / n),
        "mismatch_ratio_max": float(log_r.masked_fill(m == 0, -20.0).max().exp()) if has else 1.0,
        "mismatch_masked_frac": float(((weights == 0) & (m > 0)).sum() / n),
    }
    return weights, stats


# --------------------------------------------------------------------------------- filtering


def dynamic_sampling_mask(correct: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """[B] bool keep: drop every group whose raw correctness is all 0 or all 1 (zero advantage,
    zero gradient; DAPO dynamic sampling). ``correct``: [B] bool/0-1, ``group_ids``: [B] long."""
    c = correct.float()
    _, inv = torch.unique(group_ids, return_inverse=True)
    G = int(inv.max()) + 1
    lo = torch.full((G,), float("inf"), device=c.device).scatter_reduce(0, inv, c, "amin")
    hi = torch.full((G,), float("-inf"), device=c.device).scatter_reduce(0, inv, c, "amax")
    return (hi > lo)[inv]


def overlong_mask(truncated: torch.Tensor) -> torch.Tensor:
    """[B] bool keep: drop sequences cut by the length budget (DAPO overlong filtering)."""
    return ~truncated.bool()


# ------------------------------------------------------------------------------------- scoring


def token_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-prob of every token given its prefix, under ``log_softmax(logits / temperature)``.

    Args:
        input_ids: [B, T] long, right-padded. attention_mask: [B, T] (1 = real token).

    Returns:
        [B, T] float32, aligned so position t is the log-prob of ``input_ids[:, t]``; position 0
        (no prefix) and padding are 0. Differentiable (call under ``no_grad`` for old/ref).
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    target = input_ids[:, 1:]
    # gather - logsumexp: never materialises a second [B, T, V] log-softmax tensor
    lp = logits.gather(-1, target[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    lp = torch.cat([torch.zeros_like(lp[:, :1]), lp], dim=1)
    if attention_mask is not None:
        lp = lp * attention_mask.to(lp.dtype)
    return lp
