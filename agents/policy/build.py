"""``build_policy``: tokenizer + model built locally, SFT warm start, saved as a Hugging Face directory.

The result loads offline with ``AutoModelForCausalLM.from_pretrained(out_dir)`` and
``AutoTokenizer.from_pretrained(out_dir)`` (or :func:`agents.policy.load_policy`), next to an
``eapo_policy.json`` that records how it was built and how well its first turn follows the protocol.

Example (the shipped base, ``agents/assets/tiny_base``; ~10 minutes on 2 CPU cores)::

    eapo build-policy --out agents/assets/tiny_base --size tiny --sft-steps 1200 --seed 0 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from agents.hf_protocols import causal_lm
from agents.policy.directory import POLICY_INFO_FILE, read_policy_info, write_policy_dir  # noqa: F401 (re-exported)
from agents.policy.model import build_model, count_parameters
from agents.policy.recipes import RECIPES
from agents.policy.tokenizer import build_tokenizer, encode_prompt, fixed_phrases, mine_phrases, tag_token_ids
from agents.sft import sft_train
from agents.traces import TraceConfig, make_traces
from eapo_env import prompts
from eapo_env.problems import Problem, load_problems
from eapo_env.protocol import STOP_STRINGS, parse_action

#: SFT steps by size (batches of 32 traces). The learning-rate schedule has no horizon (``rsqrt``),
#: so a build of N steps is the N-th step of any longer build.
DEFAULT_SFT_STEPS = {"tiny": 1200, "small": 1200}
DEFAULT_LR = {"tiny": 3e-3, "small": 1e-3}
#: SFT losses recorded in ``eapo_policy.json`` for the rebuild test (a short rebuild must match them).
RECORDED_LOSSES = 20


def _take(source: Any, start: int, count: int) -> list[Problem]:
    n = len(source)
    return [source[i] for i in range(start, min(n, start + count))]


def policy_phrases(problems: Sequence[Problem], min_count: int = 20) -> list[str]:
    """Phrase tokens: the env's fixed texts plus frequent digit-free pieces of questions and solutions."""
    return fixed_phrases() + mine_phrases((t for p in problems for t in (p.question, p.solution)), min_count)


@torch.no_grad()
def first_turns(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_texts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 16,
) -> list[str]:
    """Greedy first policy turn for each prompt, stopped at ``</answer>``/``</consult>``/EOS.

    A measurement helper (uses HF ``generate``), not the rollout engine.
    """
    stop_ids = tag_token_ids(tokenizer, STOP_STRINGS) + [tokenizer.eos_token_id]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    out: list[str] = []
    for start in range(0, len(prompt_texts), batch_size):
        encoded = [encode_prompt(tokenizer, p) for p in prompt_texts[start : start + batch_size]]
        width = max(len(e) for e in encoded)
        # Left padding, so every row's generation starts at the same position.
        ids = torch.tensor([[pad_id] * (width - len(e)) + e for e in encoded], device=device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
        gen: torch.Tensor = causal_lm(model).generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stop_ids,
            pad_token_id=pad_id,
        )
        out += tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
    return out


def format_compliance(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    eval_mode: bool = False,
    max_new_tokens: int = 64,
    max_experts: int = 3,
    max_turns: int = 8,
) -> dict[str, float]:
    """Share of greedy first turns that are a well-formed action, and of each action kind."""
    texts = [
        prompts.render_prompt(p.question, eval_mode=eval_mode, max_experts=max_experts, max_turns=max_turns)
        for p in problems
    ]
    turns = first_turns(model, tokenizer, texts, max_new_tokens)
    kinds = [parse_action(t, max_experts) for t in turns]
    n = max(1, len(kinds))
    answers = [(a.answer, p.answer) for a, p in zip(kinds, problems) if a.kind == "answer"]
    return {
        "n": len(kinds),
        "well_formed": sum(k.kind != "reason" and not k.format_error for k in kinds) / n,
        "answer": sum(k.kind == "answer" for k in kinds) / n,
        "consult": sum(k.kind == "consult" for k in kinds) / n,
        "exact_answer": sum(a == gold for a, gold in answers) / n,  # string match: a floor, not the verifier
    }


