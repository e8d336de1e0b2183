"""The engine/learner log-prob mismatch correction (DESIGN §9): the pure weights function against
hand values, and its effect on the update (``agents.update.CorrectedBatch`` in ``_backward_rows``)."""

from __future__ import annotations

import math

import pytest
import torch
from agents_fixtures import build_tiny_model, build_tiny_tokenizer

from agents.config import TrainConfig
from agents.losses import MISMATCH_CORRECTIONS, mismatch_weights
from agents.rollout import RolloutBatch, Trajectory
from agents.update import CorrectedBatch, _backward_rows, correct_mismatch

# two sequences of 3 tokens; the second token of row 0 and the last of row 1 are not policy tokens
MASK = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
ENGINE = torch.tensor([[-1.0, 0.0, -2.0], [-0.5, -0.5, -9.0]])
LOG_R = torch.tensor([[math.log(3.0), 5.0, math.log(0.8)], [math.log(1.1), math.log(1.2), 7.0]])
LEARNER = ENGINE + LOG_R  # r = 3, (off), 0.8 | 1.1, 1.2, (off)


def test_none_is_the_mask_and_the_stats_are_over_policy_tokens() -> None:
    w, stats = mismatch_weights(LEARNER, ENGINE, MASK)
    assert torch.equal(w, MASK)
    assert stats["mismatch_abs_mean"] == pytest.approx(float(LOG_R[MASK > 0].abs().mean()))
    assert stats["mismatch_ratio_max"] == pytest.approx(3.0)  # the masked-out ratios (e^5, e^7) never count
    assert stats["mismatch_masked_frac"] == 0.0


def test_token_tis_caps_each_ratio() -> None:
    w, _ = mismatch_weights(LEARNER, ENGINE, MASK, "token_tis", cap=2.0)
    expected = torch.tensor([[2.0, 0.0, 0.8], [1.1, 1.2, 0.0]])
    assert torch.allclose(w, expected)


def test_seq_tis_caps_the_product_per_sequence() -> None:
    w, _ = mismatch_weights(LEARNER, ENGINE, MASK, "seq_tis", cap=2.0)
    row0, row1 = min(3.0 * 0.8, 2.0), 1.1 * 1.2
    assert torch.allclose(w, torch.tensor([[row0, 0.0, row0], [row1, row1, 0.0]]))


def test_masks_drop_tokens_or_sequences_outside_the_bound() -> None:
    w, stats = mismatch_weights(LEARNER, ENGINE, MASK, "token_mask", cap=2.0)
    assert torch.equal(w, torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))  # r = 3 > 2 dropped
    assert stats["mismatch_masked_frac"] == pytest.approx(0.25)
    w, stats = mismatch_weights(LEARNER, ENGINE, MASK, "seq_mask", cap=1.5)
    # row 0: geometric mean sqrt(3 * 0.8) = 1.55 > 1.5 -> dropped; row 1: sqrt(1.32) = 1.15 kept
    assert torch.equal(w, torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    assert stats["mismatch_masked_frac"] == pytest.approx(0.5)


def test_bad_mode_or_cap_is_an_error() -> None:
    with pytest.raises(ValueError, match="one of"):
        mismatch_weights(LEARNER, ENGINE, MASK, "clip")
    with pytest.raises(ValueError, match="> 1"):
        mismatch_weights(LEARNER, ENGINE, MASK, "token_tis", cap=1.0)
    with pytest.raises(ValueError, match="mismatch_correction"):
        TrainConfig(mismatch_correction="tis")
    assert "none" in MISMATCH_CORRECTIONS and TrainConfig().mismatch_correction == "none"


def _tiny_batch() -> tuple[torch.nn.Module, RolloutBatch]:
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok)
    trajs = []
    for k in range(3):
        t = Trajectory(prompt_ids=[5 + k, 9, 11])
        t.add_policy([20 + k, 21, 22], [-1.0, -2.0, -0.5])
        t.add_observation([30, 31])
        t.add_policy([23, 24 + k], [-1.5, -0.7])
        trajs.append(t)
    return model, RolloutBatch.from_trajectories(trajs)


def _grads(model: torch.nn.Module, batch: RolloutBatch, mask: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    _backward_rows(model, batch, [0, 1, 2], torch.tensor([1.0, -0.5, 0.3]), mask, mask.sum(), config, None)
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_the_weights_scale_the_surrogate_and_keep_the_denominator() -> None:
    model, batch = _tiny_batch()
    config = TrainConfig()
    plain = _grads(model, batch, batch.loss_mask, config)
    ones = CorrectedBatch(**batch.__dict__, token_weights=torch.ones_like(batch.loss_mask))
    assert torch.allclose(_grads(model, ones, batch.loss_mask, config), plain)
    half = CorrectedBatch(**batch.__dict__, token_weights=torch.full_like(batch.loss_mask, 0.5))
    assert torch.allclose(_grads(model, half, batch.loss_mask, config), 0.5 * plain, atol=1e-7)


def test_correct_mismatch_recomputes_the_learner_and_logs_the_gap() -> None:
    model, batch = _tiny_batch()
    corrected, stats = correct_mismatch(model, batch, TrainConfig(mismatch_correction="token_mask", mismatch_cap=1e9))
    assert torch.equal(corrected.token_weights, batch.loss_mask)  # a huge cap masks nothing
    assert stats["mismatch_abs_mean"] > 0.1  # made-up sampling log-probs: far from the random model's
    engine_like = RolloutBatch(**{**batch.__dict__, "old_logprobs": _learner_logprobs(model, batch)})
    _, same = correct_mismatch(model, engine_like, TrainConfig())
    assert same["mismatch_abs_mean"] < 1e-6 and same["mismatch_ratio_max"] == pytest.approx(1.0, abs=1e-5)


def _learner_logprobs(model: torch.nn.Module, batch: RolloutBatch) -> torch.Tensor:
    from agents.losses import token_logprobs

    with torch.no_grad():
        return token_logprobs(model, batch.input_ids, batch.attention_mask) * batch.loss_mask
