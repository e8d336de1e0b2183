"""Off-policy guidance (agents/guidance.py, the `luffy` mechanism row): the expert's solution as one
more group member, with the policy's own log-probs, and the signal it gives an all-wrong group."""

from __future__ import annotations

import json

import pytest
import torch

from agents.config import TrainConfig
from agents.guidance import expert_members, groups_needing_guidance
from agents.losses import token_logprobs
from agents.policy import load_policy
from agents.policy.tokenizer import encode_prompt
from agents.rollout import RolloutBatch
from agents.rollout.types import Trajectory
from agents.traces import expert_solution_turn
from agents.update import select_and_score
from eapo_env.problems import load_problems
from eapo_env.prompts import render_prompt

SPEC = "generated:arithmetic:3"


@pytest.fixture(scope="module")
def policy():
    model, tok = load_policy("expert-reader-base")
    return model.eval(), tok


def _episodes(tok, source, correct: list[list[bool]]) -> list[Trajectory]:
    """Stand-in episodes: group g on problem g, its flags as the env's verdicts."""
    out = []
    for g, flags in enumerate(correct):
        p = source[g]
        prompt = encode_prompt(tok, render_prompt(p.question, eval_mode=False, max_experts=3, max_turns=4))
        for ok in flags:
            t = Trajectory(prompt_ids=prompt, group_id=g, problem_id=p.id, correct=ok, reward=float(ok))
            t.add_policy([5, 6], [-1.0, -1.0])
            out.append(t)
    return out


def test_the_rule_picks_the_groups() -> None:
    trajs = [Trajectory([1], group_id=g) for g in (3, 3, 1, 1, 7)]
    correct = torch.tensor([False, True, False, False, False])
    assert groups_needing_guidance(trajs, correct, "every") == [3, 1, 7]
    assert groups_needing_guidance(trajs, correct, "all_wrong") == [1, 7]
    assert groups_needing_guidance(trajs, correct, "") == []
    with pytest.raises(ValueError, match="expert_in_group"):
        TrainConfig(expert_in_group="some")


def test_a_member_is_the_solution_in_the_policy_format_with_its_own_logprobs(policy) -> None:
    model, tok = policy
    source = load_problems(SPEC)
    trajs = _episodes(tok, source, [[False, False], [True, False]])
    correct = torch.tensor([t.correct for t in trajs])
    (member,) = expert_members(trajs, correct, "all_wrong", source, tok, model, 1.0, 200)
    assert member.group_id == 0 and member.prompt_ids == trajs[0].prompt_ids
    text = tok.decode(member.token_ids)
    assert text.replace(" ", "") == expert_solution_turn(source[0]).replace(" ", "")
    assert f"<answer>{source[0].answer}</answer>" in expert_solution_turn(source[0])
    assert (member.reward, member.correct, member.overlong) == (1.0, True, False)
    assert member.loss_mask == [1] * len(member.token_ids)
    # the log-probs are the policy's own, position by position (an unpadded forward of this one row)
    ids = torch.tensor([member.prompt_ids + member.token_ids])
    direct = token_logprobs(model, ids, torch.ones_like(ids))[0, len(member.prompt_ids) :]
    assert member.logprobs == pytest.approx(direct.tolist(), abs=1e-5)
    assert all(lp <= 0 for lp in member.logprobs) and sum(member.logprobs) < 0


def test_a_cut_solution_is_no_answer(policy) -> None:
    model, tok = policy
    source = load_problems(SPEC)
    trajs = _episodes(tok, source, [[False, False]])
    (member,) = expert_members(trajs, torch.tensor([False, False]), "every", source, tok, model, 1.0, 5)
    assert len(member.token_ids) == 5 and member.overlong
    assert (member.reward, member.correct) == (0.0, False)


def test_an_all_wrong_group_gets_a_signal_only_with_the_member(policy) -> None:
    model, tok = policy
    source = load_problems(SPEC)
    trajs = _episodes(tok, source, [[False] * 4])
    correct = torch.tensor([False] * 4)
    cfg = TrainConfig()
    batch = RolloutBatch.from_trajectories(trajs)
    keep_group, _, advantages, loss_mask = select_and_score(batch, correct, cfg)
    assert not keep_group.any() and float(loss_mask.sum()) == 0.0  # dynamic sampling: no signal
    members = expert_members(trajs, correct, "every", source, tok, model, 1.0, 200)
    batch = RolloutBatch.from_trajectories([*trajs, *members])
    keep_group, _, advantages, loss_mask = select_and_score(batch, torch.cat([correct, torch.tensor([True])]), cfg)
    assert keep_group.all() and advantages[-1] > 0 and (advantages[:4] < 0).all()
    assert float(loss_mask[-1].sum()) == len(members[0].token_ids)


def test_the_trainer_adds_members_and_logs_them(tmp_path) -> None:
    from agents.trainer import train

    cfg = TrainConfig(
        policy="expert-reader-base", problems=SPEC, steps=2, group_size=2, prompts_per_step=3, max_turns=2,
        max_turn_tokens=40, max_total_tokens=300, acceptance_schedule="const:0.0", expert_in_group="every",
        checkpoint_every=2, tensorboard=False, progress_bar=False, final_eval=False, threads=1,
    )  # fmt: skip
    train(cfg, tmp_path, log=lambda m: None)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["expert_members"] for m in lines] == [3, 3]
    assert all(m["episodes"] == 6 for m in lines)  # the episode metrics describe the on-policy episodes only
