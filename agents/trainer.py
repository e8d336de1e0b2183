"""The EAPO learner: DAPO-style GRPO over multi-turn rollouts with consultable experts (DESIGN §8).

Read it top to bottom (CleanRL style). One training step:

1. ``set_progress(step)`` on every env: the wrappers set p(t) and the turn budget for this step.
2. Roll out ``prompts_per_step`` problems x ``group_size`` samples with the engine; the samples of
   one problem share a group id. Problem draws, env seeds and the sampler seed are functions of
   ``(seed, step)``, so a resumed run repeats exactly the steps it would have run.
3. Rewards and raw correctness per episode.
4. Dynamic sampling: groups whose correctness is all 0 or all 1 are dropped (zero advantage).
   Overlong filtering: episodes cut by the token budget are masked out of the loss.
5. Group-normalised advantages (over the whole group, before any filtering).
6. PPO-clip loss with decoupled clip (0.20 / 0.28), token-level mean over the policy tokens
   (``Trajectory.loss_mask``: env/expert tokens never contribute), ``mini_batches x ppo_epochs``
   AdamW steps per rollout batch with the ratio against the sampling log-probs, so the clip acts
   (:mod:`agents.update`). Optional k3 KL to the initial policy.
7. Linear warm-up of the learning rate; metrics and the consult-collapse monitor to
   ``metrics.jsonl`` and TensorBoard; checkpoint.

Example:
    >>> from agents.config import TrainConfig                                   # doctest: +SKIP
    >>> result = train(TrainConfig(policy="runs/policy", steps=20, lr=1e-4), "runs/eapo")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents import checkpoint as ckpt_io
from agents import distributed, guidance
from agents.config import TrainConfig
from agents.metrics import CollapseMonitor, MetricsLogger, episode_metrics, read_metrics
from agents.rollout import RolloutBatch
from agents.run_setup import (
    apply_lora,
    build_engine,
    export_policy,
    make_envs,
    make_optimizer,
    pick_device,
    resolve_policy,
    restore,
    seed_everything,
    step_rng,
)
from agents.update import correct_mismatch, ppo_update, select_and_score
from eapo_env.problems import load_problems
from eapo_env.schedules import Schedule

__all__ = ["TrainResult", "build_engine", "make_envs", "resolve_policy", "step_rng", "train"]

FINAL_POLICY_DIR = "final_policy"
SUMMARY_FILE = "train_summary.json"


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    out_dir: Path
    policy_dir: Path  # the trained policy, a loadable HF directory
    start_step: int  # first step run by this call (> 0 after a resume)
    steps: int  # completed steps in total
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase
    last: dict[str, Any] = field(default_factory=dict)  # the last metrics record


def step_record(
    step: int,
    trajs: list[Any],
    keep_group: torch.Tensor,
    keep: torch.Tensor,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    stats: dict[str, float],
) -> dict[str, Any]:
    """One step's metrics line: episode behaviour, filtering, advantages and update statistics.

    Under torchrun it describes the whole step's batch: the episode metrics are computed on rank 0 over
    every rank's trajectories (another rank's line describes its own share; only rank 0 writes), the
    filtering and advantage figures are sums over the ranks, and ``stats`` come averaged over the ranks
    from ``ppo_update``. Timings and CPU shares added by :func:`train` are rank 0's own."""
    response_tokens = float(sum(len(t.token_ids) for t in trajs))
    n, groups_kept, kept, tokens, adv_abs, response = distributed.sum_over_ranks(
        [len(trajs), keep_group.sum(), keep.sum(), loss_mask.sum(), advantages.abs().sum(), response_tokens]
    )
    return {
        "step": step,
        **episode_metrics(distributed.gather_to_main(trajs)),
        "kept_group_frac": groups_kept / n,  # per episode = per group (equal sizes)
        "kept_episode_frac": kept / n,
        "masked_token_frac": 1.0 - tokens / max(1.0, response),
        "loss_tokens": int(tokens),
        "adv_abs_mean": adv_abs / n,
        **stats,
    }


# ---------------------------------------------------------------------------------- the loop


@dataclass
class TrainingRun:
    """Everything one run holds between steps (built once by :func:`start_run`)."""

    config: TrainConfig
    out: Path
    device: torch.device
    policy_dir: Path
    module: torch.nn.Module  # what the optimizer trains (the peft model under LoRA)
    rollout_model: torch.nn.Module  # what the engine runs
    ref_model: torch.nn.Module | None  # frozen initial policy for the k3 KL (None: KL off)
    tokenizer: Any
    pad_id: int
    source: Any  # the training problem source
    envs: Any  # one vector env holding every episode of a step (None with Ray workers: they own theirs)
    engine: Any  # the rollout engine (None with Ray workers)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    acceptance: Schedule
    turns: Schedule
    start_step: int
    pool: Any = None  # the Ray rollout workers (config.rollout_workers > 0), else None
    learner: torch.nn.Module | None = None  # what ppo_update trains: DDP wrapper / FSDP2 copy under torchrun


