"""Batched multi-turn rollout engines (DESIGN §7).

* ``ours`` (default): :class:`RolloutEngine` — kept KV cache across env steps, compaction, CUDA graphs.
* ``hf``: :class:`HFRolloutEngine` — ``model.generate`` per turn (the baseline).
* ``vllm``: :class:`VLLMRolloutEngine` — in-process ``vllm.LLM`` (optional dependency).

All share ``rollout(envs, seeds=, options=, group_ids=, seed=) -> list[Trajectory]``.
"""

from __future__ import annotations

from typing import Any

from agents.rollout.engine import RolloutEngine
from agents.rollout.hf_engine import HFRolloutEngine
from agents.rollout.sampling import StopCriteria, sample_tokens
from agents.rollout.types import RolloutBatch, Trajectory

ENGINES = ("ours", "hf", "vllm")


def make_engine(name: str, model: Any, tokenizer: Any, **kwargs: Any):
    """Build the engine called ``name`` (``ours``, ``hf`` or ``vllm``; for ``vllm`` ``model`` is a
    ``vllm.LLM`` or a model path)."""
    if name == "ours":
        return RolloutEngine(model, tokenizer, **kwargs)
    if name == "hf":
        return HFRolloutEngine(model, tokenizer, **kwargs)
    if name == "vllm":
        from agents.rollout.vllm_engine import VLLMRolloutEngine  # lazy: vLLM is optional

        return VLLMRolloutEngine(model, tokenizer, **kwargs)
    raise ValueError(f"unknown engine {name!r}; choose from {ENGINES}")


__all__ = [
    "ENGINES", "HFRolloutEngine", "RolloutBatch", "RolloutEngine", "StopCriteria", "Trajectory",
    "make_engine", "sample_tokens",
]
