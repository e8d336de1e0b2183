"""Batched multi-turn rollout engines (DESIGN §7).

* ``ours`` (default): :class:`RolloutEngine` — kept KV cache across env steps, rows parked on
  expert calls while the others decode, CUDA graphs.
* ``hf``: :class:`HFRolloutEngine` — ``model.generate`` per turn (the baseline).
* ``vllm``: :class:`VLLMRolloutEngine` — in-process ``vllm.LLM`` (optional dependency).

All share ``rollout(vec_env, seeds=, options=, group_ids=, seed=) -> list[Trajectory]`` over one
vector env (``gym.make_vec("EAPO-Math-v0", num_envs=N)``) driven by :class:`EpisodeDriver`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.rollout.driver import EpisodeDriver, PerEnvVector, as_vector_env
from agents.rollout.engine import RolloutEngine
from agents.rollout.hf_engine import HFRolloutEngine
from agents.rollout.sampling import StopCriteria, sample_tokens
from agents.rollout.types import RolloutBatch, Trajectory

if TYPE_CHECKING:
    from agents.rollout.vllm_engine import VLLMRolloutEngine

#: The engine names (the one list: ``TrainConfig.engine``, the CLI and :func:`make_engine` use it).
ENGINES = ("ours", "hf", "vllm")


def make_engine(
    name: str, model: Any, tokenizer: Any, **kwargs: Any
) -> RolloutEngine | HFRolloutEngine | VLLMRolloutEngine:
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
    "ENGINES",
    "EpisodeDriver",
    "HFRolloutEngine",
    "PerEnvVector",
    "RolloutBatch",
    "RolloutEngine",
    "StopCriteria",
    "Trajectory",
    "as_vector_env",
    "make_engine",
    "sample_tokens",
]