def start_run(config: TrainConfig, out: Path, resume: bool, log: Callable[[str], None]) -> TrainingRun:
    """Load the policy, build envs, engine and optimizer, and resume from the newest checkpoint."""
    from agents.policy import load_policy

    if config.threads:
        torch.set_num_threads(config.threads)
    device = distributed.rank_device(pick_device(config.device))
    seed_everything(config.seed)
    with distributed.rank_zero_first():  # rank 0 builds a missing policy, the others then read it
        policy_dir = resolve_policy(config, out, log)
    model, tokenizer = load_policy(policy_dir, device=device)
    module, rollout_model = apply_lora(model, config)
    ref_model = copy.deepcopy(rollout_model).eval().requires_grad_(False) if config.kl_coef > 0 else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    learner = distributed.wrap_for_training(module, config.distributed, device)  # DDP/FSDP2 under torchrun
    if resume and distributed.is_sharded(learner):
        raise distributed.LaunchError("resume under distributed = 'fsdp2' is not supported (see agents.distributed)")
    optimizer, scheduler = make_optimizer(learner, config)
    with distributed.rank_zero_first():  # a fresh start's cleanup runs once, before any rank reads
        start_step, config = restore(
            out, resume, module, optimizer, scheduler, config, log
        )  # checkpoint's schedules win
    source = load_problems(config.problems, seed=config.problems_seed)
    pool = start_workers(config, policy_dir, rollout_model, log) if config.rollout_workers else None
    local = pool is None  # with Ray workers the actors own the envs and engines: none are built here
    episodes = len(distributed.rank_groups(config.prompts_per_step)) * config.group_size
    return TrainingRun(
        config=config, out=out, device=device, policy_dir=policy_dir, module=module, rollout_model=rollout_model,
        ref_model=ref_model, tokenizer=tokenizer, pad_id=pad_id, source=source,
        envs=make_envs(config, episodes, source) if local else None,
        engine=build_engine(config, rollout_model, tokenizer, device) if local else None,
        optimizer=optimizer, scheduler=scheduler, acceptance=config.acceptance(),
        turns=config.turns(), start_step=start_step, pool=pool, learner=learner,
    )  # fmt: skip


def start_workers(config: TrainConfig, policy_dir: Path, model: torch.nn.Module, log: Callable[[str], None]) -> Any:
    """``config.rollout_workers`` Ray actors (imported only then: Ray is an optional extra)."""
    from agents.rollout.ray_workers import start_pool

    return start_pool(config, policy_dir, model, log)


def rollout_step(run: TrainingRun, step: int, rng: np.random.Generator) -> list[Any]:
    """Steps 1-2 of a training step on the run's envs and engine (see :func:`rollout_episodes`)."""
    run.rollout_model.eval()
    if run.pool is not None:  # Ray workers: this step's weights out once, then the same draws, sharded
        run.pool.push_weights(run.rollout_model, version=step)
        return rollout_episodes(run.config, run.source, run.pool, run.pool, step, rng)
    return rollout_episodes(run.config, run.source, run.envs, run.engine, step, rng)


def rollout_episodes(
    config: TrainConfig, source: Any, envs: Any, engine: Any, step: int, rng: np.random.Generator
) -> list[Any]:
    """Steps 1-2: the progress clock, then P problems x G samples (group g = problem g), drawn from
    ``rng`` (the step's :func:`step_rng`). What :func:`train` runs every step; the benchmarks call it
    with envs and an engine of their own, so they measure this path and no copy of it.

    Under torchrun the draws are made over the whole batch on every rank, then each rank rolls out
    its whole groups (:func:`agents.distributed.rank_groups`): the same problems, groups, env seeds
    and schedule values at any world size, and with an engine whose draws are keyed by episode id
    (ours) the same sampling draws too (other engines get a rank-mixed key); ``envs`` holds this
    rank's episodes only."""
    G, P = config.group_size, config.prompts_per_step
    envs.set_progress(step)  # p(t) and the turn budget of this step, through every wrapper
    problem_idx = rng.integers(len(source), size=P).tolist()
    options = [{"problem_index": problem_idx[g]} for g in range(P) for _ in range(G)]
    group_ids = [g for g in range(P) for _ in range(G)]
    env_seeds = rng.integers(2**31 - 1, size=P * G).tolist()
    key = int(rng.integers(2**62))
    groups = distributed.rank_groups(P)
    mine = slice(groups.start * G, groups.stop * G)  # every episode in a plain run
    shard = {"seeds": env_seeds[mine], "options": options[mine], "group_ids": group_ids[mine]}
    if distributed.world_size() == 1:
        return engine.rollout(envs, **shard, seed=key)
    if getattr(engine, "draws_keyed_by_id", False):  # draws keyed by the episode's id in the whole step
        return engine.rollout(envs, **shard, seed=key, draw_ids=list(range(mine.start, mine.stop)))
    return engine.rollout(envs, **shard, seed=distributed.rank_sampler_key(key))


