"""The learner's ledger of one step's episodes (DESIGN §9): what each episode is, who runs it, and
that it comes back exactly once.

Ray-free on purpose: :mod:`agents.rollout.ray_workers` drives it, and its rules (whole groups per
shard, dedupe by id, a stale policy version refused) are testable without a cluster.

Example:
    >>> ledger = EpisodeLedger.plan([5, 6, 7, 8], [{"problem_index": 0}] * 2 + [{"problem_index": 3}] * 2,
    ...                             [0, 0, 1, 1], version=0)
    >>> ledger.shard([0, 1, 2, 3], 2)
    [[0, 1], [2, 3]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.rollout.types import Trajectory


@dataclass(frozen=True)
class EpisodeSpec:
    """One ledger entry: everything a worker needs to (re-)run the episode and get the same one."""

    episode_id: int  # index in the step's batch: the env index at N = 0, and the key of its draws
    problem_index: int
    env_seed: int
    group_id: int
    policy_version: int  # the weights it must be sampled with (the step's)


@dataclass(frozen=True)
class ShardRequest:
    step: int
    version: int
    key: int  # the step's sampling key, the same for every shard
    episodes: tuple[EpisodeSpec, ...]


@dataclass
class ShardResult:
    worker: str
    version: int
    episode_ids: list[int]
    trajectories: list[Trajectory]


class EpisodeLedger:
    """The learner's record of one step's episodes: planned once, returned exactly once."""

    def __init__(self, specs: Sequence[EpisodeSpec]) -> None:
        self.specs = {s.episode_id: s for s in specs}
        self.done: dict[int, Trajectory] = {}
        self.attempts = {eid: 0 for eid in self.specs}
        self.dropped = 0  # results for an episode already done (or never planned)

    @classmethod
    def plan(
        cls, seeds: Sequence[int], options: Sequence[dict], group_ids: Sequence[int], version: int
    ) -> EpisodeLedger:
        """Entry i is episode i of the step (its env index at ``rollout_workers = 0``)."""
        if not len(seeds) == len(options) == len(group_ids):
            raise ValueError("seeds, options and group_ids need one entry per episode")
        specs = []
        for i, (s, o, g) in enumerate(zip(seeds, options, group_ids)):
            if set(o) != {"problem_index"}:
                raise ValueError(f"rollout workers take options {{'problem_index': i}} only, got {o!r}")
            specs.append(EpisodeSpec(i, int(o["problem_index"]), int(s), int(g), version))
        return cls(specs)

    def shard(self, ids: Sequence[int], n: int) -> list[list[int]]:
        """``ids`` split into ``n`` contiguous parts of whole groups (sizes differ by one group at most)."""
        groups: dict[int, list[int]] = {}
        for eid in ids:
            groups.setdefault(self.specs[eid].group_id, []).append(eid)
        ordered = list(groups.values())
        cuts = [round(k * len(ordered) / n) for k in range(n + 1)]
        return [[e for g in ordered[cuts[k] : cuts[k + 1]] for e in g] for k in range(n)]

    def accept(self, result: ShardResult) -> None:
        for eid, traj in zip(result.episode_ids, result.trajectories, strict=True):
            spec = self.specs.get(eid)
            if spec is None or eid in self.done:
                self.dropped += 1
                continue
            if result.version != spec.policy_version or traj.group_id != spec.group_id:
                raise RuntimeError(
                    f"rollout worker {result.worker} returned episode {eid} with policy version {result.version} "
                    f"and group {traj.group_id}; the ledger says version {spec.policy_version}, group {spec.group_id}"
                )
            self.done[eid] = traj

    def missing(self) -> list[int]:
        return [eid for eid in self.specs if eid not in self.done]

    def trajectories(self) -> list[Trajectory]:
        """Every episode once, in id order (the env order of the unsharded rollout)."""
        assert not self.missing(), "ledger incomplete"
        return [self.done[eid] for eid in sorted(self.specs)]
