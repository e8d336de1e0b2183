"""Off-policy guidance: the expert's worked solution as one more member of a GRPO group.

A published guidance baseline beside EAPO (issue 20): LUFFY (Yan et al., 2025, "Learning to Reason
under Off-Policy Guidance") mixes an expert's solution into each group, so the group-normalised
advantage rewards it wherever the policy's own samples fell short; Guide-GRPO (Nath et al., 2025)
adds guidance only to groups whose samples are all wrong. ``TrainConfig.expert_in_group`` picks the
rule (``"every"`` / ``"all_wrong"``). What is ours, and simpler than LUFFY:

* the solution is the problem's reference solution (what the ``reference`` expert replies and what
  ``distill_full`` trains on), written in the policy's own answer format
  (:func:`agents.traces.expert_solution_turn`) and tokenized as SFT tokenized policy turns;
* its "sampling" log-probs are the current policy's own log-probs of those tokens (one no-grad
  forward), so its PPO ratio starts at 1 and is clipped like any other token's; LUFFY's policy
  shaping (``r / (r + gamma)`` on off-policy tokens) is not applied;
* it is rewarded 1 (correct by construction) and enters the advantage normalisation, the dynamic
  sampling filter (a group of one correct expert member and only wrong samples is then kept) and the
  token-mean loss; the step's episode metrics describe the on-policy episodes only.

Example:
    >>> import torch
    >>> from agents.rollout.types import Trajectory
    >>> member = Trajectory(prompt_ids=[1, 2], token_ids=[5, 6], loss_mask=[1, 1], logprobs=[-1.0, -2.0])
    >>> groups_needing_guidance([member], torch.tensor([True]), "all_wrong")
    []
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from agents.policy.tokenizer import encode_segment
from agents.rollout import RolloutBatch
from agents.rollout.types import Trajectory
from agents.traces import expert_solution_turn
from agents.update import batch_logprobs


def groups_needing_guidance(trajs: Sequence[Trajectory], correct: torch.Tensor, rule: str) -> list[int]:
    """The group ids (in first-seen order) that get an expert member under ``rule``.

    ``correct`` [B] bool per trajectory; ``"every"``: every group, ``"all_wrong"``: groups with no
    correct episode, ``""``: none."""
    if not rule:
        return []
    order = list(dict.fromkeys(t.group_id for t in trajs))
    if rule == "every":
        return order
    solved = {t.group_id for t, ok in zip(trajs, correct.tolist()) if ok}
    return [g for g in order if g not in solved]


def expert_members(
    trajs: Sequence[Trajectory], correct: torch.Tensor, rule: str, source: Any, tokenizer: Any,
    model: torch.nn.Module, temperature: float, max_tokens: int,
) -> list[Trajectory]:  # fmt: skip
    """One off-policy trajectory per group that ``rule`` names (:func:`groups_needing_guidance`).

    Each has its group's prompt ids and id, the expert's solution turn as its policy tokens (cut to
    ``max_tokens``, the engine's per-turn cap, then marked ``overlong``), and as ``logprobs`` the
    tempered log-probs of those tokens under ``model`` (the weights the step's episodes were sampled
    with). ``source.get(problem_id)`` gives each group's problem."""
    first: dict[int, Trajectory] = {}
    for t in trajs:
        first.setdefault(t.group_id, t)
    members = []
    for g in groups_needing_guidance(trajs, correct, rule):
        peer = first[g]
        if peer.problem_id is None:
            raise ValueError("expert_in_group needs each episode's problem_id (the env's reset info)")
        problem = source.get(peer.problem_id)
        ids = encode_segment(tokenizer, expert_solution_turn(problem))
        member = Trajectory(prompt_ids=list(peer.prompt_ids), group_id=g, problem_id=peer.problem_id)
        kept = ids[:max_tokens]
        member.add_policy(kept, [0.0] * len(kept))  # the log-probs are filled below, in one batch
        member.overlong = len(ids) > max_tokens
        whole = not member.overlong  # a cut solution is no answer: reward 0, and the overlong filter drops it
        member.reward, member.correct, member.terminated = float(whole), whole, whole
        member.num_turns = 1
        members.append(member)
    _fill_logprobs(members, model, temperature)
    return members


def _fill_logprobs(members: list[Trajectory], model: torch.nn.Module, temperature: float) -> None:
    """Each member's policy-token log-probs under ``model`` (:func:`agents.update.batch_logprobs`)."""
    if not members:
        return
    device = next(model.parameters()).device
    lp = batch_logprobs(model, RolloutBatch.from_trajectories(members).to(device), temperature).cpu()
    for i, m in enumerate(members):
        p = len(m.prompt_ids)
        m.logprobs = lp[i, p : p + len(m.token_ids)].tolist()
