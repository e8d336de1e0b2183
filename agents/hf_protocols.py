"""Typed views of the Hugging Face objects our code holds as a plain ``torch.nn.Module``.

Why: a policy travels through the trainer as ``torch.nn.Module`` (a ``PreTrainedModel``, a peft
wrapper of one, or DDP around either), and torch types every attribute of a module as
``Tensor | Module`` (``Module.__getattr__``), so ``model.generate(...)`` reads to mypy as a call of
a tensor. These Protocols name the few HF methods we call; :func:`causal_lm` and :func:`lora_model`
are the one place that view is taken. They check nothing at run time: peft's wrappers are not
``PreTrainedModel`` subclasses, yet they have the same methods.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, cast

import torch


class CausalLM(Protocol):
    """The Hugging Face causal-LM methods we call (``PreTrainedModel`` and ``PeftModel`` have both)."""

    def generate(self, **kwargs: Any) -> Any:
        """A ``LongTensor [B, L + n]``, or a ``GenerateDecoderOnlyOutput`` with ``return_dict_in_generate``;
        the caller names which by annotating the result."""
        ...

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> None: ...


class LoraModel(CausalLM, Protocol):
    """A peft model with LoRA adapters."""

    def merge_and_unload(self) -> torch.nn.Module:
        """The base model with the adapters folded into its weights."""
        ...


def causal_lm(model: torch.nn.Module) -> CausalLM:
    """``model`` seen as the HF causal LM it is (no run-time check)."""
    return cast(CausalLM, model)


def lora_model(model: torch.nn.Module) -> LoraModel:
    """``model`` seen as a peft LoRA model; call only where ``hasattr(model, "merge_and_unload")`` or
    the model was made by ``get_peft_model``."""
    return cast(LoraModel, model)
