"""EAPO episodes inside TRL's ``GRPOTrainer`` (DESIGN §9, "other trainers"; tested with TRL 1.16.0).

``GRPOTrainer(rollout_func=f)`` calls ``f(prompts, trainer)`` once per generation batch, with this
process's prompts (each already repeated ``num_generations`` times, consecutively), and expects one
``prompt_ids`` / ``completion_ids`` / ``logprobs`` entry per row; the key ``env_mask`` is multiplied
into its loss mask, every other key is forwarded to the reward functions. :class:`EAPORollout` is
that ``f`` for any EAPO env id (``TrainConfig.env_id``; math by default):

* the prompts are problem ids (:func:`eapo_dataset`); the rows of one call run as the episodes of
  ONE vector env built as ``eapo train`` builds it (:func:`agents.run_setup.make_envs`, i.e.
  ``gym.make_vec(env_id, ...)``), so the consults of all rows that end a turn together are one
  batched expert call;
* before each rollout the env's progress clock is set to TRL's ``state.global_step``: p(t) and the
  turn budget follow TRL's optimizer steps over ``state.max_steps`` (schedules left empty, or given
  in shares ``P%``, are read over that horizon; plain counts are TRL optimizer steps);
* policy turns come from the trainer's own weights: through TRL's vLLM (``trainer.vllm_generation``,
  whose weights TRL syncs before calling us) when TRL runs with ``use_vllm``, else with one of our
  engines (``ours``: kept KV cache; ``hf``: ``generate``) on TRL's unwrapped model, with TRL's
  temperature and top-p;
* a completion is the episode after its prompt, token-in/token-out: policy turns as sampled,
  observations (experts block, nudges) tokenized once, and a closing EOS when the env ended the
  episode. ``env_mask`` is 1 on policy tokens and 0 on observation tokens and on the closing EOS,
  so expert and env text never enter TRL's loss. An episode cut by the token budget has no closing
  EOS, so TRL's ``mask_truncated_completions`` drops exactly those (our trainer's overlong filter);
* ``logprobs`` are the policy tokens' sampling log-probs (``log_softmax(logits / T)``, what TRL's
  vLLM importance-sampling correction compares against). On masked tokens they are 0.0, a
  placeholder TRL never reads (it multiplies the log-ratio by the same mask); without vLLM TRL does
  not read them at all (no sampler/learner mismatch to correct);
* the reward is the env's episode reward (verified correctness, consult penalty included), handed
  to TRL by :meth:`EAPORollout.eapo_reward`, which also logs ``eapo/consult_rate``, ``eapo/dose``,
  ``eapo/accuracy``, ``eapo/p_t`` and ``eapo/turn_budget`` through TRL's ``log_metric``.

``trl`` is imported only inside the functions that need it (extra ``trl``).

Example (``examples/trl_grpo.py`` runs it):
    >>> from agents.config import TrainConfig
    >>> from agents.integrations.trl import build_grpo_trainer                       # doctest: +SKIP
    >>> config = TrainConfig(policy="tiny-base", steps=2, group_size=4, prompts_per_step=2, mini_batches=1,
    ...                      ppo_epochs=1, lr=3e-5)
    >>> trainer, rollout = build_grpo_trainer(config, "runs/trl")                     # doctest: +SKIP
    >>> trainer.train()                                                              # doctest: +SKIP
    >>> rollout.last.trajectories[0].loss_mask[:8]                                   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from agents.config import TrainConfig
from agents.rollout import Trajectory
from agents.run_setup import build_engine, make_envs, step_rng
from eapo_env.problems import load_problems

__all__ = [
    "TESTED_TRL_VERSION",
    "EAPORollout",
    "RolloutRecord",
    "build_grpo_trainer",
    "completion_of",
    "eapo_dataset",
    "grpo_config",
]

TESTED_TRL_VERSION = "1.16.0"
ENGINES = ("auto", "vllm", "ours", "hf")


class GRPOTrainerView(Protocol):
    """What the rollout reads of TRL's ``GRPOTrainer`` (TRL objects are ``Any`` at this boundary)."""

    state: Any  # .global_step, .max_steps
    args: Any  # GRPOConfig: temperature, top_p, top_k, min_p, ds3_gather_for_generation
    accelerator: Any  # .device, .process_index, .num_processes, .gather
    model: Any
    model_wrapped: Any
    use_vllm: bool
    num_generations: int
    num_generations_eval: int
    vllm_generation: Any  # TRL's VLLMGeneration; present when use_vllm


