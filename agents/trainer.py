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
import functools
import json
import random
import re
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import eapo_env
from agents import checkpoint as ckpt_io
from agents.config import TrainConfig
from agents.metrics import CollapseMonitor, MetricsLogger, episode_metrics, read_metrics
from agents.rollout import RolloutBatch, make_engine
from agents.update import ppo_update, select_and_score
from eapo_env.problems import load_problems
from eapo_env.schedules import parse_schedule

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


# ---------------------------------------------------------------------------------- set-up helpers


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_policy(config: TrainConfig, out_dir: Path, log: Callable[[str], None] = print) -> Path:
    """The policy directory: ``config.policy`` (a shipped name such as ``tiny-base`` resolved to its
    directory), or one built into ``<out>/policy`` (reused if there)."""
    from agents.policy import build_policy, read_policy_info, resolve_policy_path

    if config.policy:
        return Path(resolve_policy_path(config.policy))

    target = out_dir / "policy"
    if read_policy_info(target) is None:
        log(f"building a {config.policy_size} policy into {target}")
        build_policy(
            target,
            config.policy_size,
            None if config.policy_sft_steps < 0 else config.policy_sft_steps,
            seed=config.seed,
            threads=config.threads or None,
            verbose=False,
        )
    return target


def make_envs(config: TrainConfig, n: int, problems: Any, expert: Any = None, eval_mode: bool | None = None) -> Any:
    """One vector env holding the ``n`` episodes of a step (DESIGN §7), one expert object for all.

    ``gym.make_vec`` of ``EAPO-Math-v0`` with the acceptance and turn schedules (training with
    consultation), or of ``EAPO-Math-Eval-v0`` (self-exploratory RL, ``consultation = false``, and
    evaluation); ``config.env_wrappers`` (``"module:Class"``) wrap every env. Each group of turns the
    engine submits is one batched expert call.
    """
    import importlib

    from eapo_env.experts import make_expert

    wrappers = []
    for path in config.env_wrappers:
        module, colon, name = path.partition(":")
        if not (module and colon and name):
            raise ValueError(f"config env_wrappers: {path!r} is not an import path 'module:Class'")
        wrappers.append(getattr(importlib.import_module(module), name))
    eval_mode = (not config.consultation) if eval_mode is None else eval_mode
    expert = expert if expert is not None else make_expert(config.expert, **config.expert_kwargs)
    kwargs: dict[str, Any] = dict(
        problems=problems, expert=expert, max_experts=config.max_experts, max_turns=config.max_turns
    )
    if eval_mode:
        env_id = eapo_env.EVAL_ID
        kwargs["turn_schedule"] = config.turn_schedule
    else:
        env_id = eapo_env.TRAIN_ID
        kwargs.update(
            acceptance_schedule=config.acceptance_schedule,
            turn_schedule=config.turn_schedule,
            consult_penalty=config.consult_penalty,
        )
    return gym.make_vec(env_id, num_envs=n, env_wrappers=wrappers, **kwargs)


def build_engine(
    config: TrainConfig, model: torch.nn.Module, tokenizer: Any, device: torch.device, temperature: float | None = None
):
    """The rollout engine, encoding prompts exactly as SFT did (chat template) and observations once."""
    from agents.policy.tokenizer import encode_prompt, encode_segment

    return make_engine(
        config.engine,
        model,
        tokenizer,
        max_turn_tokens=config.max_turn_tokens,
        max_total_tokens=config.max_total_tokens,
        temperature=config.temperature if temperature is None else temperature,
        top_p=config.top_p,
        device=device,
        seed=config.seed,
        encode_prompt=functools.partial(encode_prompt, tokenizer),
        encode_observation=functools.partial(encode_segment, tokenizer),
    )


