"""The pieces a training run is assembled from: device, seeds, policy, envs, engine, optimizer, resume.

:func:`agents.trainer.train` calls them in order; baselines and benchmarks call them to build exactly
what ``eapo train`` builds (e.g. ``make_envs`` + ``build_engine`` for one training step's rollout).

Example:
    >>> from agents.config import TrainConfig
    >>> from agents.run_setup import step_rng
    >>> step_rng(0, 3).integers(10) == step_rng(0, 3).integers(10)   # a pure function of (seed, step)
    True
"""

from __future__ import annotations

import functools
import importlib
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

import eapo_env
from agents import checkpoint as ckpt_io
from agents.config import TrainConfig
from agents.device import pick_device as pick_device  # re-exported: the one device rule (agents.device)
from agents.rollout import make_engine
from eapo_env.schedules import parse_schedule

if TYPE_CHECKING:
    from agents.rollout import HFRolloutEngine, RolloutEngine
    from agents.rollout.vllm_engine import VLLMRolloutEngine


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
        env_id = config.env_id or eapo_env.EVAL_ID
        kwargs["turn_schedule"] = config.turns()
        if config.env_id:
            kwargs["eval_mode"] = True
    else:
        env_id = config.env_id or eapo_env.TRAIN_ID
        kwargs.update(
            acceptance_schedule=config.acceptance(),
            turn_schedule=config.turns(),
            consult_penalty=config.consult_penalty,
        )
    return gym.make_vec(env_id, num_envs=n, env_wrappers=wrappers, **kwargs)


def build_engine(
    config: TrainConfig, model: torch.nn.Module, tokenizer: Any, device: torch.device, temperature: float | None = None
) -> RolloutEngine | HFRolloutEngine | VLLMRolloutEngine:
    """The rollout engine, encoding prompts exactly as SFT did (chat template) and observations once.

    ``engine = "vllm"``: a colocated ``vllm.LLM`` or a remote server (``config.vllm_mode``) with the
    weight push the trainer calls after every update (:func:`agents.rollout.vllm_engine.build_training_engine`).
    """
    from agents.policy.tokenizer import encode_prompt, encode_segment

    if config.engine == "vllm":
        from agents.rollout.vllm_engine import build_training_engine

        return build_training_engine(
            config, model, tokenizer, config.temperature if temperature is None else temperature,
            encode_prompt=functools.partial(encode_prompt, tokenizer),
            encode_observation=functools.partial(encode_segment, tokenizer),
        )  # fmt: skip
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
    from agents.sft import add_lora_adapters  # the one LoRA set-up, shared with SFT

    peft_model = add_lora_adapters(model, config.lora_r, config.lora_alpha or None)
    return peft_model, peft_model.get_base_model()  # LoRA: ``base_model.model``, the causal LM with adapters injected


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
    if (acceptance, turns) != (config.acceptance(), config.turns()):
        log(f"resume: using the checkpoint's schedules ({acceptance}, {turns}), not the config's")
        config = config.replace(acceptance_schedule=str(acceptance), turn_schedule=str(turns))
    log(f"resumed from {latest} at step {int(state['step'])}")
    return int(state["step"]), config


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The RNG of one step's problem draws and env seeds: a pure function of (seed, step)."""
    return np.random.default_rng([seed, step, 0xEA90])


def export_policy(
    module: torch.nn.Module, tokenizer: Any, out: Path, lora: bool, source: str | Path | None = None
) -> Path:
    """Save a loadable policy directory (LoRA adapters merged into a copy) through the one writer,
    :func:`agents.policy.directory.write_policy_dir` (``eapo_policy.json`` from ``source`` included)."""
    from agents.policy.directory import write_policy_dir

    details = {"lora_merged": bool(lora)}
    return write_policy_dir(out, module, tokenizer, written_by="train", source=source, details=details)
