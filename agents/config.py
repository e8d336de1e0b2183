"""``TrainConfig``: every knob of a training run, in one typed dataclass (TRL ``GRPOConfig`` style).

Each field says what it trades off. A config is loaded from a flat TOML file (one optional
``[expert_kwargs]`` table); unknown keys are an error that names the closest known key. The config
is saved as JSON next to every checkpoint (``to_dict``) and read back with ``from_dict``.

Example:
    >>> cfg = TrainConfig(steps=20, group_size=4)
    >>> str(cfg.acceptance())                       # empty field: annealing over the first half
    'linear:1.0:0.0:10'
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from agents.config_io import coerce_value as _coerce
from agents.config_io import read_toml
from agents.distributed import STRATEGIES
from agents.eval_config import EvalConfig
from agents.methods import METHODS  # the one registry (names here, runners in agents.baselines)
from agents.rollout import ENGINES
from eapo_env.schedules import Schedule, parse_schedule


@dataclass
class TrainConfig:
    """One training (or baseline) run.

    Schedules are strings in the grammar of :func:`eapo_env.schedules.parse_schedule`; an empty
    schedule means "the default over this run's ``steps``", resolved where used (:meth:`acceptance`,
    :meth:`turns`), so ``replace(steps=...)`` or ``--set steps=N`` rescales a derived one.
    """

    # ------------------------------------------------------------------ what to run
    method: str = "eapo"
    """``eapo`` (RL with consultation), ``self_explore`` (same learner, consultation off), ``base``
    (evaluate the policy only), ``distill_sft`` (SFT on expert trajectories, then evaluate),
    ``expert_workflow`` (evaluation-time: expert replies given in the prompt; no training)."""

    # ------------------------------------------------------------------ policy
    policy: str = ""
    """Policy: a shipped name (``tiny-base``: the packaged tiny base, ``agents/assets/tiny_base``), a
    directory (``build_policy`` output or any local HF causal LM). Empty: build one into
    ``<out>/policy`` with ``policy_size`` / ``policy_sft_steps`` (costs SFT time up front)."""
    policy_size: str = "tiny"
    """Size when the policy is built: ``tiny`` (~1M params, minutes on CPU) or ``small`` (~15M)."""
    policy_sft_steps: int = -1
    """SFT warm-start steps when the policy is built (-1: ``build_policy``'s default). More steps:
    better protocol compliance before RL, more time."""
    lora_r: int = 0
    """LoRA rank (peft); 0 trains every weight. LoRA saves optimizer memory on big models; on the
    tiny model it only slows learning."""
    lora_alpha: int = 0
    """LoRA alpha; 0 means ``2 * lora_r``."""

    # ------------------------------------------------------------------ problems
    problems: str = "generated:arithmetic:1"
    """Training problem spec (``eapo_env.problems.load_problems``)."""
    problems_seed: int = 0
    """Seed of generated training problems (``build_policy`` SFTs on the first items of seed 0)."""
    eval_problems: str = "generated:arithmetic:1"
    """Held-out evaluation spec."""
    eval_problems_seed: int = 1
    """Seed of generated held-out problems: a different seed than training gives different draws
    (small families can still repeat a few questions)."""
    eval_num_problems: int = 64
    """Held-out problems evaluated (the first N of the source). More: tighter CI, slower eval."""
    eval_k: int = 8
    """Samples per held-out problem (the paper's Pass@32 uses 32). More: lower variance of the
    per-problem mean score, linearly slower."""
    eval_pass_ks: tuple[int, ...] = (1,)
    """k values of the unbiased pass@k estimator (each must be <= ``eval_k``)."""
    eval_max_turns: int = 0
    """Turn budget at evaluation; 0 means the end value of ``turn_schedule``."""
    final_eval: bool = True
    """Evaluate the trained policy on the held-out set at the end of ``eapo train``."""

    # ------------------------------------------------------------------ experts & env
    consultation: bool = True
    """False = self-exploratory RL: rollouts use ``EAPO-Math-Eval-v0`` (the evaluation prompt,
    consults answered "disabled", no expert ever called), so the policy trains on the exact prompt it
    is evaluated on; the turn schedule still applies."""
    expert: str = "reference"
    """Expert backend name (``eapo_env.experts.make_expert``)."""
    expert_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the expert backend (TOML table ``[expert_kwargs]``)."""
    max_experts: int = 3
    """K: queries per consult. More: more help per consult and more expert compute."""
    max_turns: int = 8
    """Turn budget the env is built with (the turn schedule overrides it per episode)."""
    acceptance_schedule: str = ""
    """p(t): probability each expert query is answered. Default ``linear:1.0:0.0:<steps // 2>``: the
    second half of the run has no expert at all, so the policy must learn to do without before it is
    evaluated without (annealing over the whole run left it consulting into "unavailable": consult
    collapse). Faster annealing weans sooner, at the cost of less guided exploration."""
    turn_schedule: str = ""
    """Turn budget over training. Default ``linear:<max_turns>:4:<steps // 2>``: from the training
    budget to the evaluation budget while p(t) anneals, then the evaluation budget."""
    consult_penalty: float = 0.1
    """Reward subtracted per consulting turn. Without it a consult answered "unavailable" followed by
    a correct answer earns the same reward as the answer alone, so RL keeps reinforcing the consult
    tokens while p(t) falls; 0.1 makes the unconsulted route strictly better at equal correctness
    while a useful expert reply (p(t) high, reward 1 - 0.1) still pays. 0 turns it off."""

    # ------------------------------------------------------------------ rollout
    engine: str = "ours"
    """Rollout engine (:data:`agents.rollout.ENGINES`): ``ours`` (batched, kept KV cache, rows parked on
    expert calls), ``hf`` (``generate``, a baseline) or ``vllm`` (optional dependency)."""
    env_wrappers: tuple[str, ...] = ()
    """Your own Gymnasium wrappers, as import paths ``"module:Class"``, applied to every env of the
    training vector env (after the built-in ones), e.g. ``["my_pkg.shaping:LengthPenalty"]``."""
    env_id: str = ""
    """The registered id the training envs are made from; ``""``: ``EAPO-Math-v0`` (``EAPO-Math-Eval-v0``
    with ``consultation = false``). A task of your own (``eapo_env.tasks``), registered under its id,
    trains by naming that id here, with no edit to ``agents/``; ``consultation = false`` then makes
    it with ``eval_mode = True``."""
    group_size: int = 8
    """G: samples per prompt. Larger G: better group baselines and fewer all-0/all-1 groups,
    linearly more rollout compute."""
    prompts_per_step: int = 8
    """Distinct problems per step; the batch is ``prompts_per_step * group_size`` episodes."""
    temperature: float = 1.0
    """Sampling temperature (paper: 1.0). Lower: less exploration, more on-policy-consistent."""
    top_p: float = 1.0
    """Nucleus mass (paper: 1.0). Below 1 the sampling log-probs no longer match the learner's."""
    max_turn_tokens: int = 64
    """Per-turn cap on policy tokens. Too small cuts reasoning; large costs decode time."""
    max_total_tokens: int = 512
    """Per-episode budget (prompt + response); reaching it marks the episode overlong."""
    vllm_mode: str = "colocate"
    """``engine = "vllm"``: ``colocate`` (an in-process ``vllm.LLM`` given the learner's weights after each
    update) or ``remote`` (a vLLM OpenAI server at ``vllm_url`` reloaded each step from the weights the
    learner writes to ``vllm_weights_dir``); :mod:`agents.rollout.vllm_sync`. A push that fails, times
    out or leaves other weights than the learner's stops the run."""
    vllm_url: str = ""
    """``remote``: the server's base URL (``http://host:port``)."""
    vllm_weights_dir: str = ""
    """``remote``: where the learner writes the weights the server reloads (a path the server reads too).
    Empty: a temporary folder (server on this machine)."""
    vllm_push_timeout_s: float = 120.0
    """Seconds one weight push (load and check) may take before the run stops with an error."""
    vllm_sync_tolerance: float = 1e-3
    """Largest ``|log p|`` gap allowed after a push between vLLM and the learner on a fixed probe sequence
    (fp32 on CPU agrees to ~2e-5; bfloat16 on a GPU needs ~0.1)."""
    vllm_dtype: str = "auto"
    """dtype of the colocated ``vllm.LLM``; ``auto``: the learner's (float32 on CPU, bfloat16 on CUDA)."""
    vllm_gpu_memory_utilization: float = 0.3
    """Colocated on a GPU: the share of its memory vLLM may take (the learner needs the rest)."""
    mismatch_correction: str = "none"
    """Engine/learner log-prob mismatch correction (:func:`agents.losses.mismatch_weights`): ``none``,
    ``token_tis`` / ``seq_tis`` (truncated IS) or ``token_mask`` / ``seq_mask``. The mismatch is logged
    every step either way; our engine agrees to ~1e-5, vLLM in bfloat16 may want ``token_tis``."""
    mismatch_cap: float = 2.0
    """``mismatch_correction``'s bound (> 1): TIS weights cut at it, masks keep ratios in [1/cap, cap]."""
    rollout_workers: int = 0
    """Ray actors that roll out each step (0: in the trainer's process). Each holds a vector env and an
    engine replica, gets the weights once per step and whole groups of the step's episodes; a local Ray
    cluster is started unless ``RAY_ADDRESS`` names one (:mod:`agents.rollout.ray_workers`). Needs the
    ``ray`` extra. Pays off when generation, not the learner, is the bottleneck and there are cores or
    GPUs to spare. Same seed: same problems, groups and schedule values at any N, and the same sampled
    tokens wherever the float results do not depend on the batch shape (they did not on our CPU)."""
    worker_timeout_s: float = 600.0
    """A rollout worker that returns nothing for this long is presumed stalled: it is killed and its
    episodes re-run on the others. Set it well above one shard's rollout time (a worker's start-up is
    allowed at least 180 s on its own)."""

    # ------------------------------------------------------------------ optimisation
    steps: int = 100
    """Training steps (one rollout batch and ``mini_batches x ppo_epochs`` optimizer steps each)."""
    lr: float = 1e-6
    """AdamW learning rate (paper: 1e-6 for 7B models). The shipped tiny base learns at 3e-5 with
    4 x 2 optimizer steps per rollout (quickstart.toml); 1e-4 and above destabilise it."""
    warmup_steps: int = 10
    """Linear learning-rate warm-up steps (paper: 10), constant afterwards."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0 = off)."""
    mini_batches: int = 4
    """Optimizer steps per pass over a rollout batch (the kept episodes are shuffled and split in
    this many mini-batches, DAPO/verl style). With ``ppo_epochs`` it sets how often one rollout is
    reused: more reuse learns more per rollout second, the clip bounds how far it moves."""
    ppo_epochs: int = 2
    """Passes over each rollout batch. The ratio is taken against the sampling log-probs, so from
    the second optimizer step on it leaves 1 and the clip acts (``clipfrac``, ``approx_kl`` logged)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step: each mini-batch is split in this many pieces for backward
    (less activation memory, same update: the loss is normalised by the mini-batch's tokens)."""
    clip_low: float = 0.20
    """PPO ratio clip below (1 - clip_low)."""
    clip_high: float = 0.28
    """PPO ratio clip above (1 + clip_high); DAPO's clip-higher keeps exploration alive."""
    kl_coef: float = 0.0
    """k3 KL penalty to the initial policy (0 = off, as in DAPO; on costs a reference forward)."""
    dynamic_sampling: bool = True
    """Drop groups whose raw correctness is all 0 or all 1 (zero advantage, no signal). Fewer
    wasted tokens in the loss; a step can end up with no group to train on (then it is skipped)."""
    overlong_filter: bool = True
    """Mask the loss of episodes cut by the token budget (their 0 reward is not the answer's fault)."""
    expert_in_group: str = ""
    """Off-policy guidance (LUFFY): the expert's worked solution joins ``"every"`` group, or only groups
    with no correct episode (``"all_wrong"``, Guide-GRPO's rule), as one more member rewarded 1
    (:mod:`agents.guidance`). A signal where exploration found none, at the cost of off-policy tokens."""

    # ------------------------------------------------------------------ bookkeeping
    seed: int = 0
    """Seeds problem draws, env resets and sampling (per step, so a resumed run repeats them)."""
    device: str = "auto"
    """``cpu``, ``cuda`` or ``auto``."""
    distributed: str = "ddp"
    """How the learner spans the ranks of ``torchrun --nproc-per-node N -m agents.cli train`` (ignored in a
    plain run): ``ddp`` replicates the model and averages gradients (gloo on CPU, NCCL on CUDA);
    ``fsdp2`` (``fully_shard``) shards the learner's weights, gradients and AdamW moments for a model
    whose training state does not fit one device (each rank still keeps the whole weights once, for
    generation), at the price of an all-gather per layer and pass; no ``--resume`` under it yet
    (:mod:`agents.distributed`). Either way each rank rolls out its share of the step's groups and the
    loss is normalised by the global token count, so N ranks train like one process."""
    dist_timeout_s: float = 600.0
    """Seconds the torchrun rendezvous or any collective may wait for a rank before the run fails with
    an error (never a hang). Above the longest rollout or evaluation one rank can run alone."""
    threads: int = 2
    """``torch.set_num_threads`` on CPU (0 leaves torch's default)."""
    checkpoint_every: int = 10
    """Steps between checkpoints (the last step is always saved). Each costs a model+optimizer write."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (oldest deleted)."""
    tensorboard: bool = True
    """Also write TensorBoard scalars to ``<out>/tb``."""
    progress_bar: bool = True
    """tqdm progress bar on stderr."""

    # ------------------------------------------------------------------ baselines
    distill_steps: int = 200
    """``distill_sft``: SFT steps on expert trajectories."""
    distill_num_problems: int = 2000
    """``distill_sft``: training problems turned into expert trajectories."""
    distill_lr: float = 1e-3
    """``distill_sft``: SFT learning rate."""

    def __post_init__(self) -> None:
        self.eval_pass_ks = tuple(int(k) for k in self.eval_pass_ks)
        self.expert_kwargs = dict(self.expert_kwargs)
        if self.method == "self_explore":
            self.consultation = False  # self-exploratory RL is, by definition, consultation off
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field on any out-of-range value."""

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"config {name} = {getattr(self, name)!r}: {what}")

        need(self.method in METHODS, "method", f"one of {', '.join(METHODS)}")
        need(self.engine in ENGINES, "engine", f"one of {', '.join(ENGINES)}")
        self._validate_vllm(need)
        need(self.policy_size in ("tiny", "small"), "policy_size", "tiny or small")
        for name in ("group_size", "prompts_per_step", "eval_k", "eval_num_problems", "max_experts", "max_turns",
                     "max_turn_tokens", "max_total_tokens", "grad_accum", "mini_batches", "ppo_epochs",
                     "checkpoint_every", "keep_checkpoints"):  # fmt: skip
            need(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("steps", "warmup_steps", "lora_r", "lora_alpha", "eval_max_turns", "threads", "rollout_workers",
                     "distill_steps", "seed", "problems_seed", "eval_problems_seed"):  # fmt: skip
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(self.expert_in_group in ("", "every", "all_wrong"), "expert_in_group", "'', 'every' or 'all_wrong'")
        need(self.lr > 0, "lr", "must be > 0")
        need(self.distributed in STRATEGIES, "distributed", f"one of {', '.join(STRATEGIES)}")
        need(self.dist_timeout_s > 0, "dist_timeout_s", "must be > 0")
        need(self.worker_timeout_s > 0, "worker_timeout_s", "must be > 0")
        need(0 <= self.clip_low < 1, "clip_low", "must be in [0, 1)")
        need(self.clip_high >= 0, "clip_high", "must be >= 0")
        need(self.kl_coef >= 0, "kl_coef", "must be >= 0")
        need(self.temperature > 0, "temperature", "must be > 0 for RL (sampling)")
        need(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        need(all(1 <= k <= self.eval_k for k in self.eval_pass_ks), "eval_pass_ks", "each k in [1, eval_k]")
        need(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device", "auto, cpu or cuda[:i]"
        )
        for name, resolve in (("acceptance_schedule", self.acceptance), ("turn_schedule", self.turns)):
            try:
                resolve()
            except ValueError as exc:
                raise ValueError(f"config {name}: {exc}") from None

    def _validate_vllm(self, need: Any) -> None:
        """The ``engine = "vllm"`` and mismatch-correction fields."""
        from agents.losses import MISMATCH_CORRECTIONS

        need(self.vllm_mode in ("colocate", "remote"), "vllm_mode", "colocate or remote")
        if self.engine == "vllm" and self.vllm_mode == "remote":
            need(self.vllm_url.startswith(("http://", "https://")), "vllm_url", "the server's http(s):// base URL")
        need(self.engine != "vllm" or not self.lora_r, "lora_r", "0 with engine 'vllm' (it loads whole weights)")
        need(  # the held-out evaluation builds its engine from an in-memory model, which vLLM cannot take
            self.engine != "vllm" or not self.final_eval or self.method not in ("eapo", "self_explore"),
            "final_eval",
            "false with engine 'vllm' (evaluate final_policy with engine 'ours' afterwards: eapo eval)",
        )
        need(self.vllm_push_timeout_s > 0, "vllm_push_timeout_s", "must be > 0")
        need(self.vllm_sync_tolerance > 0, "vllm_sync_tolerance", "must be > 0")
        need(self.vllm_dtype in ("auto", "float32", "bfloat16", "float16"), "vllm_dtype", "auto or a float dtype")
        need(0 < self.vllm_gpu_memory_utilization < 1, "vllm_gpu_memory_utilization", "must be in (0, 1)")
        need(self.mismatch_correction in MISMATCH_CORRECTIONS, "mismatch_correction", ", ".join(MISMATCH_CORRECTIONS))
        need(self.mismatch_cap > 1, "mismatch_cap", "must be > 1")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["eval_pass_ks"] = list(self.eval_pass_ks)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a dict; unknown keys and wrong types raise ``ValueError`` naming them."""
        known = {f.name: f for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, known, n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"{source}: unknown key(s) {', '.join(hints)}; known keys: {', '.join(sorted(known))}")
        field_types = get_type_hints(cls)
        kwargs = {k: _coerce(k, v, field_types[k], source) for k, v in data.items()}
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a TOML file (flat keys, optional ``[expert_kwargs]`` table); ``overrides`` win."""
        data = read_toml(path)
        data.update(overrides)
        return cls.from_dict(data, source=str(path))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (an empty schedule stays empty: it is derived from the copy's ``steps``)."""
        return dataclasses.replace(self, **changes)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    # ------------------------------------------------------------------ derived
    @property
    def batch_episodes(self) -> int:
        return self.group_size * self.prompts_per_step

    def acceptance(self) -> Schedule:
        """p(t) in effect (the one resolver: trainer log, env wrappers, checkpoints)."""
        spec = self.acceptance_schedule or f"linear:1.0:0.0:{max(1, self.steps // 2)}"
        return parse_schedule(spec, horizon=max(1, self.steps))  # `P%` counts are shares of this run

    def turns(self) -> Schedule:
        """Turn budget in effect: ``turn_schedule`` or the default over ``steps``."""
        half = max(1, self.steps // 2)
        spec = self.turn_schedule or f"linear:{self.max_turns}:{min(4, self.max_turns)}:{half}"
        return parse_schedule(spec, horizon=max(1, self.steps))

    def evaluation(self) -> EvalConfig:
        """The held-out evaluation this run ends with: its ``eval_*`` fields and sampling knobs, built once."""
        return EvalConfig(
            k=self.eval_k, pass_ks=self.eval_pass_ks, num_problems=self.eval_num_problems,
            problems_seed=self.eval_problems_seed, max_turns=self.resolved_eval_max_turns, max_experts=self.max_experts,
            engine=self.engine, temperature=self.temperature, top_p=self.top_p, max_turn_tokens=self.max_turn_tokens,
            max_total_tokens=self.max_total_tokens, seed=self.seed,
        )  # fmt: skip

    @property
    def resolved_eval_max_turns(self) -> int:
        """The evaluation turn budget: ``eval_max_turns`` or the end of the turn schedule."""
        if self.eval_max_turns:
            return self.eval_max_turns
        return max(1, int(round(self.turns()(10**9))))


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """``TrainConfig.from_toml(path)``; a bare name such as ``quickstart`` reads the packaged
    ``agents/configs/quickstart.toml``; ``None`` gives the defaults (with ``overrides``)."""
    if path is None:
        return TrainConfig.from_dict(overrides)
    p = Path(path)
    if (
        not p.exists()
        and p.suffix == ""
        and (packaged := Path(__file__).parent / "configs" / f"{p.name}.toml").exists()
    ):
        p = packaged
    if not p.exists():
        raise FileNotFoundError(f"config file {path} not found")
    return TrainConfig.from_toml(p, **overrides)
