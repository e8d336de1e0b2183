"""Supervised fine-tuning on segment traces: loss on policy tokens only (plain torch loop).

Tokenization is per segment and the ids are concatenated (the prompt through the chat template,
every later segment on its own), never the joined text re-tokenized: that is exactly how the rollout
engine builds a sequence (sampled policy tokens + observation tokens appended), so the positions
the loss sees are the positions RL will see. Labels are ``-100`` on every non-policy token.

Used for the warm start of the built-in policy and for the distillation-SFT baseline (DESIGN §8),
optionally with LoRA (peft).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from agents.hf_protocols import lora_model
from agents.policy.tokenizer import encode_prompt, encode_segment

if TYPE_CHECKING:
    from peft import PeftModel

IGNORE_INDEX = -100
LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)  # fit_examples returns the model it was given


@dataclass
class Example:
    """One tokenized trace: ``labels[i] == input_ids[i]`` on policy tokens, ``-100`` elsewhere."""

    input_ids: list[int]
    labels: list[int]


@dataclass
class SFTResult:
    """What :func:`sft_train` did: the per-step mean loss, throughput, and the trained model.

    ``model`` is the model to use afterwards: the same object that was passed in (with LoRA, the
    adapters are merged back into it unless ``merge_lora=False``, in which case it is the peft model).
    """

    losses: list[float]
    seconds: float
    tokens: int
    model: torch.nn.Module = field(repr=False)

    @property
    def steps_per_s(self) -> float:
        return len(self.losses) / self.seconds if self.seconds > 0 else float("nan")


def tokenize_trace(
    tokenizer: PreTrainedTokenizerBase,
    trace: Sequence[tuple[str, str]],
    use_chat_template: bool = True,
    max_len: int | None = None,
) -> Example:
    """Token ids and labels of one trace, segment by segment.

    The first ``prompt`` segment goes through :func:`encode_prompt` (the chat template); every
    other segment is tokenized on its own. ``max_len`` keeps the first ``max_len`` tokens.
    """
    ids: list[int] = []
    labels: list[int] = []
    for i, (source, text) in enumerate(trace):
        if source == "prompt" and i == 0:
            seg = encode_prompt(tokenizer, text, use_chat_template)
        else:
            seg = encode_segment(tokenizer, text)
        ids.extend(seg)
        labels.extend(seg if source == "policy" else [IGNORE_INDEX] * len(seg))
    if max_len is not None:
        ids, labels = ids[:max_len], labels[:max_len]
    return Example(ids, labels)


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding has attention 0 and label -100."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def fit_examples(model: ModuleT, examples: Sequence[Example], pad_id: int, steps: int, lr: float = 3e-3) -> ModuleT:
    """``steps`` full-batch Adam steps on a handful of examples (loss on their policy tokens only).

    For fixtures and benchmarks that need a policy with one habit (say, consulting once) in seconds;
    real SFT is :func:`sft_train`. Leaves the model in train mode and returns it.
    """
    batch = collate(examples, pad_id)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        logits = model(batch["input_ids"]).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), batch["labels"][:, 1:], ignore_index=IGNORE_INDEX
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def masked_example(ids: Sequence[int], policy_mask: Sequence[int]) -> Example:
    """An :class:`Example` from token ids and a 0/1 mask (1 = a policy token, trained on)."""
    return Example(list(ids), [t if m else IGNORE_INDEX for t, m in zip(ids, policy_mask)])


def _length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, gen: torch.Generator, window: int = 16
) -> list[list[int]]:
    """One epoch of batches: shuffle, sort each window of ``window`` batches by length, split.

    Batches of similar lengths waste less compute on padding (CPU SFT is compute-bound), while the
    shuffle before and after keeps batch composition and order random.
    """
    perm = torch.randperm(len(lengths), generator=gen).tolist()
    chunk = batch_size * window
    batches: list[list[int]] = []
    for start in range(0, len(perm), chunk):
        part = sorted(perm[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    shuffled = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in shuffled]


def add_lora_adapters(model: torch.nn.Module, r: int, alpha: int | None = None, dropout: float = 0.0) -> PeftModel:
    """The one LoRA set-up (SFT here, RL through :func:`agents.run_setup.apply_lora`): a peft model with
    rank-``r`` adapters on :data:`LORA_TARGETS`, alpha ``alpha or 2 * r``, the base weights frozen."""
    from peft import LoraConfig, get_peft_model  # optional dependency: imported only when asked for

    config = LoraConfig(
        r=r, lora_alpha=alpha or 2 * r, lora_dropout=dropout, target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM"
    )
    return cast("PeftModel", get_peft_model(model, config))  # never the mixed model: ``mixed=False``


@dataclass(frozen=True)
class LRSchedule:
    """Learning rate by step: linear warm-up over ``warmup_steps``, then ``kind``.

    ``"cosine"`` decays to 0.1 x ``lr`` at ``steps``; ``"rsqrt"`` stays at ``lr`` to step
    ``rsqrt_from``, then ``lr * sqrt(rsqrt_from / step)`` with a floor of 0.25 x ``lr``.

    Example::

        >>> LRSchedule(lr=1.0, warmup_steps=10, steps=100)(4)
        0.5
    """

    lr: float
    warmup_steps: int
    steps: int
    kind: str = "cosine"
    rsqrt_from: int = 200

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "rsqrt"):
            raise ValueError(f"unknown schedule {self.kind!r}: cosine or rsqrt")

    def __call__(self, step: int) -> float:
        lr, warmup = self.lr, self.warmup_steps
        if step < warmup:
            return lr * (step + 1) / warmup
        if self.kind == "rsqrt":  # no horizon: the first N steps are the same for any ``steps``
            return lr * max(0.25, math.sqrt(self.rsqrt_from / max(self.rsqrt_from, step)))
        progress = (step - warmup) / max(1, self.steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass
class _BatchStream:
    """Collated batches drawn without replacement from ``examples``, a fresh epoch when one runs out.

    Every epoch is :func:`_length_bucketed_batches` with ``gen``, so the order depends only on the seed.
    """

    examples: Sequence[Example]
    batch_size: int
    pad_id: int
    device: torch.device
    gen: torch.Generator
    _pending: list[list[int]] = field(default_factory=list)

    def next(self) -> dict[str, torch.Tensor]:
        if not self._pending:  # refill: a fresh epoch
            lengths = [len(e.input_ids) for e in self.examples]
            self._pending = _length_bucketed_batches(lengths, self.batch_size, self.gen)
        idx = self._pending.pop()
        return {k: v.to(self.device) for k, v in collate([self.examples[i] for i in idx], self.pad_id).items()}


def _policy_examples(
    tokenizer: PreTrainedTokenizerBase,
    traces: Sequence[Sequence[tuple[str, str]]],
    use_chat_template: bool,
    max_len: int,
) -> list[Example]:
    """Tokenized traces that keep at least one policy token within ``max_len`` (the others teach nothing)."""
    examples = [tokenize_trace(tokenizer, t, use_chat_template, max_len) for t in traces]
    examples = [e for e in examples if any(label != IGNORE_INDEX for label in e.labels)]
    if not examples:
        raise ValueError("no trace has a policy token within max_len")
    return examples


def _adamw(params: Sequence[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    # No weight decay on norms and biases (1-d tensors), the usual AdamW recipe.
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def _optimizer_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    params: Sequence[torch.nn.Parameter],
    batch: dict[str, torch.Tensor],
    lr: float,
    grad_clip: float,
) -> float:
    """One AdamW step at learning rate ``lr`` on ``batch``; returns the batch loss."""
    for g in opt.param_groups:
        g["lr"] = lr
    # HF's causal-LM loss: mean over the non-ignored (policy) tokens of the whole batch.
    loss = model(**batch).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    return float(loss.detach())


def sft_train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    traces: Sequence[Sequence[tuple[str, str]]],
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 3e-3,
    *,
    warmup_steps: int = 10,
    weight_decay: float = 0.01,
    grad_clip: float = 1.0,
    max_len: int = 512,
    use_chat_template: bool = True,
    lora_r: int | None = None,
    lora_alpha: int | None = None,
    lora_dropout: float = 0.0,
    merge_lora: bool = True,
    seed: int = 0,
    log_every: int = 0,
    log_fn: Callable[[str], None] = print,
    on_step: Callable[[int, float], None] | None = None,
    schedule: str = "cosine",
    rsqrt_from: int = 200,
) -> SFTResult:
    """Train ``model`` on ``traces`` for ``steps`` AdamW steps (linear warm-up, then ``schedule``).

    Args:
        model: a causal LM (trained in place).
        tokenizer: its tokenizer.
        traces: lists of ``(source, text)``; only ``policy`` segments contribute to the loss.
        steps, batch_size, lr: the optimisation budget. Batches are drawn without replacement
            (reshuffled each epoch) from a ``torch.Generator`` seeded with ``seed``.
        max_len: longer examples are cut (their tail loses its loss).
        use_chat_template: wrap the prompt with the tokenizer's chat template (as the rollout
            engine does); must match how the policy is used later.
        lora_r: when set, train LoRA adapters of this rank (peft) instead of all weights.
        merge_lora: merge the adapters back into ``model`` at the end.
        log_every: print the loss every this many steps (0: never).
        schedule: ``"cosine"`` (warm-up, then cosine to 0.1 x lr at ``steps``) or ``"rsqrt"``
            (warm-up, constant to step ``rsqrt_from``, then lr * sqrt(rsqrt_from / step), floor
            0.25 x lr): with ``rsqrt`` a run's first N steps do not depend on ``steps``, so a
            snapshot at step N is exactly the model a run of N steps builds.
        on_step: called with ``(steps_done, loss)`` after each step (snapshots, notebooks); it
            must not draw from torch's RNG (the batch order would change).

    Returns:
        :class:`SFTResult` with the loss of every step.
    """
    lr_at = LRSchedule(lr, warmup_steps, steps, schedule, rsqrt_from)
    examples = _policy_examples(tokenizer, traces, use_chat_template, max_len)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device

    train_model: torch.nn.Module = add_lora_adapters(model, lora_r, lora_alpha, lora_dropout) if lora_r else model
    params = [p for p in train_model.parameters() if p.requires_grad]
    opt = _adamw(params, lr, weight_decay)
    stream = _BatchStream(examples, batch_size, pad_id, device, torch.Generator().manual_seed(seed))
    losses: list[float] = []
    tokens = 0
    train_model.train()
    start = time.perf_counter()
    for step in range(steps):
        batch = stream.next()
        losses.append(_optimizer_step(train_model, opt, params, batch, lr_at(step), grad_clip))
        tokens += int(batch["attention_mask"].sum())
        if log_every and (step + 1) % log_every == 0:
            log_fn(f"sft step {step + 1}/{steps} loss {losses[-1]:.4f} lr {lr_at(step):.2e}")
        if on_step is not None:
            on_step(step + 1, losses[-1])
    seconds = time.perf_counter() - start
    train_model.eval()
    if lora_r and merge_lora:
        train_model = lora_model(train_model).merge_and_unload()
    return SFTResult(losses=losses, seconds=seconds, tokens=tokens, model=train_model)
