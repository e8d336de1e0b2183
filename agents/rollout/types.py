"""Rollout records: one :class:`Trajectory` per episode, and the padded :class:`RolloutBatch` the
learner consumes.

A trajectory is token-in/token-out (DESIGN §7): ``token_ids`` is the exact sequence the policy saw
after the prompt — its own turns as sampled (never re-tokenized) interleaved with the env/expert
observations tokenized once — with ``loss_mask`` 1 on policy tokens and 0 on the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from envs.step import StepInfo


@dataclass
class Trajectory:
    """One episode of one env.

    Attributes:
        prompt_ids: token ids of the episode's first observation (never trained on).
        token_ids: every token after the prompt, in order (policy turns and observations).
        loss_mask: per token of ``token_ids``: 1 = sampled by the policy, 0 = env/expert text.
        logprobs: per token of ``token_ids``: the sampling log-prob of a policy token under the
            tempered distribution (``log_softmax(logits / T)``), 0.0 where ``loss_mask`` is 0.
        reward: sum of the env rewards over the episode.
        terminated: the env ended the episode (an answer was given).
        truncated: the episode was cut: the env's turn budget, or the engine's token budget
            (then ``overlong`` is also True).
        overlong: the engine's per-trajectory token budget cut the episode (DAPO overlong filter).
        num_turns: policy turns generated (the last one may be cut by the token budget).
        consults: turns that consulted (the env's ``info["consults"]`` of the last step).
        correct: the env's verified correctness (``info["correct"]`` at the episode's end); False
            when the engine's token budget cut the episode before the env ended it.
        infos: the env ``info`` of every step, in order (``reset``'s info is ``reset_info``).
        group_id: GRPO group (episodes of the same problem share it).
        problem_id: from ``reset``'s ``info["problem_id"]`` when the env provides it.
        reset_info: the info dict returned by ``reset``.
    """

    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    overlong: bool = False
    num_turns: int = 0
    consults: int = 0
    correct: bool = False
    infos: list[StepInfo] = field(default_factory=list)
    group_id: int = 0
    problem_id: Any = None
    reset_info: dict[str, Any] = field(default_factory=dict)

    @property
    def response_length(self) -> int:
        """Tokens after the prompt (policy and observation)."""
        return len(self.token_ids)

    @property
    def num_policy_tokens(self) -> int:
        return int(sum(self.loss_mask))

    def add_policy(self, ids: Sequence[int], logprobs: Sequence[float]) -> None:
        """Append one policy turn's sampled tokens and their sampling log-probs."""
        assert len(ids) == len(logprobs)
        self.token_ids.extend(ids)
        self.loss_mask.extend([1] * len(ids))
        self.logprobs.extend(float(x) for x in logprobs)

    def add_observation(self, ids: Sequence[int]) -> None:
        """Append env/expert tokens (loss mask 0, log-prob 0)."""
        self.token_ids.extend(ids)
        self.loss_mask.extend([0] * len(ids))
        self.logprobs.extend([0.0] * len(ids))


@dataclass
class RolloutBatch:
    """Right-padded tensors over B trajectories; T = longest prompt + response.

    Shapes:
        input_ids [B, T] long (pad = ``pad_id``), attention_mask [B, T] long,
        loss_mask [B, T] float (0 on prompt, observation and padding), old_logprobs [B, T] float
        (aligned to ``input_ids``: position t holds the log-prob of ``input_ids[:, t]``),
        rewards [B] float, group_ids [B] long, terminated / truncated / overlong [B] bool,
        prompt_lengths [B] long.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    old_logprobs: torch.Tensor
    rewards: torch.Tensor
    group_ids: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    overlong: torch.Tensor
    prompt_lengths: torch.Tensor

    @classmethod
    def from_trajectories(cls, trajs: Sequence[Trajectory], pad_id: int = 0) -> RolloutBatch:
        """Concatenate prompt + response per trajectory and right-pad to the longest."""
        if not trajs:
            raise ValueError("from_trajectories needs at least one trajectory")
        lengths = [len(t.prompt_ids) + len(t.token_ids) for t in trajs]
        B, T = len(trajs), max(lengths)
        input_ids = torch.full((B, T), pad_id, dtype=torch.long)
        attention_mask = torch.zeros(B, T, dtype=torch.long)
        loss_mask = torch.zeros(B, T, dtype=torch.float32)
        old_logprobs = torch.zeros(B, T, dtype=torch.float32)
        for i, t in enumerate(trajs):
            p, n = len(t.prompt_ids), len(t.token_ids)
            input_ids[i, : p + n] = torch.tensor(t.prompt_ids + t.token_ids, dtype=torch.long)
            attention_mask[i, : p + n] = 1
            loss_mask[i, p : p + n] = torch.tensor(t.loss_mask, dtype=torch.float32)
            old_logprobs[i, p : p + n] = torch.tensor(t.logprobs, dtype=torch.float32)

        def vec(values: list[Any], dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype)

        return cls(
            input_ids=input_ids,
            attention_mask=attention_mask,
            loss_mask=loss_mask,
            old_logprobs=old_logprobs,
            rewards=vec([t.reward for t in trajs], torch.float32),
            group_ids=vec([t.group_id for t in trajs], torch.long),
            terminated=vec([t.terminated for t in trajs], torch.bool),
            truncated=vec([t.truncated for t in trajs], torch.bool),
            overlong=vec([t.overlong for t in trajs], torch.bool),
            prompt_lengths=vec([len(t.prompt_ids) for t in trajs], torch.long),
        )

    def to(self, device: torch.device | str) -> RolloutBatch:
        return RolloutBatch(**{k: v.to(device) for k, v in self.__dict__.items()})

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])