def learn_step(run: TrainingRun, step: int, trajs: list[Any], rng: np.random.Generator) -> dict[str, Any]:
    """Steps 3-7 on one rollout batch; returns the step's metrics line (without timings)."""
    correct = torch.tensor([t.correct for t in trajs], dtype=torch.bool)  # the env's info["correct"]
    guided = guidance.expert_members(
        trajs, correct, run.config.expert_in_group, run.source, run.tokenizer, run.rollout_model,
        run.config.temperature, run.config.max_turn_tokens,
    )  # fmt: skip
    batch = RolloutBatch.from_trajectories([*trajs, *guided], pad_id=run.pad_id)
    correct = torch.cat([correct, torch.tensor([m.correct for m in guided], dtype=torch.bool)])
    keep_group, keep, advantages, loss_mask = select_and_score(batch, correct, run.config)
    lr_now = run.optimizer.param_groups[0]["lr"]
    device_batch, mismatch = correct_mismatch(run.module, batch.to(run.device), run.config)  # engine vs learner
    mismatch = distributed.weighted_over_ranks(mismatch, float(batch.loss_mask.sum()), ("mismatch_ratio_max",))
    stats = ppo_update(
        run.learner or run.module, device_batch, advantages.to(run.device), loss_mask.to(run.device),
        run.config, run.optimizer, run.ref_model, generator=torch.Generator().manual_seed(int(rng.integers(2**62))),
        shard=distributed.RowShard.gather(len(batch)),
    )  # fmt: skip
    distributed.sync_full_weights(run.learner, run.module)  # FSDP2: the engines' whole weights
    with warnings.catch_warnings():  # a skipped update (no kept group) still advances the LR clock
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        run.scheduler.step()
    n = len(trajs)  # the episode metrics describe the on-policy episodes; the loss saw the guided ones too
    record = step_record(step, trajs, keep_group[:n], keep[:n], advantages[:n], loss_mask[:n], {**stats, **mismatch})
    if guided:
        record["expert_members"] = len(guided)
    record.update({"p_schedule": run.acceptance(step), "turn_schedule": run.turns(step), "lr": lr_now})
    if not run.config.consultation:
        record["p_t"] = 0.0  # consultation disabled: no expert can answer
    return record


def rollout_env_cpu(engine: Any, cpu0: float, main0: float) -> dict[str, float]:
    """What the env side of the rollout just finished cost in CPU seconds (DESIGN §7):
    ``time_env_cpu_s``, this thread inside the vector env's calls (env + wrappers + verifier; engines
    without ``stats`` report 0), and ``time_other_threads_cpu_s``, every other thread of the process
    since ``cpu0``/``main0`` (the expert client's event loop; an upper bound: it counts whatever else
    the process runs, e.g. a TensorBoard writer)."""
    main_cpu = time.thread_time() - main0
    other = max(0.0, (time.process_time() - cpu0) - main_cpu)
    stats = getattr(engine, "stats", None)
    return {"time_env_cpu_s": float(getattr(stats, "env_cpu_seconds", 0.0)), "time_other_threads_cpu_s": other}


