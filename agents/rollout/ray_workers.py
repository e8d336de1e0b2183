"""Rollout workers on Ray (DESIGN §9): ``rollout_workers = N`` actors, each owning a vector env and an
engine replica, behind the interface the trainer already drives.

:class:`RayRolloutPool` is both what :func:`agents.trainer.rollout_episodes` calls a vector env
(``set_progress(step)``) and what it calls an engine (``rollout(envs, seeds=, options=, group_ids=,
seed=)``), so the step's draws (problems, env seeds, groups, the sampling key) are made by the same
code at any N. One step:

1. ``push_weights(model, version)``: the state dict goes into Ray's object store **once**
   (``ray.put``) and every actor loads that one object. Right for small policies; a 7B policy
   (~15 GB in bf16) would instead be broadcast GPU to GPU over NCCL (a process group spanning the
   learner and the actors, as verl/OpenRLHF do) or pushed with vLLM's weight-transfer API when the
   replicas are vLLM engines; the object store would copy it through host memory every step.
2. ``set_progress(step)`` reaches every actor (each calls it on its envs: p(t), the turn budget).
3. ``rollout``: the learner writes a ledger (:class:`EpisodeLedger`: episode id -> problem index,
   env seed, group id, policy version), shards **whole groups** over the live actors and waits with
   ``ray.wait`` and a timeout. An actor that dies (``RayActorError``) or returns nothing for
   ``worker_timeout_s`` is killed; its episodes re-run on the others (on its replacement when no
   other is left), each episode is counted once (results are deduplicated by id; a presumed-dead
   actor's late results are dropped), and a replacement actor starts from the current weights. No
   live worker, or an episode that lost its worker ``MAX_ATTEMPTS`` times, is an error, never a hang.

Reproducibility: an episode's sampling draws are keyed by its id in the step (the engine's
``draw_ids``), not by its row in one actor's batch, so a shard samples what the unsharded rollout
would. Float results may still depend on the batch shape (a different number of rows, or a longer
padded cache in a shard, changes the reduction order of the matmuls); then a token near a tie of the
cumulative distribution can flip. Problems, env seeds, groups and schedule values are equal at any N
regardless (``tests/test_ray_workers.py`` checks both).

Ray's own fault tolerance is left off on purpose (``max_restarts = 0``: a restarted actor re-runs
its constructor and has lost its in-flight episodes anyway); the ledger is the source of truth.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.config import TrainConfig
from agents.device import pick_device
from agents.rollout.ledger import EpisodeLedger, ShardRequest, ShardResult
from agents.rollout.types import Trajectory

MAX_ATTEMPTS = 3  # workers an episode may lose before the step fails (a poison episode is not retried forever)
_POLL_S = 0.5  # ray.wait timeout: how often stalls are checked
STARTUP_S = 180.0  # an actor's start-up (imports, policy load) gets at least this long, whatever worker_timeout_s


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError("rollout_workers > 0 needs Ray: pip install 'eapo[ray]'") from exc
    return ray


@dataclass(frozen=True)
class WorkerFault:
    """Test hook (no mock of Ray, armed with :meth:`RayRolloutPool.arm`): worker ``slot`` really dies
    (``os._exit``) or really stalls (sleeps far past any timeout) when asked to roll out ``step``."""

    slot: int
    mode: str  # "die" or "stall"
    step: int = 0
    replacements: bool = False  # the slot's replacements fail the same way (a worker that never comes back)


def weights_checksum(model: torch.nn.Module) -> float:
    """A float64 sum over every weight: what the learner holds vs what a worker holds."""
    return float(sum(t.detach().double().sum() for t in model.state_dict().values()))


class RolloutWorker:
    """One actor's state: a policy replica built as the trainer builds its own, its engine, and one
    vector env per shard size (a re-run shard may be smaller than the usual one)."""

    def __init__(self, config: TrainConfig, policy_dir: str, label: str, fault: WorkerFault | None = None) -> None:
        from transformers.utils import logging as hf_logging

        from agents.policy import load_policy
        from agents.run_setup import apply_lora, build_engine
        from eapo_env.problems import load_problems

        hf_logging.disable_progress_bar()  # no "Loading weights" bar per actor in the run log
        if config.threads:
            torch.set_num_threads(config.threads)
        self.config, self.label, self.fault = config, label, fault
        device = pick_device(config.device)
        model, tokenizer = load_policy(Path(policy_dir), device=device)
        _, self.model = apply_lora(model, config)
        self.engine = build_engine(config, self.model, tokenizer, device)
        self.source = load_problems(config.problems, seed=config.problems_seed)
        self.envs: dict[int, Any] = {}
        self.version, self.step = -1, -1

    def ping(self) -> tuple[int, int]:
        """``(pid, number of problems)``: the learner checks the worker reads the same source."""
        return os.getpid(), len(self.source)

    def held(self) -> tuple[int, int, float]:
        """``(weights version, step, weights checksum)`` this worker holds now."""
        return self.version, self.step, weights_checksum(self.model)

    def arm(self, fault: WorkerFault | None) -> None:
        self.fault = fault

    def load_weights(self, state: dict[str, torch.Tensor], version: int) -> None:
        self.model.load_state_dict(state)  # in place: the engine's references stay valid
        self.version = version

    def set_progress(self, step: int) -> None:
        self.step = step
        for envs in self.envs.values():
            envs.set_progress(step)

    def rollout(self, request: ShardRequest) -> ShardResult:
        from agents.rollout.engine import RolloutEngine
        from agents.run_setup import make_envs

        if (self.version, self.step) != (request.version, request.step):
            raise RuntimeError(
                f"rollout worker {self.label} holds weights v{self.version} at step {self.step}, "
                f"asked for v{request.version} at step {request.step}: refusing a stale policy"
            )
        if self.fault is not None and self.fault.step == request.step:
            if self.fault.mode == "die":
                os._exit(1)
            time.sleep(3600)
        n = len(request.episodes)
        if n not in self.envs:
            self.envs[n] = make_envs(self.config, n, self.source)
            self.envs[n].set_progress(self.step)
        eps = request.episodes
        extra = {"draw_ids": [e.episode_id for e in eps]} if isinstance(self.engine, RolloutEngine) else {}
        trajs = self.engine.rollout(
            self.envs[n],
            seeds=[e.env_seed for e in eps],
            options=[{"problem_index": e.problem_index} for e in eps],
            group_ids=[e.group_id for e in eps],
            seed=request.key,
            **extra,
        )
        return ShardResult(self.label, self.version, [e.episode_id for e in eps], trajs)

    def close(self) -> None:
        for envs in self.envs.values():
            envs.close()


@dataclass
class _Slot:
    index: int
    actor: Any
    label: str
    last_progress: float = 0.0  # last submit (when idle), result or start-up: the stall clock
    starting: Any = None  # a new actor's ping, until it answers (start-up is not a stall)
    spawned: float = 0.0


@dataclass
class PoolStats:
    """Cumulative over the run (the pool logs each event as it happens)."""

    workers_lost: int = 0
    replacements: int = 0
    episodes_rerun: int = 0
    results_dropped: int = 0


class RayRolloutPool:
    """``config.rollout_workers`` actors behind the vector-env + engine interface (see the module docs).

    Args:
        config: the run's config (workers build env and engine from it, as the trainer does).
        policy_dir: the policy directory the workers load the architecture and tokenizer from.
        weights_bytes: size of one state dict (sizes a local cluster's object store).
        log: where worker losses are reported.
    """

    def __init__(
        self,
        config: TrainConfig,
        policy_dir: str | Path,
        weights_bytes: int = 0,
        log: Callable[[str], None] = print,
    ) -> None:
        self.ray = ray = _import_ray()
        self.config, self.policy_dir, self.log = config, str(policy_dir), log
        self.owns_cluster = connect(config.rollout_workers, weights_bytes)
        self.actor_cls = ray.remote(RolloutWorker)
        self.weights: Any = None
        self.version, self.step = -1, -1
        self.stats = PoolStats()
        self.calls: dict[Any, tuple[_Slot, list[int]]] = {}  # in flight: ref -> (slot, its episode ids)
        self.faults: dict[int, WorkerFault] = {}
        self.last_ledger: EpisodeLedger | None = None  # the last step's (tests, debugging)
        self.slots = [_Slot(i, None, "") for i in range(config.rollout_workers)]
        for slot in self.slots:
            self._spawn(slot)
        self._check_started()

    def arm(self, fault: WorkerFault) -> None:
        """Test hook: make worker ``fault.slot`` fail (see :class:`WorkerFault`)."""
        self.faults[fault.slot] = fault
        self.ray.get(self.slots[fault.slot].actor.arm.remote(fault))

    def _spawn(self, slot: _Slot) -> None:
        """Start the actor of ``slot``; a replacement first loads the current weights and step."""
        fault = self.faults.get(slot.index)
        fault = fault if fault is not None and fault.replacements else None
        slot.label = f"worker-{slot.index}" + (f".r{self.stats.replacements}" if slot.actor is not None else "")
        gpus = 1 if pick_device(self.config.device).type == "cuda" else 0  # auto on a GPU host: a GPU each
        opts = dict(num_cpus=1, num_gpus=gpus, max_restarts=0, max_task_retries=0)
        slot.actor = self.actor_cls.options(**opts).remote(self.config, self.policy_dir, slot.label, fault)
        slot.starting, slot.spawned = slot.actor.ping.remote(), time.monotonic()
        if self.weights is not None:
            slot.actor.load_weights.remote(self.weights, self.version)
        if self.step >= 0:
            slot.actor.set_progress.remote(self.step)

    def _check_started(self) -> None:
        timeout = max(self.config.worker_timeout_s, STARTUP_S)
        try:
            infos = self.ray.get([s.starting for s in self.slots], timeout=timeout)
        except Exception as exc:
            self.close()
            raise RuntimeError(
                f"{len(self.slots)} rollout workers did not start within {timeout} s "
                f"(cluster resources: {self.ray.cluster_resources()}): {exc}"
            ) from exc
        from eapo_env.problems import load_problems

        expected = len(load_problems(self.config.problems, seed=self.config.problems_seed))
        if any(count != expected for _, count in infos):
            self.close()
            raise RuntimeError(f"rollout workers read {infos} problems; the learner reads {expected}")

    # ------------------------------------------------------------------ the trainer's calls
    def push_weights(self, model: torch.nn.Module, version: int) -> None:
        """Send ``model``'s weights to every worker: one ``ray.put``, loaded by each actor."""
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.weights, self.version = self.ray.put(state), version
        for slot in self.live():
            slot.actor.load_weights.remote(self.weights, version)

    def set_progress(self, step: int) -> None:
        self.step = step
        for slot in self.live():
            slot.actor.set_progress.remote(step)

    def live(self) -> list[_Slot]:
        return [s for s in self.slots if s.actor is not None]

    def rollout(
        self,
        vec_env: Any = None,
        seeds: Sequence[int] = (),
        options: Sequence[dict] = (),
        group_ids: Sequence[int] = (),
        seed: int | None = None,
    ) -> list[Trajectory]:
        """The engine call: one episode per entry, sharded over the workers; ``vec_env`` is this pool."""
        if seed is None or self.weights is None or self.step < 0:
            raise RuntimeError("RayRolloutPool.rollout needs push_weights, set_progress and a sampling seed first")
        ledger = self.last_ledger = EpisodeLedger.plan(seeds, options, group_ids, self.version)
        self.calls, restarts = {}, 0
        live = self.live()
        for slot, ids in zip(live, ledger.shard(sorted(ledger.specs), len(live))):
            self._submit(slot, ids, ledger, seed)
        while ledger.missing():
            if not self.calls:
                raise RuntimeError(f"no rollout worker left; episodes {ledger.missing()} have none to run on")
            ready, _ = self.ray.wait(list(self.calls), num_returns=1, timeout=_POLL_S)
            for ref in ready:
                if ref in self.calls:
                    restarts += self._receive(ref, ledger, seed, restarts)
            for slot in {s.index: s for s, _ in self.calls.values()}.values():
                if why := self._stalled(slot):
                    restarts += self._lose(slot, why, ledger, seed, restarts)
        self.stats.results_dropped += ledger.dropped
        return ledger.trajectories()

    def _stalled(self, slot: _Slot) -> str:
        """Why ``slot`` (which has work) counts as stalled, or ``""``; its start-up has a bound of its own."""
        now = time.monotonic()
        if slot.starting is not None:
            if not self.ray.wait([slot.starting], timeout=0)[0]:
                bound = max(self.config.worker_timeout_s, STARTUP_S)
                return f"did not start within {bound} s" if now - slot.spawned > bound else ""
            slot.starting, slot.last_progress = None, max(slot.last_progress, now)  # up: the clock starts now
        silent = now - slot.last_progress > self.config.worker_timeout_s
        return f"returned nothing for {self.config.worker_timeout_s} s" if silent else ""

    def _submit(self, slot: _Slot, ids: list[int], ledger: EpisodeLedger, key: int) -> None:
        if not ids:
            return
        if not any(s is slot for s, _ in self.calls.values()):
            slot.last_progress = time.monotonic()  # the clock runs while it has work
        for eid in ids:
            ledger.attempts[eid] += 1
        request = ShardRequest(self.step, self.version, key, tuple(ledger.specs[e] for e in ids))
        self.calls[slot.actor.rollout.remote(request)] = (slot, ids)

    def _receive(self, ref: Any, ledger: EpisodeLedger, key: int, restarts: int) -> int:
        """Book one finished call; returns the replacements it started (0 or 1)."""
        slot, ids = self.calls.pop(ref)
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            self.calls[ref] = (slot, ids)  # lost with the slot's other calls
            return self._lose(slot, f"died ({type(exc).__name__})", ledger, key, restarts)
        except Exception as exc:  # the rollout itself raised: re-running it elsewhere would repeat it
            raise RuntimeError(f"rollout worker {slot.label} failed on episodes {ids}: {exc}") from exc
        slot.last_progress = time.monotonic()
        ledger.accept(result)
        return 0

    def _lose(self, slot: _Slot, why: str, ledger: EpisodeLedger, key: int, restarts: int) -> int:
        """Kill ``slot``'s actor, replace it (a budget of N per step), re-run its episodes on the others."""
        lost = [ref for ref, (s, _) in self.calls.items() if s is slot]
        orphans = sorted(e for ref in lost for e in self.calls.pop(ref)[1] if e not in ledger.done)
        self.ray.kill(slot.actor, no_restart=True)
        self.stats.workers_lost += 1
        replaced = restarts < len(self.slots)
        if replaced:
            self.stats.replacements += 1
            self._spawn(slot)
        else:
            slot.actor = None
        self.log(
            f"rollout worker {slot.index} {why}: {len(orphans)} episodes re-run on the others"
            + (f"; replaced by {slot.label}" if replaced else "; not replaced (restart budget spent)")
        )
        again = [e for e in orphans if ledger.attempts[e] >= MAX_ATTEMPTS]
        if again:
            raise RuntimeError(f"episodes {again} lost their rollout worker {MAX_ATTEMPTS} times; stopping the step")
        targets = [s for s in self.live() if s is not slot] or self.live()
        if orphans and not targets:
            raise RuntimeError(f"no rollout worker left; episodes {orphans} have none to run on")
        self.stats.episodes_rerun += len(orphans)
        for target, ids in zip(targets, ledger.shard(orphans, len(targets))):
            self._submit(target, ids, ledger, key)
        return int(replaced)

    def close(self) -> None:
        """Stop the actors, and the local cluster when this pool started it."""
        for slot in self.live():
            self.ray.kill(slot.actor, no_restart=True)
            slot.actor = None
        if self.owns_cluster:
            self.ray.shutdown()


def connect(num_workers: int, weights_bytes: int = 0) -> bool:
    """Join Ray: the session already open, else the cluster at ``RAY_ADDRESS`` (``ray start``), else a
    new local one sized for the workers plus one spare CPU for a replacement. True when this call
    opened the session (the pool then closes it)."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], logging_level=logging.WARNING)
    else:
        store = max(2**28, 4 * int(weights_bytes))  # room for a step's weights, the next and results
        ray.init(
            num_cpus=num_workers + 1, include_dashboard=False, object_store_memory=store, logging_level=logging.WARNING
        )
    return True


def start_pool(
    config: TrainConfig, policy_dir: str | Path, model: torch.nn.Module, log: Callable[[str], None] = print
) -> RayRolloutPool:
    """The trainer's entry: ``config.rollout_workers`` workers for ``model``'s architecture."""
    weights_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    pool = RayRolloutPool(config, policy_dir, weights_bytes=weights_bytes, log=log)
    log(f"rollout: {config.rollout_workers} Ray workers ({', '.join(s.label for s in pool.slots)})")
    return pool
