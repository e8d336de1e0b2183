"""GRPO/DAPO loss pieces against hand-computed values and invariants."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.losses import (
    dynamic_sampling_mask,
    group_advantages,
    kl_k3,
    overlong_mask,
    policy_loss,
    token_logprobs,
)


def test_group_advantages_hand_values():
    r = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 3.0])
    g = torch.tensor([7, 7, 7, 7, 2, 2, 9])
    adv = group_advantages(r, g, eps=0.0)
    std = torch.tensor([1.0, 0.0, 1.0, 0.0]).std()  # unbiased, as torch.std
    assert torch.allclose(adv[:4], (r[:4] - 0.5) / std)
    assert torch.equal(adv[4:], torch.zeros(3))  # constant group and singleton → 0
    no_std = group_advantages(r, g, normalize_std=False)
    assert torch.allclose(no_std[:4], r[:4] - 0.5)


def test_constant_group_advantage_is_zero():
    for value in (0.0, 1.0, 0.3):
        adv = group_advantages(torch.full((8,), value), torch.zeros(8, dtype=torch.long))
        assert torch.equal(adv, torch.zeros(8))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.floats(-5, 5)), min_size=1, max_size=24))
def test_group_advantages_properties(pairs):
    g = torch.tensor([p[0] for p in pairs])
    r = torch.tensor([p[1] for p in pairs], dtype=torch.float32)
    adv = group_advantages(r, g)
    assert torch.isfinite(adv).all()
    for gid in g.unique():
        sel = g == gid
        assert abs(adv[sel].sum().item()) < 1e-3 * max(1, int(sel.sum()))  # zero mean per group
    perm = torch.randperm(len(pairs))  # order / relabelling invariance
    assert torch.allclose(group_advantages(r[perm], g[perm] + 10), adv[perm], atol=1e-5)


def test_policy_loss_hand_computed_with_both_clips():
    # ratios: 1.5 (A>0: clipped high at 1.28), 0.5 (A<0: clipped low at 0.8), 1.1 (A>0: unclipped),
    # 0.9 (A<0: unclipped), last token masked out (huge ratio must not matter)
    ratios = torch.tensor([[1.5, 0.5, 9.0], [1.1, 0.9, 9.0]])
    old = torch.zeros(2, 3)
    new = ratios.log().requires_grad_(True)
    adv = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    # per-token: max(-A r, -A clip(r))
    # row0 (A=2): t0 max(-3, -2.56) = -2.56 ; t1 max(-1, -1.6) = -1
    # row1 (A=-1): t0 max(1.1, 1.1) = 1.1 ; t1 max(0.9, 0.9) = 0.9
    expected = (-2.56 - 1.0 + 1.1 + 0.9) / 4
    loss, m = policy_loss(new, old, adv, mask, clip_low=0.2, clip_high=0.28)
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    assert math.isclose(m["clipfrac"], 0.25, rel_tol=1e-6)  # only t0 of row 0 takes the clipped term
    assert math.isclose(m["clipfrac_high"], 0.25, rel_tol=1e-6) and m["clipfrac_low"] == 0.0
    loss.backward()
    assert new.grad[0, 0] == 0  # clipped: no gradient
    assert new.grad[0, 2] == 0 and new.grad[1, 2] == 0  # masked
    assert math.isclose(new.grad[0, 1].item(), -2 * 0.5 / 4, rel_tol=1e-6)  # -A r / N

    # ratio below 1 - clip_low with A < 0 takes the clipped (low) term
    new2 = torch.tensor([[math.log(0.5)]])
    loss2, m2 = policy_loss(new2, torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1))
    assert math.isclose(loss2.item(), 0.8, rel_tol=1e-6) and m2["clipfrac_low"] == 1.0


def test_policy_loss_token_level_mean_over_batch():
    """DAPO: every policy token weighs the same, whatever the length of its sequence."""
    new = torch.zeros(2, 4)
    mask = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 1, 1]])
    loss, _ = policy_loss(new, torch.zeros(2, 4), torch.tensor([1.0, -1.0]), mask)
    assert math.isclose(loss.item(), (-1 + 4 * 1) / 5, rel_tol=1e-6)
    loss_n, _ = policy_loss(new, torch.zeros(2, 4), torch.tensor([1.0, -1.0]), mask, num_tokens=10)
    assert math.isclose(loss_n.item(), 3 / 10, rel_tol=1e-6)


def test_policy_loss_zero_gradient_on_masked_logits():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11, requires_grad=True)
    ids = torch.randint(0, 11, (2, 5))
    lp = torch.log_softmax(logits, -1).gather(-1, ids[..., None]).squeeze(-1)
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.float32)
    loss, _ = policy_loss(lp, lp.detach() - 0.05, torch.tensor([1.0, -0.5]), mask)
    loss.backward()
    g = logits.grad.abs().sum(-1)
    assert (g[mask == 0] == 0).all() and (g[mask == 1] > 0).all()


def test_kl_k3():
    lp = torch.log(torch.tensor([[0.5, 0.2]]))
    assert kl_k3(lp, lp, torch.ones(1, 2)).item() == 0.0
    ref = torch.log(torch.tensor([[0.25, 0.2]]))
    d = math.log(0.5)  # ref - logp on the first token
    expected = (math.exp(d) - d - 1) / 1  # second token masked
    assert math.isclose(kl_k3(lp, ref, torch.tensor([[1.0, 0.0]])).item(), expected, rel_tol=1e-6)
    assert kl_k3(lp, ref + 0.3, torch.ones(1, 2)).item() > 0


def test_dynamic_sampling_drops_uniform_groups():
    correct = torch.tensor([1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 5, 5])
    keep = dynamic_sampling_mask(correct.bool(), groups)
    assert keep.tolist() == [False] * 3 + [False] * 3 + [True] * 3 + [False] * 2


def test_overlong_mask():
    assert overlong_mask(torch.tensor([True, False, True])).tolist() == [False, True, False]


def test_token_logprobs_alignment():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = Qwen2ForCausalLM(cfg).eval()
    ids = torch.randint(0, 50, (2, 6))
    att = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    with torch.no_grad():
        lp = token_logprobs(model, ids, att, temperature=0.5)
        for b, n in ((0, 6), (1, 4)):
            for t in range(1, n):
                logits = model(ids[b : b + 1, :t]).logits[0, -1]
                want = torch.log_softmax(logits / 0.5, -1)[ids[b, t]]
                assert abs(lp[b, t].item() - want.item()) < 1e-5
    assert lp[:, 0].eq(0).all() and lp[1, 4:].eq(0).all()
