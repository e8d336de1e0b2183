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
