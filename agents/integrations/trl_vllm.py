"""Policy turns on TRL's own vLLM for :class:`agents.integrations.trl.EAPORollout` (``use_vllm=True``).

TRL owns the vLLM instance (colocated, or a ``trl vllm-serve`` server) and syncs the learner's weights
into it before it calls the rollout; we only call its ``generate`` with the protocol's stop tags and
the per-turn token cap, one call per turn for every live row (lock-step, as our ``hf`` engine).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import torch

from agents.config import TrainConfig
from agents.rollout import StopCriteria, Trajectory

if TYPE_CHECKING:
    from agents.integrations.trl import GRPOTrainerView

__all__ = ["vllm_episodes"]


def vllm_episodes(
    trainer: GRPOTrainerView, envs: Any, config: TrainConfig, tokenizer: Any,
    seeds: list[int], options: list[dict[str, Any]], group_ids: list[int],
) -> list[Trajectory]:  # fmt: skip
    """Lock-step turns on TRL's vLLM: every live row generates one turn (one ``generate`` call, stopping
    at the protocol's tags, at most ``max_turn_tokens``), then all are stepped (one ``submit``).

    Under several processes each call is a collective of TRL's (server mode gathers the prompts on
    rank 0; colocated tensor parallelism gathers them over the group), so every rank keeps calling,
    with no prompt once its own rows are done, until no rank has a live row."""
    from agents.policy.tokenizer import encode_prompt, encode_segment
    from agents.rollout import EpisodeDriver

    stop = StopCriteria(tokenizer)
    driver = EpisodeDriver(envs, functools.partial(encode_prompt, tokenizer), functools.partial(encode_segment, tokenizer),
                           stop, config.max_total_tokens)  # fmt: skip
    trajs = driver.start(seeds, options, group_ids)
    gen = trainer.vllm_generation  # TRL's VLLMGeneration (set when use_vllm)
    saved = (gen.generation_kwargs, gen.max_completion_length)
    gen.generation_kwargs = {**saved[0], "stop_token_ids": sorted(stop.all_ids), "stop": list(stop.string_stops) or None,
                             "include_stop_str_in_output": True, "skip_special_tokens": False}  # fmt: skip
    gen.max_completion_length = config.max_turn_tokens
    collective = int(trainer.accelerator.num_processes) > 1
    try:
        live = driver.live()
        while _any_rank(trainer, bool(live)) if collective else live:
            histories = [trajs[i].prompt_ids + trajs[i].token_ids for i in live]
            _, completions, logprobs, _ = gen.generate(prompts=histories, images=None, num_generations=1)
            finished = []
            for i, ids, lps in zip(live, completions, logprobs):
                room = config.max_total_tokens - len(trajs[i].prompt_ids) - len(trajs[i].token_ids)
                n = min(stop.turn_end(list(ids)), room)
                sampled = [math.nan if lp[0] is None else float(lp[0]) for lp in lps[:n]]  # top-1: the sampled token
                finished.append((i, list(ids[:n]), sampled))
            rejoin, _ = driver.finish_turns(finished) if finished else ([], [])
            later, _ = driver.wait_all()
            live = sorted(rejoin + later)
    finally:
        gen.generation_kwargs, gen.max_completion_length = saved
        driver.drain()
    return trajs


def _any_rank(trainer: GRPOTrainerView, flag: bool) -> bool:
    """Some process still has a live row (an all-reduce of one int)."""
    flags = trainer.accelerator.gather(torch.tensor([int(flag)], device=trainer.accelerator.device))
    return bool(flags.sum().item())
