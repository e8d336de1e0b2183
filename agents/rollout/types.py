"""Rollout records: one :class:`Trajectory` per episode, and the padded :class:`RolloutBatch` the
learner consumes.

A trajectory is token-in/token-out (DESIGN §7): ``token_ids`` is the exact sequence the policy saw
after the prompt — its own turns as sampled (never re-tokenized) interleaved with the env/expert
observations tokenized once — with ``loss_mask`` 1 on policy tokens and 0 on the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


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
        consults: turns that consulted (from the env's ``info["consults"]`` when present).
        infos: the env ``info`` of every step, in order (``reset``'s info is ``reset_info``).
        turn_texts: the decoded text of every policy turn as handed to the env.
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
    infos: list[dict[str, Any]] = field(default_factory=list)
    turn_texts: list[str] = field(default_factory=list)
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


# ---------------------------------------------------------------- env driving shared by the engines


def start_episodes(
    envs: Sequence[Any],
    encode_prompt,
    seeds: Sequence[int | None] | int | None = None,
    options: Sequence[dict | None] | dict | None = None,
    group_ids: Sequence[int] | None = None,
) -> list[Trajectory]:
    """``reset`` every env and open its trajectory.

    Args:
        envs: objects with ``reset(seed=, options=) -> (str, info)`` and
            ``step(str) -> (str, reward, terminated, truncated, info)``.
        encode_prompt: ``str -> list[int]`` (tokenizes the first observation once).
        seeds: one per env, or an int (env i gets ``seed + i``), or None.
        options: one dict per env, or one dict for all, or None.
        group_ids: one per env; default: env i is its own group ``i``.
    """
    n = len(envs)
    if seeds is None or isinstance(seeds, int):
        seeds = [None if seeds is None else seeds + i for i in range(n)]
    if options is None or isinstance(options, dict):
        options = [options] * n
    if group_ids is None:
        group_ids = list(range(n))
    if not (len(seeds) == len(options) == len(group_ids) == n):
        raise ValueError("seeds, options and group_ids must have one entry per env")
    trajs = []
    for env, seed, opt, gid in zip(envs, seeds, options, group_ids):
        prompt, info = env.reset(seed=seed, options=opt)
        info = dict(info or {})
        trajs.append(
            Trajectory(
                prompt_ids=list(encode_prompt(prompt)),
                group_id=int(gid),
                problem_id=info.get("problem_id"),
                reset_info=info,
            )
        )
    return trajs


def record_step(traj: Trajectory, turn_text: str, result: tuple) -> tuple[str, bool]:
    """Book one env step into ``traj``; returns (observation, episode_over)."""
    obs, reward, terminated, truncated, info = result
    info = dict(info or {})
    traj.turn_texts.append(turn_text)
    traj.infos.append(info)
    traj.reward += float(reward)
    traj.terminated = bool(terminated)
    traj.truncated = bool(truncated)
    # "turns that consulted": the env's own running count when it keeps one
    traj.consults = int(info["consults"]) if "consults" in info else traj.consults + bool(info.get("queries"))
    return obs, bool(terminated or truncated)


def step_env(
    traj: Trajectory, env: Any, turn_text: str, encode_observation: Callable[[str], list[int]], budget: int
) -> list[int] | None:
    """Hand one turn to ``env``, book it, and append the observation tokens (loss mask 0).

    Returns the observation ids when the episode goes on, ``None`` when it ended: by the env, or
    because the observation leaves no room for a single policy token under ``budget``.
    """
    obs, over = record_step(traj, turn_text, env.step(turn_text))
    if over:
        return None
    obs_ids = encode_observation(obs)
    if len(traj.prompt_ids) + len(traj.token_ids) + len(obs_ids) >= budget:
        traj.truncated = traj.overlong = True
        return None
    traj.add_observation(obs_ids)
    return obs_ids
