"""The learner (DESIGN §8): updates change parameters, masked tokens carry no gradient, dynamic
sampling drops uniform groups, and the progress clock reaches the envs (p(t) follows its schedule)."""

from __future__ import annotations

import json

import pytest
import torch

from agents.config import TrainConfig
from agents.losses import token_logprobs
from agents.rollout.types import RolloutBatch, Trajectory
from agents.trainer import train
from agents.update import ppo_update, rows_of_steps, select_and_score
from eapo_env.schedules import parse_schedule

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    """A tiny policy built locally (random init, no SFT: seconds)."""
    from agents.policy import build_policy

    return build_policy(tmp_path_factory.mktemp("policy"), "tiny", sft_steps=0, n_train=200, n_heldout=0, verbose=False)


@pytest.fixture(scope="module")
def model_and_tokenizer(policy_dir):
    from agents.policy import load_policy

    return load_policy(policy_dir)


def _traj(prompt, segments, reward, group, overlong=False):
    """segments: list of (ids, is_policy)."""
    t = Trajectory(prompt_ids=list(prompt), reward=reward, group_id=group, overlong=overlong, truncated=overlong)
    for ids, pol in segments:
        if pol:
            t.add_policy(ids, [-1.0] * len(ids))
        else:
            t.add_observation(ids)
    return t


def _batch(model):
    g = torch.Generator().manual_seed(0)
    V = 280  # below the tiny vocabulary (~300 tokens)

    def ids(n):
        return torch.randint(5, V, (n,), generator=g).tolist()

    trajs = [
        _traj(ids(6), [(ids(4), True), (ids(5), False), (ids(3), True)], 1.0, 0),
        _traj(ids(7), [(ids(5), True)], 0.0, 0),
        _traj(ids(5), [(ids(3), True), (ids(4), False), (ids(4), True)], 1.0, 1),
        _traj(ids(6), [(ids(6), True)], 0.0, 1),
    ]
    batch = RolloutBatch.from_trajectories(trajs, pad_id=0)
    with torch.no_grad():  # old log-probs = current ones (exactly on-policy)
        lp = token_logprobs(model, batch.input_ids, batch.attention_mask)
    batch.old_logprobs = lp * batch.loss_mask
    return batch


def _grads(model, batch, adv, mask, config):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    opt.zero_grad(set_to_none=True)
    ppo_update(model, batch, adv, mask, config.replace(mini_batches=1, ppo_epochs=1), opt)
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_update_changes_parameters(policy_dir):
    from agents.policy import load_policy

    model, _ = load_policy(policy_dir)
    batch = _batch(model)
    cfg = TrainConfig(lr=1e-3, max_grad_norm=1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    stats = ppo_update(
        model,
        batch,
        torch.tensor([1.0, -1.0, 1.0, -1.0]),
        batch.loss_mask,
        cfg.replace(mini_batches=1, ppo_epochs=1),
        opt,
    )
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > 0.5 * len(before)
    assert stats["grad_norm"] > 0 and stats["loss"] != 0.0 and stats["optimizer_steps"] == 1
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-4)  # on-policy first update
    assert stats["clipfrac"] == 0.0  # one step: the ratio never leaves 1, the clip cannot act


def test_several_steps_per_rollout_move_the_ratio_and_the_clip_acts(policy_dir):
    """mini_batches x ppo_epochs optimizer steps against the sampling log-probs: the later steps see
    a ratio away from 1, and with a large step size the clip takes over on some tokens."""
    from agents.policy import load_policy

    model, _ = load_policy(policy_dir)
    batch = _batch(model)
    cfg = TrainConfig(lr=3e-2, max_grad_norm=0.0, mini_batches=2, ppo_epochs=3)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    stats = ppo_update(model, batch, torch.tensor([1.0, -1.0, 1.0, -1.0]), batch.loss_mask, cfg, opt)
    assert stats["optimizer_steps"] == 6
    assert (
        stats["clipfrac"] > 0 and abs(stats["approx_kl"]) > 1e-4 and stats["ratio_mean"] != pytest.approx(1.0, abs=1e-4)
    )


def test_each_epoch_visits_every_kept_row_once():
    g = torch.Generator().manual_seed(1)
    plan = rows_of_steps([0, 2, 3, 5, 7], mini_batches=2, epochs=3, generator=g)
    assert len(plan) == 6
    for epoch in range(3):
        assert sorted(plan[2 * epoch] + plan[2 * epoch + 1]) == [0, 2, 3, 5, 7]
    assert plan[0] + plan[1] != plan[2] + plan[3] or plan[2] + plan[3] != plan[4] + plan[5]  # reshuffled


def test_masked_tokens_contribute_no_gradient(model_and_tokenizer):
    model, _ = model_and_tokenizer
    batch = _batch(model)
    cfg = TrainConfig(max_grad_norm=0.0)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    mask = batch.loss_mask.clone()
    mask[3] = 0.0  # a filtered episode
    ref = _grads(model, batch, adv, mask, cfg)

    # anything at masked positions (observations, prompt, padding, a filtered row) must not matter
    noisy = RolloutBatch(**batch.__dict__)
    noisy.old_logprobs = batch.old_logprobs + (1 - mask) * torch.randn_like(batch.old_logprobs) * 5
    adv2 = adv.clone()
    adv2[3] = 123.0
    got = _grads(model, noisy, adv2, mask, cfg)
    assert ref.keys() == got.keys()
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-7)

    # and no mask at all means no gradient (update is skipped)
    assert _grads(model, batch, adv, torch.zeros_like(mask), cfg) == {}