@dataclass
class RolloutRecord:
    """One call of the rollout: what TRL was given, and the episodes it came from."""

    step: int  # TRL's state.global_step when the rollout ran (the env's progress step)
    prompts: list[str]  # the problem ids TRL passed
    trajectories: list[Trajectory]
    transcripts: list[list[tuple[str, str]]]  # env.unwrapped.transcript per row
    output: dict[str, list[Any]]  # the dict returned to TRL


def completion_of(traj: Trajectory, eos_id: int | None, pad_id: int) -> tuple[list[int], list[int], list[float]]:
    """``(completion_ids, env_mask, logprobs)`` of one episode (see the module docs).

    A closing ``eos_id`` (mask 0, log-prob 0.0) is appended when the env ended the episode and its
    last token is not already EOS; an episode with no token at all (its prompt filled the budget)
    becomes one masked ``pad_id``, since TRL reads the last id of every completion.
    """
    ids, mask, logprobs = list(traj.token_ids), list(traj.loss_mask), list(traj.logprobs)
    if eos_id is not None and not traj.overlong and (not ids or ids[-1] != eos_id):
        ids, mask, logprobs = ids + [eos_id], mask + [0], logprobs + [0.0]
    if not ids:
        ids, mask, logprobs = [pad_id], [0], [0.0]
    return ids, mask, logprobs


def eapo_dataset(config: TrainConfig, steps: int | None = None) -> Any:
    """A ``datasets.Dataset`` with one column ``prompt`` holding problem ids: ``prompts_per_step`` per
    step for ``steps`` (default ``config.steps``) steps, drawn as ``eapo train`` draws them
    (:func:`agents.run_setup.step_rng`). With ``shuffle_dataset=False`` (:func:`grpo_config`) TRL's
    generation batch ``k`` holds exactly the problems of our trainer's step ``k``."""
    from datasets import Dataset

    source = load_problems(config.problems, seed=config.problems_seed)
    rows = []
    for step in range(config.steps if steps is None else steps):
        draws = step_rng(config.seed, step).integers(len(source), size=config.prompts_per_step)
        rows += [{"prompt": source[int(i)].id} for i in draws]
    return Dataset.from_list(rows)