def apply_lora(model: torch.nn.Module, config: TrainConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(trained_module, rollout_model)``: with LoRA, the peft model and the LoRA-injected causal LM
    inside it (what the engines run); without, the model twice."""
    if not config.lora_r:
        return model, model
    from peft import LoraConfig, get_peft_model

    from agents.sft import LORA_TARGETS

    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha or 2 * config.lora_r,
            lora_dropout=0.0,
            target_modules=list(LORA_TARGETS),
            task_type="CAUSAL_LM",
        ),
    )
    return peft_model, peft_model.base_model.model


def make_optimizer(module: torch.nn.Module, config: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over the trainable parameters, and its linear warm-up (stepped once per training step)."""
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warmup = config.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    return optimizer, scheduler


def restore(
    out: Path,
    resume: bool,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    config: TrainConfig,
    log: Callable[[str], None],
) -> tuple[int, TrainConfig]:
    """``(start_step, config)``: with ``resume``, load the newest checkpoint into ``module``,
    ``optimizer`` and ``scheduler`` (the returned config carries the checkpoint's schedules); a fresh
    start removes the checkpoints of an earlier run in ``out``."""
    latest = ckpt_io.latest_checkpoint(out) if resume else None
    if latest is None:
        if resume:
            log(f"resume: no checkpoint in {out}; starting from step 0")
        if ckpt_io.list_checkpoints(out):
            log(f"fresh start in {out}: removing the checkpoints of an earlier run (use --resume to continue it)")
            for old in ckpt_io.list_checkpoints(out):
                shutil.rmtree(old, ignore_errors=True)
        return 0, config
    state = ckpt_io.load_checkpoint(latest, module, optimizer, scheduler)
    acceptance = parse_schedule(state["schedules"]["acceptance"]["spec"])
    turns = parse_schedule(state["schedules"]["turns"]["spec"])
    if (acceptance, turns) != (parse_schedule(config.acceptance_schedule), parse_schedule(config.turn_schedule)):
        log(f"resume: using the checkpoint's schedules ({acceptance}, {turns}), not the config's")
        config = config.replace(acceptance_schedule=str(acceptance), turn_schedule=str(turns))
    log(f"resumed from {latest} at step {int(state['step'])}")
    return int(state["step"]), config


def step_record(
    step: int,
    trajs: list[Any],
    keep_group: torch.Tensor,
    keep: torch.Tensor,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    stats: dict[str, float],
) -> dict[str, Any]:
    """One step's metrics line: episode behaviour, filtering, advantages and update statistics."""
    response_tokens = float(sum(len(t.token_ids) for t in trajs))
    return {
        "step": step,
        **episode_metrics(trajs),
        "kept_group_frac": float(keep_group.float().mean()),  # per episode = per group (equal sizes)
        "kept_episode_frac": float(keep.float().mean()),
        "masked_token_frac": 1.0 - float(loss_mask.sum()) / max(1.0, response_tokens),
        "loss_tokens": int(loss_mask.sum()),
        "adv_abs_mean": float(advantages.abs().mean()),
        **stats,
    }


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The RNG of one step's problem draws and env seeds: a pure function of (seed, step)."""
    return np.random.default_rng([seed, step, 0xEA90])


def export_policy(module: torch.nn.Module, tokenizer: Any, out: Path, lora: bool) -> Path:
    """Save a loadable HF policy directory (LoRA adapters merged into a copy)."""
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(module).merge_and_unload() if lora else module
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------- the loop


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
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bars in the run log
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    seed_everything(config.seed)

    # --- policy, optional LoRA, optional frozen reference for the KL term
    from agents.policy import load_policy

    policy_dir = resolve_policy(config, out, log)
    model, tokenizer = load_policy(policy_dir, device=device)
    module, rollout_model = apply_lora(model, config)
    ref_model = None
    if config.kl_coef > 0:
        ref_model = copy.deepcopy(rollout_model).eval().requires_grad_(False)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    # --- envs (one vector env: every episode of a step) and the rollout engine
    source = load_problems(config.problems, seed=config.problems_seed)
    envs = make_envs(config, config.batch_episodes, source)
    engine = build_engine(config, rollout_model, tokenizer, device)

    # --- optimizer; resume (model, optimizer, scheduler, schedules, step) from the newest checkpoint
    optimizer, scheduler = make_optimizer(module, config)
    start_step, restored = restore(out, resume, module, optimizer, scheduler, config, log)
    if restored != config:  # the checkpoint's schedules win over the config's
        config = restored
        envs = make_envs(config, config.batch_episodes, source)
    acceptance = parse_schedule(config.acceptance_schedule)
    turns = parse_schedule(config.turn_schedule)
    (out / "config.json").write_text(config.dumps() + "\n")
    logger = MetricsLogger(out, tensorboard=config.tensorboard, start_step=start_step)

    bar = None
    if config.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start_step, desc="eapo", unit="step", dynamic_ncols=True)
    seconds = {"setup": time.perf_counter() - t_start, "rollout": 0.0, "train": 0.0, "checkpoint": 0.0}
    record: dict[str, Any] = {}
    monitor = CollapseMonitor()
    for earlier in read_metrics(out) if start_step else []:  # a resumed run keeps the monitor's window
        monitor.update(earlier, int(earlier["step"]), config.steps)
    G, P = config.group_size, config.prompts_per_step
    for step in range(start_step, config.steps):
        # 1) the progress clock: p(t) and the turn budget for this step
        envs.set_progress(step)

        # 2) rollouts: P problems x G samples, group g = problem g
        t0 = time.perf_counter()
        rng = step_rng(config.seed, step)
        problem_idx = rng.integers(len(source), size=P).tolist()
        options = [{"problem_index": problem_idx[g]} for g in range(P) for _ in range(G)]
        group_ids = [g for g in range(P) for _ in range(G)]
        env_seeds = rng.integers(2**31 - 1, size=P * G).tolist()
        rollout_model.eval()
        trajs = engine.rollout(
            envs, seeds=env_seeds, options=options, group_ids=group_ids, seed=int(rng.integers(2**62))
        )
        t_rollout = time.perf_counter() - t0

        # 3) rewards and raw correctness
        t1 = time.perf_counter()
        batch = RolloutBatch.from_trajectories(trajs, pad_id=pad_id)
        correct = torch.tensor([t.correct for t in trajs], dtype=torch.bool)  # the env's info["correct"]

        # 4-5) dynamic sampling + overlong filtering, group-relative advantages
        keep_group, keep, advantages, loss_mask = select_and_score(batch, correct, config)

        # 6-7) PPO-clip update over the kept episodes' policy tokens
        lr_now = optimizer.param_groups[0]["lr"]
        batch = batch.to(device)
        stats = ppo_update(
            module,
            batch,
            advantages.to(device),
            loss_mask.to(device),
            config,
            optimizer,
            ref_model,
            generator=torch.Generator().manual_seed(int(rng.integers(2**62))),
        )
        with warnings.catch_warnings():  # a skipped update (no kept group) still advances the LR clock
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            scheduler.step()
        t_train = time.perf_counter() - t1
        seconds["rollout"] += t_rollout
        seconds["train"] += t_train

        # metrics, and the consult-collapse monitor beside them
        record = step_record(step, trajs, keep_group, keep, advantages, loss_mask, stats)
        record.update(
            {
                "p_schedule": acceptance(step),
                "turn_schedule": turns(step),
                "lr": lr_now,
                "time_rollout_s": t_rollout,
                "time_train_s": t_train,
                "tokens_per_s_rollout": record["response_tokens"] * len(trajs) / max(t_rollout, 1e-9),
            }
        )
        if not config.consultation:
            record["p_t"] = 0.0  # consultation disabled: no expert can answer
        signals = monitor.update(record, step, config.steps)
        record["collapse_consult_rising"] = int(signals.consult_rising)
        record["collapse_unconsulted_lag"] = int(signals.unconsulted_lag)
        for message in monitor.new_warnings:
            log(f"WARNING {message}")
        logger.log(record)
        if on_step is not None:
            on_step(step, record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                acc=f"{record['accuracy']:.2f}",
                consult=f"{record['consult_rate']:.2f}",
                p=f"{record['p_t']:.2f}",
                loss=f"{record['loss']:.3f}",
            )

        # checkpoint (after the metrics line, so a resume truncates what the checkpoint lacks)
        done = step + 1
        if done % config.checkpoint_every == 0 or done == config.steps:
            t2 = time.perf_counter()
            ckpt_io.save_checkpoint(
                out,
                done,
                module,
                optimizer,
                scheduler,
                {
                    "config": config.to_dict(),
                    "schedules": {"acceptance": acceptance.to_dict(), "turns": turns.to_dict()},
                    "schedule_values": {"p_t": acceptance(done), "turn_budget": turns(done)},
                    "policy_dir": str(policy_dir),
                },
                keep=config.keep_checkpoints,
            )
            seconds["checkpoint"] += time.perf_counter() - t2
    if bar is not None:
        bar.close()
    logger.close()
    envs.close()

    final = export_policy(module, tokenizer, out / FINAL_POLICY_DIR, lora=bool(config.lora_r))
    seconds["total"] = time.perf_counter() - t_start
    summary = {
        "steps": config.steps,
        "start_step": start_step,
        "seconds": seconds,
        "policy_dir": str(final),
        "last": record,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return TrainResult(
        out_dir=out, policy_dir=final, start_step=start_step, steps=config.steps, seconds=seconds, last=record
    )