def save_if_due(run: TrainingRun, done: int) -> bool:
    """Checkpoint after ``done`` steps when the cadence (or the last step) says so."""
    config = run.config
    if done % config.checkpoint_every and done != config.steps:
        return False
    ckpt_io.save_checkpoint(
        run.out, done, run.module, run.optimizer, run.scheduler,
        {
            "config": config.to_dict(),
            "schedules": {"acceptance": run.acceptance.to_dict(), "turns": run.turns.to_dict()},
            "schedule_values": {"p_t": run.acceptance(done), "turn_budget": run.turns(done)},
            "policy_dir": str(run.policy_dir),
        },
        keep=config.keep_checkpoints, tokenizer=run.tokenizer,  # the checkpoint is also a policy directory
    )  # fmt: skip
    return True


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    log: Callable[[str], None] = print,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Run (or resume) RL training; writes metrics, checkpoints and ``final_policy/`` under ``out_dir``.

    Args:
        config: the run's :class:`TrainConfig` (``method`` eapo or self_explore; ``consultation``
            decides which env is used).
        out_dir: the run directory.
        resume: continue from the newest checkpoint in ``out_dir`` (a fresh start if there is none).
        on_step: called after each step with ``(step, record)`` (tests, notebooks).

    Under torchrun (the process group joined by :func:`agents.distributed.session`) every rank runs
    this loop on its share of each step; rank 0 alone logs and writes ``config.json``, metrics,
    checkpoints, ``final_policy/`` and the summary, which records every rank's parameter digest (the
    run fails if the ranks end with different weights).
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bars in the run log
    t_start = time.perf_counter()
    distributed.check_same_config(config.dumps())  # also: torchrun without a process group is an error
    main = distributed.is_main()
    log = log if main else distributed.silent
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = start_run(config, out, resume, log)
    config, start_step = run.config, run.start_step
    if main:
        (out / "config.json").write_text(config.dumps() + "\n")
    logger = MetricsLogger(out, tensorboard=config.tensorboard, start_step=start_step) if main else None
    bar = None
    if config.progress_bar and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start_step, desc="eapo", unit="step", dynamic_ncols=True)
    seconds = {"setup": time.perf_counter() - t_start, "rollout": 0.0, "train": 0.0, "checkpoint": 0.0}
    record: dict[str, Any] = {}
    monitor = CollapseMonitor()
    for earlier in read_metrics(out) if start_step else []:  # a resumed run keeps the monitor's window
        monitor.update(earlier, int(earlier["step"]), config.steps)
    for step in range(start_step, config.steps):
        rng = step_rng(config.seed, step)  # problem draws, env seeds, sampler and mini-batch order
        t0, cpu0, main0 = time.perf_counter(), time.process_time(), time.thread_time()
        trajs = rollout_step(run, step, rng)
        t1 = time.perf_counter()
        env_cpu = rollout_env_cpu(run.engine, cpu0, main0)
        record = learn_step(run, step, trajs, rng)
        if hasattr(run.engine, "push_weights"):  # engine 'vllm': the new weights out, checked (raises on failure)
            record.update(run.engine.push_weights(run.rollout_model).metrics())
        t2 = time.perf_counter()
        seconds["rollout"] += t1 - t0
        seconds["train"] += t2 - t1
        record.update(
            time_rollout_s=t1 - t0,
            time_train_s=t2 - t1,
            tokens_per_s_rollout=record["response_tokens"] * record["episodes"] / max(t1 - t0, 1e-9),
            **env_cpu,
            env_cpu_share=sum(env_cpu.values()) / max(t1 - t0, 1e-9),
        )
        signals = monitor.update(record, step, config.steps)  # the consult-collapse monitor
        record["collapse_consult_rising"] = int(signals.consult_rising)
        record["collapse_unconsulted_lag"] = int(signals.unconsulted_lag)
        for message in monitor.new_warnings:
            log(f"WARNING {message}")
        if logger is not None:
            logger.log(record)  # before the checkpoint, so a resume truncates what the checkpoint lacks
        if on_step is not None:
            on_step(step, record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(acc=f"{record['accuracy']:.2f}", consult=f"{record['consult_rate']:.2f}",
                            p=f"{record['p_t']:.2f}", loss=f"{record['loss']:.3f}")  # fmt: skip
        if main and save_if_due(run, step + 1):
            seconds["checkpoint"] += time.perf_counter() - t2
    if bar is not None:
        bar.close()
    if logger is not None:
        logger.close()
    if run.envs is not None:
        run.envs.close()
    if run.pool is not None:
        run.pool.close()
    digests = distributed.digests_over_ranks(run.module)  # an error if the ranks' weights differ
    final = out / FINAL_POLICY_DIR
    if main:
        final = export_policy(run.module, run.tokenizer, final, lora=bool(config.lora_r), source=run.policy_dir)
    seconds["total"] = time.perf_counter() - t_start
    summary = {"steps": config.steps, "start_step": start_step, "seconds": seconds, "policy_dir": str(final)}
    summary["param_sha256_per_rank"] = digests
    if main:
        (out / SUMMARY_FILE).write_text(json.dumps({**summary, "last": record}, indent=2, default=str) + "\n")
    return TrainResult(out, final, start_step, config.steps, seconds, record)