def test_grad_accumulation_matches_one_batch(model_and_tokenizer):
    model, _ = model_and_tokenizer
    batch = _batch(model)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    one = _grads(model, batch, adv, batch.loss_mask, TrainConfig(max_grad_norm=0.0, grad_accum=1))
    two = _grads(model, batch, adv, batch.loss_mask, TrainConfig(max_grad_norm=0.0, grad_accum=3))
    for n in one:
        torch.testing.assert_close(two[n], one[n], rtol=1e-4, atol=1e-6)


def test_dynamic_sampling_drops_uniform_groups():
    trajs = [
        _traj([1, 2], [([3, 4], True)], 1.0, 0),
        _traj([1, 2], [([3], True)], 1.0, 0),  # all correct
        _traj([1, 2], [([3, 4], True)], 0.0, 1),
        _traj([1, 2], [([3], True)], 0.0, 1),  # all wrong
        _traj([1, 2], [([3, 4], True)], 1.0, 2),
        _traj([1, 2], [([5], True)], 0.0, 2),  # mixed
        _traj([1, 2], [([3, 4], True)], 1.0, 3),
        _traj([1, 2], [([5], True)], 0.0, 3, overlong=True),  # mixed
    ]
    batch = RolloutBatch.from_trajectories(trajs)
    correct = batch.rewards > 0
    keep_group, keep, adv, mask = select_and_score(batch, correct, TrainConfig())
    assert keep_group.tolist() == [False, False, False, False, True, True, True, True]
    assert keep.tolist() == [False, False, False, False, True, True, True, False]  # overlong filtered
    assert mask[:4].sum() == 0 and mask[7].sum() == 0 and mask[4].sum() == 2
    assert adv[:4].abs().sum() == 0 and adv[4] > 0 > adv[5]
    assert adv[7] < 0  # the overlong episode still counts in its group's baseline
    keep_group, keep, _, mask = select_and_score(
        batch, correct, TrainConfig(dynamic_sampling=False, overlong_filter=False)
    )
    assert keep.all() and torch.equal(mask, batch.loss_mask)


def test_train_loop_sets_progress_and_logs(policy_dir, tmp_path):
    cfg = TrainConfig(
        policy=str(policy_dir),
        problems="generated:arithmetic:1",
        steps=4,
        group_size=2,
        prompts_per_step=2,
        max_turns=3,
        max_turn_tokens=6,
        max_total_tokens=160,
        lr=1e-3,
        warmup_steps=2,
        acceptance_schedule="linear:1.0:0.0:4",
        turn_schedule="linear:3:1:2",
        checkpoint_every=2,
        tensorboard=False,
        progress_bar=False,
        final_eval=False,
    )
    seen = []
    res = train(cfg, tmp_path, log=lambda m: None, on_step=lambda s, r: seen.append(s))
    assert seen == [0, 1, 2, 3]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    p, turns = parse_schedule(cfg.acceptance_schedule), parse_schedule(cfg.turn_schedule)
    for r in records:
        # what the envs used (read back from their reset info) follows the schedules
        assert r["p_t"] == pytest.approx(p(r["step"]))
        assert r["p_schedule"] == pytest.approx(p(r["step"]))
        assert r["turn_budget"] == max(1, round(turns(r["step"])))
        assert r["turns"] <= r["turn_budget"]
        for key in (
            "accuracy",
            "consult_rate",
            "expert_call_rate",
            "response_tokens",
            "masked_token_frac",
            "kept_group_frac",
            "loss",
            "clipfrac",
            "approx_kl",
            "optimizer_steps",
            "time_rollout_s",
            "time_train_s",
            "accuracy_unconsulted",
            "reward_consulted",
            "collapse_consult_rising",
            "collapse_unconsulted_lag",
            "env_cpu_share",
        ):
            assert key in r
        # the env's side of the rollout is timed on the path train() takes: nonzero, inside the rollout
        assert 0 < r["time_env_cpu_s"] < r["time_rollout_s"]
        env_side = r["time_env_cpu_s"] + r["time_other_threads_cpu_s"]
        assert r["env_cpu_share"] == pytest.approx(env_side / r["time_rollout_s"], rel=1e-3)
    assert [r["lr"] for r in records] == pytest.approx([5e-4, 1e-3, 1e-3, 1e-3])
    assert (res.policy_dir / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000002", "step_000004"]
    state = json.loads((tmp_path / "checkpoints" / "step_000004" / "state.json").read_text())
    assert state["step"] == 4 and state["schedules"]["acceptance"]["spec"] == cfg.acceptance_schedule


def test_logged_p_t_is_the_envs_acceptance_prob_with_derived_schedules(policy_dir, tmp_path):
    """p(t) has one owner, ``TrainConfig.acceptance()``: with the schedules left empty (derived from
    ``steps``, here after a ``replace``), the trainer's ``p_schedule``, the ``acceptance_prob`` every
    env reported at reset (``p_t``) and the checkpoint's schedule are the same value at each step."""
    base = TrainConfig(
        policy=str(policy_dir), steps=100, group_size=2, prompts_per_step=1, max_turns=3, max_turn_tokens=4,
        max_total_tokens=128, checkpoint_every=4, tensorboard=False, progress_bar=False, final_eval=False,
    )  # fmt: skip
    cfg = base.replace(steps=4)  # derived p(t): linear:1.0:0.0:2, not the 100-step horizon
    assert str(cfg.acceptance()) == "linear:1.0:0.0:2"
    train(cfg, tmp_path, log=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["p_t"] for r in records] == [r["p_schedule"] for r in records] == [1.0, 0.5, 0.0, 0.0]
    state = json.loads((tmp_path / "checkpoints" / "step_000004" / "state.json").read_text())
    assert state["schedules"]["acceptance"]["spec"] == str(cfg.acceptance())
    assert state["schedules"]["turns"]["spec"] == str(cfg.turns())
