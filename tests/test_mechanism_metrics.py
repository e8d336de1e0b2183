"""Dose and densification per step (issue 20): logged by the trainer through ``episode_metrics``."""

from __future__ import annotations

import torch

from agents.metrics import episode_metrics, group_densification
from agents.rollout.types import Trajectory
from agents.trainer import step_record


def _traj(group: int, correct: bool, accepted: int) -> Trajectory:
    infos = [{"action": "consult", "queries": 1, "accepted": accepted}] if accepted >= 0 else []
    return Trajectory(prompt_ids=[1], token_ids=[2, 3], loss_mask=[1, 0], correct=correct, group_id=group, infos=infos)  # type: ignore[list-item]


def test_dose_counts_episodes_with_an_accepted_reply() -> None:
    trajs = [_traj(0, False, 1), _traj(0, False, 0), _traj(1, True, -1), _traj(1, False, 2)]
    m = episode_metrics(trajs)
    assert m["dose"] == m["expert_call_rate"] == 0.5
    assert m["solved_group_frac"] == 0.5 and m["all_wrong_group_frac"] == 0.5


def test_densification_is_per_group_not_per_episode() -> None:
    assert group_densification([3, 3, 3, 7], [True, True, True, False])["solved_group_frac"] == 0.5
    assert group_densification([], [])["solved_group_frac"] != group_densification([], [])["solved_group_frac"]  # NaN


def test_the_trainer_step_record_carries_them() -> None:
    trajs = [_traj(0, True, 1), _traj(0, False, 0)]
    ones = torch.ones(2, dtype=torch.bool)
    rec = step_record(0, trajs, ones, ones, torch.zeros(2), torch.ones(2, 2), {})
    assert rec["dose"] == 0.5 and rec["solved_group_frac"] == 1.0