@dataclass(frozen=True)
class _Recipe:
    """The build arguments with their defaults resolved: what every step of a build reads."""

    size: str
    steps: int
    seed: int
    problems: Any
    batch_size: int
    lr: float
    lora_r: int | None
    traces: TraceConfig
    recipe: str = "base"
    max_len: int = 192
    init: str | None = None  # continue from this policy (its tokenizer and weights) instead of a fresh init

    def build_args(self, n_train: int) -> dict[str, Any]:
        """``build_args`` of ``eapo_policy.json`` (``n_train``: the problems actually used)."""
        args = {
            "size": self.size,
            "sft_steps": self.steps,
            "seed": self.seed,
            "problems": self.problems if isinstance(self.problems, str) else type(self.problems).__name__,
            "n_train": n_train,
            "batch_size": self.batch_size,
            "lr": self.lr,
        }
        if self.recipe != "base" or self.init:  # the shipped tiny base's record stays as it was
            args.update(recipe=self.recipe, max_len=self.max_len, init=self.init)
        return args

    def command(self, out: Path) -> str:
        """The ``eapo build-policy`` command line that rebuilds this recipe."""
        cmd = f"eapo build-policy --out {out} --size {self.size} --sft-steps {self.steps} --seed {self.seed}"
        cmd += " --threads 1"
        if self.recipe != "base" or self.init:
            cmd += f" --recipe {self.recipe} --problems {self.problems} --lr {self.lr} --batch-size {self.batch_size}"
            cmd += f" --init {self.init}" if self.init else ""
        return cmd


@dataclass
class _Start:
    """What the SFT starts from: the problem splits, their traces, the tokenizer and the initial model."""

    train: list[Problem]
    heldout: list[Problem]
    traces: list[Any]
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel


@dataclass
class _Clock:
    """``time.perf_counter`` marks of a build, reported as ``timings_s``."""

    start: float = field(default_factory=time.perf_counter)
    prepared: float = 0.0
    trained: float = 0.0

    def timings(self) -> dict[str, float]:
        return {
            "prepare": round(self.prepared - self.start, 2),
            "sft": round(self.trained - self.prepared, 2),
            "total": round(time.perf_counter() - self.start, 2),
        }


def _prepare(recipe: _Recipe, n_train: int, n_heldout: int) -> _Start:
    """Problems, traces, tokenizer, then the model: this order fixes the seeded draws of a build."""
    source = load_problems(recipe.problems)
    train = _take(source, 0, n_train)
    heldout = _take(source, n_train, n_heldout)
    traces = make_traces(train, seed=recipe.seed, config=recipe.traces)
    if recipe.init:  # continued SFT: the starting policy's own tokenizer (its ids) and weights
        from agents.policy.model import load_policy

        model, tokenizer = load_policy(recipe.init)
        torch.manual_seed(recipe.seed)
        return _Start(train, heldout, traces, tokenizer, model)
    tokenizer = build_tokenizer(policy_phrases(train))
    model = build_model(tokenizer, recipe.size, seed=recipe.seed)
    return _Start(train, heldout, traces, tokenizer, model)


def _warm_start(
    start: _Start,
    recipe: _Recipe,
    log_every: int,
    on_step: Callable[[int, float], None] | None,
    say: Callable[[str], None],
) -> tuple[PreTrainedModel, dict[str, Any]]:
    """SFT of ``start.model`` on ``start.traces``; the trained model and the ``sft`` record."""
    steps = recipe.steps
    result = sft_train(
        start.model,
        start.tokenizer,
        start.traces,
        steps=steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        warmup_steps=50,
        schedule="rsqrt",
        lora_r=recipe.lora_r,
        seed=recipe.seed,
        log_every=log_every,
        max_len=recipe.max_len,
        on_step=on_step,
    )
    sft_info = {
        "steps": steps,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "lora_r": recipe.lora_r,
        "losses_first": [round(x, 6) for x in result.losses[:RECORDED_LOSSES]],
        "loss_last": sum(result.losses[-10:]) / len(result.losses[-10:]),
        "seconds": round(result.seconds, 2),
        "steps_per_s": round(result.steps_per_s, 3),
        "tokens_per_s": round(result.tokens / result.seconds, 1),
    }
    say(f"sft: {steps} steps in {result.seconds:.1f}s, loss {result.losses[0]:.3f} -> {sft_info['loss_last']:.3f}")
    return cast(PreTrainedModel, result.model), sft_info  # LoRA adapters, if any, are merged back


def _heldout_compliance(
    model: PreTrainedModel, start: _Start, say: Callable[[str], None]
) -> dict[str, dict[str, float]]:
    """First-turn compliance on the held-out problems under both prompts (``{}`` when there are none)."""
    if not start.heldout:
        return {}
    model.eval()
    compliance = {
        "train_prompt": format_compliance(model, start.tokenizer, start.heldout, eval_mode=False),
        "eval_prompt": format_compliance(model, start.tokenizer, start.heldout, eval_mode=True),
    }
    say(f"held-out first-turn compliance: {json.dumps(compliance)}")
    return compliance