class EAPORollout:
    """TRL ``rollout_func`` running EAPO episodes (see the module docs).

    Args:
        config: the env side of a :class:`~agents.config.TrainConfig`: ``env_id``, ``problems``,
            ``expert``/``expert_kwargs``, ``consultation``, ``max_experts``, ``max_turns``, the
            acceptance and turn schedules, ``consult_penalty``, ``env_wrappers``, ``max_turn_tokens``,
            ``max_total_tokens``, ``seed``. Its ``steps`` is replaced by TRL's ``max_steps``.
        tokenizer: the policy's tokenizer (prompts are encoded as SFT and ``eapo train`` encode them).
        engine: ``auto`` (TRL's vLLM when ``use_vllm``, else ``config.engine``), ``vllm``, ``ours``, ``hf``.
        expert: an expert object shared by every env (default: ``make_expert(config.expert)``).
        on_rollout: called with each :class:`RolloutRecord` (tests, benchmarks).
    """

    def __init__(
        self,
        config: TrainConfig,
        tokenizer: Any,
        *,
        engine: str = "auto",
        expert: Any = None,
        on_rollout: Callable[[RolloutRecord], None] | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: choose from {ENGINES}")
        self.base_config, self.tokenizer, self.engine, self.expert = config, tokenizer, engine, expert
        self.on_rollout = on_rollout
        self.config: TrainConfig | None = None  # resolved on the first call, over TRL's max_steps
        self.source: Any = None
        self.last: RolloutRecord | None = None
        self._envs: dict[tuple[int, bool], Any] = {}
        self._engines: dict[tuple[int, str], Any] = {}

    @property
    def reward_funcs(self) -> list[Callable[..., list[float]]]:
        """The reward functions to give ``GRPOTrainer``: the env's reward."""
        return [self.eapo_reward]

    def __call__(self, prompts: Sequence[Any], trainer: GRPOTrainerView) -> dict[str, list[Any]]:
        """One generation batch: reset one env per row to its problem, roll out, return TRL's dict."""
        for p in prompts:
            if not isinstance(p, str):
                raise TypeError(f"EAPORollout expects problem ids as prompts (eapo_dataset), got {type(p).__name__}")
        config = self._resolve(trainer)
        # consultation off (evaluation env and prompt): self-exploratory RL, and TRL's own evaluation loop
        eval_mode = not config.consultation or not trainer.model.training
        step = int(trainer.state.global_step)
        envs = self._vector_env(len(prompts), eval_mode)
        envs.set_progress(step)  # p(t) and the turn budget of TRL's step, through every wrapper
        rng = np.random.default_rng([config.seed, step, int(trainer.accelerator.process_index), 0xEA75])
        seeds = rng.integers(2**31 - 1, size=len(prompts)).tolist()
        group = max(1, int(trainer.num_generations if trainer.model.training else trainer.num_generations_eval))
        trajs = self._episodes(
            trainer, envs, seeds, [{"problem_id": p} for p in prompts], [i // group for i in range(len(prompts))],
            key=int(rng.integers(2**62)),
        )  # fmt: skip
        output = self._output(trajs)
        self.last = RolloutRecord(step, list(prompts), trajs, [list(t) for t in envs.transcripts], output)
        if self.on_rollout is not None:
            self.on_rollout(self.last)
        return output

    def eapo_reward(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        eapo_reward: Sequence[float],
        log_metric: Callable[[str, float], None] | None = None,
        **fields: Any,
    ) -> list[float]:
        """TRL reward function: the env's episode reward (forwarded by the rollout as ``eapo_reward``);
        logs the batch's consult rate, dose, accuracy, p(t) and turn budget via TRL's ``log_metric``."""
        if log_metric is not None:
            for name, value in batch_metrics(fields).items():
                log_metric(f"eapo/{name}", value)
        return [float(r) for r in eapo_reward]

    def close(self) -> None:
        """Close the vector envs (and their expert)."""
        for envs in self._envs.values():
            envs.close()
        self._envs.clear()

    # ------------------------------------------------------------------ internals
    def _resolve(self, trainer: GRPOTrainerView) -> TrainConfig:
        if self.config is None:
            horizon = int(getattr(trainer.state, "max_steps", 0) or 0) or self.base_config.steps
            self.config = self.base_config.replace(steps=max(1, horizon))
            self.source = load_problems(self.config.problems, seed=self.config.problems_seed)
        return self.config

    def _vector_env(self, n: int, eval_mode: bool) -> Any:
        """One vector env per (batch size, mode), built once and reset every rollout."""
        key = (n, eval_mode)
        if key not in self._envs:
            assert self.config is not None
            self._envs[key] = make_envs(self.config, n, self.source, expert=self.expert, eval_mode=eval_mode)
        return self._envs[key]

    def _engine_name(self, trainer: GRPOTrainerView) -> str:
        assert self.config is not None
        name = self.engine if self.engine != "auto" else ("vllm" if trainer.use_vllm else self.config.engine)
        if name == "vllm" and not trainer.use_vllm:
            raise ValueError("engine 'vllm' under TRL needs GRPOConfig(use_vllm=True): TRL owns the vLLM instance")
        if name != "vllm" and (int(trainer.args.top_k or 0) > 0 or trainer.args.min_p is not None):
            raise ValueError(f"engine {name!r} samples with temperature and top-p only: set top_k=0 and min_p=None")
        return name

    def _episodes(
        self, trainer: GRPOTrainerView, envs: Any, seeds: list[int], options: list[dict[str, Any]],
        group_ids: list[int], key: int,
    ) -> list[Trajectory]:  # fmt: skip
        name = self._engine_name(trainer)
        assert self.config is not None
        if name == "vllm":
            from agents.integrations.trl_vllm import vllm_episodes

            return vllm_episodes(trainer, envs, self.config, self.tokenizer, seeds, options, group_ids)
        from trl.models import unwrap_model_for_generation

        wrapped = trainer.model_wrapped if trainer.model_wrapped is not None else trainer.model
        gather = bool(getattr(trainer.args, "ds3_gather_for_generation", True))
        with unwrap_model_for_generation(wrapped, trainer.accelerator, gather_deepspeed3_params=gather) as model:
            model = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft: adapters stay in
            engine = self._engine(name, model, trainer)
            was_training = model.training
            model.eval()  # no dropout while sampling
            try:
                with torch.no_grad():
                    return list(engine.rollout(envs, seeds=seeds, options=options, group_ids=group_ids, seed=key))
            finally:
                model.train(was_training)

    def _engine(self, name: str, model: torch.nn.Module, trainer: GRPOTrainerView) -> Any:
        """Our engine on TRL's model (built once per model object), sampling with TRL's settings."""
        key = (id(model), name)
        if key not in self._engines:
            assert self.config is not None
            settings = self.config.replace(engine=name, temperature=float(trainer.args.temperature),
                                           top_p=float(trainer.args.top_p))  # fmt: skip
            self._engines = {key: build_engine(settings, model, self.tokenizer, trainer.accelerator.device)}
        return self._engines[key]

    def _output(self, trajs: Sequence[Trajectory]) -> dict[str, list[Any]]:
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        rows = [completion_of(t, eos, int(pad if pad is not None else 0)) for t in trajs]
        return {
            "prompt_ids": [list(t.prompt_ids) for t in trajs],
            "completion_ids": [ids for ids, _, _ in rows],
            "logprobs": [lps for _, _, lps in rows],
            "env_mask": [mask for _, mask, _ in rows],
            "eapo_reward": [float(t.reward) for t in trajs],
            "eapo_correct": [bool(t.correct) for t in trajs],
            "eapo_consults": [int(t.consults) for t in trajs],
            "eapo_accepted": [sum(int(i.get("accepted", 0)) for i in t.infos) for t in trajs],
            "eapo_p_t": [float(t.reset_info.get("acceptance_prob", math.nan)) for t in trajs],
            "eapo_turn_budget": [float(t.reset_info.get("max_turns", math.nan)) for t in trajs],
            "eapo_overlong": [bool(t.overlong) for t in trajs],
        }


def batch_metrics(fields: dict[str, Any]) -> dict[str, float]:
    """Means over the batch of the per-episode fields :class:`EAPORollout` forwards (NaN-free only)."""
    consults, accepted = fields.get("eapo_consults") or [], fields.get("eapo_accepted") or []
    out: dict[str, float] = {}
    if consults:
        out["consult_rate"] = sum(c > 0 for c in consults) / len(consults)
        out["consults_per_episode"] = sum(consults) / len(consults)
    if accepted:
        out["dose"] = sum(a > 0 for a in accepted) / len(accepted)
    for name in ("correct", "p_t", "turn_budget"):
        values = [float(v) for v in fields.get(f"eapo_{name}") or [] if not math.isnan(float(v))]
        if values:
            out["accuracy" if name == "correct" else name] = sum(values) / len(values)
    return out


def grpo_config(config: TrainConfig, output_dir: str | Path, **overrides: Any) -> Any:
    """TRL's ``GRPOConfig`` matching our learner's settings in ``config`` (``overrides`` win).

    One of our steps (one rollout of ``prompts_per_step x group_size`` episodes, then
    ``mini_batches x ppo_epochs`` AdamW steps) is one TRL generation batch with
    ``steps_per_generation = mini_batches`` and ``num_iterations = ppo_epochs``: TRL then counts
    ``mini_batches x ppo_epochs`` global steps per rollout, and ``max_steps``, the warm-up and
    the schedules' horizon are scaled to match. The loss is DAPO's token-level mean, clipped at
    ``clip_low`` / ``clip_high``; ``kl_coef`` is TRL's ``beta``. Not matched: TRL keeps zero-advantage
    groups in the batch (their tokens count in the normaliser; our dynamic sampling drops them),
    and its warm-up starts at lr 0 (ours at lr / warmup_steps).
    """
    from trl import GRPOConfig

    episodes, updates = config.batch_episodes, config.mini_batches * config.ppo_epochs
    if episodes % config.mini_batches:
        raise ValueError(
            f"prompts_per_step x group_size = {episodes} must divide into {config.mini_batches} mini-batches"
        )
    settings: dict[str, Any] = dict(
        output_dir=str(output_dir), max_steps=config.steps * updates, learning_rate=config.lr,
        lr_scheduler_type="constant_with_warmup", warmup_steps=config.warmup_steps * updates,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, num_generations=config.group_size,
        per_device_train_batch_size=episodes // config.mini_batches, steps_per_generation=config.mini_batches,
        num_iterations=config.ppo_epochs, gradient_accumulation_steps=1, epsilon=config.clip_low,
        epsilon_high=config.clip_high, beta=config.kl_coef, loss_type="dapo", scale_rewards="group",
        mask_truncated_completions=config.overlong_filter, temperature=config.temperature, top_p=config.top_p,
        max_completion_length=config.max_turn_tokens, shuffle_dataset=False, seed=config.seed, logging_steps=1,
        report_to="none", save_strategy="no", disable_tqdm=not config.progress_bar, use_cpu=config.device == "cpu",
    )  # fmt: skip
    settings.update(overrides)
    return GRPOConfig(**settings)


def build_grpo_trainer(
    config: TrainConfig,
    output_dir: str | Path,
    *,
    model: Any = None,
    tokenizer: Any = None,
    engine: str = "auto",
    trainer_cls: Any = None,
    callbacks: Sequence[Any] = (),
    on_rollout: Callable[[RolloutRecord], None] | None = None,
    **overrides: Any,
) -> tuple[Any, EAPORollout]:
    """``(GRPOTrainer, EAPORollout)`` for ``config``: the policy (``config.policy``, e.g. ``tiny-base``,
    unless ``model``/``tokenizer`` are given), :func:`grpo_config` (``overrides`` win),
    :func:`eapo_dataset` over TRL's rollouts and the rollout's reward function. ``trainer_cls``: a
    ``GRPOTrainer`` subclass (default ``GRPOTrainer``)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is flagged experimental in 1.16
    from trl import GRPOTrainer

    if model is None or tokenizer is None:
        from agents.policy import load_policy

        if not config.policy:
            raise ValueError("config.policy is empty: name a policy (e.g. 'tiny-base') or pass model and tokenizer")
        model, tokenizer = load_policy(config.policy, device="cpu" if config.device == "cpu" else "auto")
    args = grpo_config(config, output_dir, **overrides)
    rollout = EAPORollout(config, tokenizer, engine=engine, on_rollout=on_rollout)
    rollouts = -(-int(args.max_steps) // (int(args.steps_per_generation) * int(args.num_iterations)))
    factory: Any = trainer_cls or GRPOTrainer  # TRL's own annotations are narrower than what it accepts
    trainer = factory(
        model=model, reward_funcs=rollout.reward_funcs, args=args, train_dataset=eapo_dataset(config, rollouts),
        processing_class=tokenizer, callbacks=list(callbacks), rollout_func=rollout,
    )  # fmt: skip
    return trainer, rollout