def _policy_info(
    out: Path,
    recipe: _Recipe,
    start: _Start,
    model: PreTrainedModel,
    sft_info: dict[str, Any],
    compliance: dict[str, dict[str, float]],
    clock: _Clock,
) -> dict[str, Any]:
    """The content of ``eapo_policy.json`` (its key order is the file's)."""
    return {
        "format": "eapo-policy/2",
        "build_args": recipe.build_args(len(start.train)),
        "rebuild_command": recipe.command(out),
        "parameters": count_parameters(model),
        "vocab_size": len(start.tokenizer),
        # How the rollout engine must encode the first observation (see agents.policy.tokenizer).
        "chat_template": True,
        "stop_strings": list(STOP_STRINGS),
        "trace_config": dict(vars(recipe.traces)),
        "sft": sft_info,
        "compliance": compliance,
        "timings_s": clock.timings(),
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }


def build_policy(
    out_dir: str | Path,
    size: str = "tiny",
    sft_steps: int | None = None,
    seed: int = 0,
    problems: Any = "generated:arithmetic:1-2",
    *,
    n_train: int = 24000,
    n_heldout: int = 32,
    batch_size: int = 32,
    lr: float | None = None,
    trace_config: TraceConfig | None = None,
    lora_r: int | None = None,
    threads: int | None = None,
    log_every: int = 100,
    verbose: bool = True,
    on_sft_step: Callable[[int, float], None] | None = None,
    recipe: str = "base",
    init_policy: str | None = None,
) -> Path:
    """Build a policy directory: character tokenizer, model, SFT on worked-solution traces, build info.

    Args:
        out_dir: where to write (created; existing files of the same names are overwritten).
        size: ``"tiny"`` (~0.45M parameters) or ``"small"`` (~14M).
        sft_steps: SFT steps (default per size; 0 skips SFT and leaves the random init).
        seed: seeds the model init, the traces and the SFT batch order.
        problems: problem spec for :func:`eapo_env.problems.load_problems`; the first ``n_train``
            give the traces and the phrase tokens, the next ``n_heldout`` the compliance check.
        threads: ``torch.set_num_threads`` for the build (``None`` leaves it as is).
        recipe: a name of :data:`RECIPES` (``base``: the shipped tiny base's traces; ``expert-reader``:
            own solutions after replies, hints, workflow traces); ``trace_config`` overrides its traces.
        init_policy: continue SFT from this policy directory or shipped name (its tokenizer is kept).

    Returns:
        ``out_dir`` as a :class:`Path`. The same arguments on the same torch version rebuild the
        same first SFT losses (recorded in ``eapo_policy.json``).

    Example (the shipped base; ~20-30 minutes on 2 shared CPU cores)::

        eapo build-policy --out agents/assets/tiny_base --seed 0 --threads 2
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    say = print if verbose else (lambda *_: None)
    hf_logging.disable_progress_bar()
    steps = DEFAULT_SFT_STEPS[size] if sft_steps is None else sft_steps
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    traces, max_len = RECIPES[recipe]
    lr = lr or DEFAULT_LR[size]
    traces = trace_config or traces
    spec = _Recipe(size, steps, seed, problems, batch_size, lr, lora_r, traces, recipe, max_len, init_policy)
    clock = _Clock()

    start = _prepare(spec, n_train, n_heldout)
    clock.prepared = time.perf_counter()
    n_params = count_parameters(start.model)
    say(
        f"built tokenizer ({len(start.tokenizer)} tokens) and {size} model ({n_params:,} params)"
        f" in {clock.prepared - clock.start:.1f}s"
    )
    model, sft_info = start.model, {"steps": 0}
    if steps > 0:
        model, sft_info = _warm_start(start, spec, log_every if verbose else 0, on_sft_step, say)
    clock.trained = time.perf_counter()

    compliance = _heldout_compliance(model, start, say)
    info = _policy_info(out, spec, start, model, sft_info, compliance, clock)
    write_policy_dir(out, model, start.tokenizer, written_by="build", info=info, source=spec.init)
    say(f"policy written to {out} in {info['timings_s']['total']:.1f}s")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a policy locally: tokenizer, model, SFT warm start.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--sft-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--problems", default="generated:arithmetic:1-2")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--n-train", type=int, default=24000)
    parser.add_argument("--recipe", default="base", choices=sorted(RECIPES))
    parser.add_argument("--init", default=None, help="continue SFT from this policy (directory or shipped name)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    options = dict(n_train=args.n_train, threads=args.threads, lr=args.lr, recipe=args.recipe, init_policy=args.init)
    options["batch_size"] = args.batch_size
    build_policy(args.out, args.size, args.sft_steps, args.seed, args.problems, **options)


if __name__ == "__main__":
    main()
