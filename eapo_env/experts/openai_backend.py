"""``openai``: any OpenAI-compatible server (vLLM, SGLang, hosted APIs), several base URLs balanced.

Speaks the OpenAI ``/chat/completions`` (default) or ``/completions`` wire format through the
``openai`` package: one ``AsyncOpenAI`` client per base URL (its own retries off), on an
``httpx.AsyncClient`` whose pool holds up to ``max_concurrency`` keep-alive connections as many small
httpx pools (:mod:`eapo_env.experts.openai_transport` says why: httpcore's CPU per request grows with
its pool's size). The bodies are JSON encoded here, once per template, and the replies parsed here
(no pydantic model per reply). The ``openai``/httpx request path costs ~1-2 ms of CPU per HTTP
request on a small box: hence batching.

**Batched requests** (``batch_size`` > 1): up to that many queries go in one HTTP request, as a
list of prompts (``/completions``: part of OpenAI's API, served by vLLM) or of conversations (chat:
vLLM's ``/chat/completions/batch``). The server still schedules every query on its own; what shrinks
is the per-request cost on both sides. A vector env's consult is one batched call, so one HTTP
request per endpoint when ``batch_size`` >= the call's size. A batch the server refuses for
what it carries (400, 413, 422: e.g. one query past the model's context length) is sent again as
two halves, recursively, so that only the offending queries fail (at most ``2 log2(n)`` extra
requests per such query; a refusal of every query, e.g. a bad sampling field, costs ``2n - 1``
quick requests in all). Limits: any other failure of a request (timeout, 5xx, malformed reply)
fails each of its queries, and per-query token counts are not reported (``ExpertReply.tokens`` is
0; :attr:`OpenAIExpert.stats` holds the totals).

**Several base URLs**: each request goes to the endpoint with the fewest requests in flight (ties
rotate); one that just failed an attempt is passed over for :data:`AVOID_S` while another is up. A failed attempt (timeout,
connection error, 429, 5xx, malformed JSON) is retried on *another* endpoint at once when there is
one that has not failed this request yet (a **failover**, counted in :attr:`OpenAIStats.failovers`),
else after a backoff (``backoff_s * 2**k``, jittered); ``max_retries`` bounds the extra attempts. So a
server lost mid-run costs its in-flight requests one attempt each, not a reply, when another is up.
Other 4xx fail at once (after that split). :meth:`OpenAIExpert.consult` never raises for a request:
the reply is ``failed_reply("timeout" | "error", reason)`` (``timeout`` when the last attempt timed
out); per attempt a total deadline (``timeout_s``: connect + send + receive).

Example:
    >>> expert = OpenAIExpert(["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"], model="Qwen/Qwen2.5-7B-Instruct")
    >>> expert.endpoints
    ['http://10.0.0.1:8000/v1', 'http://10.0.0.2:8000/v1']
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from eapo_env.experts.base import ExpertReply, ExpertRequest, failed_reply
from eapo_env.experts.openai_wire import (
    REFUSED_STATUSES,
    FatalError,
    RefusedError,
    RetryableError,
    parse_completion,
    snippet,
)

if TYPE_CHECKING:  # the openai package and httpx load with the first consult: importing eapo_env stays fast
    from eapo_env.experts.openai_transport import EndpointClient

#: Seconds an endpoint that just failed an attempt (timeout, refused connection, 429, 5xx, bad JSON)
#: is passed over by new requests while another is available: a replica failing fast would
#: otherwise draw the most traffic, having the fewest requests in flight.
AVOID_S = 1.0
DEFAULT_SYSTEM_PROMPT = (
    "You are an expert mathematician helping a student who is solving a problem. Answer the "
    "student's question accurately and concisely. If you state a final answer, write it as \\boxed{...}."
)
#: ``{question}`` and ``{query}`` are replaced verbatim (no ``str.format``, so LaTeX braces are safe).
DEFAULT_PROMPT_TEMPLATE = "Problem:\n{question}\n\nThe student asks:\n{query}"


@dataclass
class OpenAIStats:
    """Running totals since construction (read them for logging; never reset implicitly).

    ``requests``, ``ok``, ``timeouts``, ``errors`` count queries; ``attempts``, ``retries`` and
    ``failovers`` count HTTP requests (one per batch of up to ``batch_size`` queries): ``retries``
    are attempts after a request's first, ``failovers`` those of them sent to another endpoint than
    the attempt before; ``splits``: refused batches sent again as two halves; ``by_endpoint``:
    attempts per base URL.
    """

    requests: int = 0
    ok: int = 0
    timeouts: int = 0
    errors: int = 0
    attempts: int = 0
    retries: int = 0
    failovers: int = 0
    splits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0  # sum over queries; mean = latency_s / requests
    by_endpoint: dict[str, int] = field(default_factory=dict)


class _Endpoint:
    """One base URL: its client on the current event loop (made lazily), its in-flight count."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL must be http(s)://host[:port][/prefix], got {url!r}")
        self.url = url.rstrip("/")
        self.client: EndpointClient | None = None
        self.in_flight = 0
        self.down_until = 0.0  # after a failed attempt, prefer other endpoints until then


class _Tries:
    """Where one HTTP request's attempts went: the endpoints that failed it, the last one used."""

    __slots__ = ("failed", "last")

    def __init__(self) -> None:
        self.failed: set[_Endpoint] = set()
        self.last: _Endpoint | None = None


class OpenAIExpert:
    """Async expert over OpenAI-compatible servers, balanced by least in-flight requests.

    Args:
        base_urls: one URL or several (``http://host:8000/v1``); see the module docs for balancing
            and failover.
        model: the served model name.
        api_key: sent as ``Authorization: Bearer``; vLLM ignores it unless started with ``--api-key``.
        mode: ``"chat"`` (``/chat/completions``, system + user message) or ``"completions"``
            (``/completions``, system prompt and user text joined into one prompt).
        temperature, top_p, max_tokens: sampling; ``extra_body`` adds fields (``stop``, ``seed``…).
        timeout_s: total deadline of one attempt. max_retries: extra attempts after the first.
        backoff_s: first backoff; doubles per backoff (with ±25 % jitter); a failover does not wait.
        max_concurrency: HTTP requests in flight at once over all endpoints (an ``asyncio.Semaphore``);
            each endpoint's pool holds up to this many connections, so set it to thousands for big
            vLLM fleets.
        system_prompt, prompt_template: the prompt; the template gets ``{question}`` (the problem
            statement) and ``{query}`` (the policy's question).
        max_response_bytes: larger bodies are an error (expert text is untrusted).
        batch_size: queries per HTTP request (see the module docs). 1 (default): one request per
            query, which any OpenAI-compatible server accepts; > 1 needs a server that takes prompt
            lists (``completions``) or vLLM's ``/chat/completions/batch`` (``chat``). A call is split
            into at least one request per endpoint.

    Use one event loop at a time (the env's shared background loop, or your own): connections
    belong to a loop, and moving to a new loop drops the old clients.

    Example:
        >>> import asyncio
        >>> from eapo_env.problems import Problem
        >>> expert = OpenAIExpert("http://127.0.0.1:9/v1", model="m", max_retries=0, timeout_s=30)  # port 9: refused at once
        >>> [r.status for r in asyncio.run(expert.consult([ExpertRequest("r0", Problem("p", "1+1?", "2"), "hint?")]))]
        ['error']
    """

    name = "openai"

    def __init__(
        self,
        base_urls: str | Sequence[str],
        model: str,
        api_key: str = "EMPTY",
        mode: Literal["chat", "completions"] = "chat",
        temperature: float = 0.6,
        top_p: float = 0.95,
        max_tokens: int = 512,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        backoff_s: float = 0.2,
        max_concurrency: int = 256,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        extra_body: Mapping[str, Any] | None = None,
        max_response_bytes: int = 8 << 20,
        batch_size: int = 1,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("OpenAIExpert needs at least one base URL")
        if mode not in ("chat", "completions"):
            raise ValueError(f"mode must be 'chat' or 'completions', got {mode!r}")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0 or max_concurrency < 1 or batch_size < 1:
            raise ValueError(
                "need timeout_s > 0, max_retries >= 0, backoff_s >= 0, max_concurrency >= 1, batch_size >= 1"
            )
        self.model, self.mode, self.api_key = model, mode, api_key
        self.timeout_s, self.max_retries, self.backoff_s = float(timeout_s), int(max_retries), float(backoff_s)
        self.max_concurrency = int(max_concurrency)
        self.system_prompt, self.prompt_template = system_prompt, prompt_template
        self.max_response_bytes = int(max_response_bytes)
        self.batch_size = int(batch_size)
        self._sampling: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
        self._sampling.update(extra_body or {})
        self._head, self._tail, self._item_head, self._item_tail = self._encode_template()
        self._path = "/chat/completions" if mode == "chat" else "/completions"
        if self.batch_size > 1 and mode == "chat":
            self._path += "/batch"
        self._endpoints = [_Endpoint(u) for u in urls]
        self._rotate = 0
        self._jitter = random.Random(0)  # private: backoff jitter must not touch global RNG state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self.stats = OpenAIStats(by_endpoint={e.url: 0 for e in self._endpoints})

    @property
    def endpoints(self) -> list[str]:
        return [e.url for e in self._endpoints]

    # ------------------------------------------------------------------ protocol
    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        """One reply per request, in order; all HTTP requests run concurrently (bounded)."""
        self._bind_loop()
        t0 = time.perf_counter()
        self.stats.requests += len(requests)
        groups = self._groups(list(requests))
        if len(groups) == 1:  # awaited in place: a gather of one costs two tasks and loop turns
            return await self._call(groups[0], t0)
        replies = await asyncio.gather(*(self._call(group, t0) for group in groups))
        return [reply for group in replies for reply in group]

    async def aclose(self) -> None:
        """Close the clients and their connections (the expert stays usable: clients are remade lazily)."""
        for endpoint in self._endpoints:
            client, endpoint.client = endpoint.client, None
            if client is not None:
                await client.aclose()

    def render_prompt(self, request: ExpertRequest) -> str:
        """The user text sent for ``request`` (problem statement + query)."""
        return self.prompt_template.replace("{question}", request.problem.question).replace("{query}", request.query)

    def pool_connections(self) -> list[tuple[int, int]]:
        """Per endpoint, ``(open, idle)`` keep-alive connections now (0, 0 before its first request)."""
        out = []
        for e in self._endpoints:
            transport = e.client.transport if e.client is not None else None
            out.append((transport.connections(), transport.idle_connections()) if transport else (0, 0))
        return out

    # ------------------------------------------------------------------ internals
    def _bind_loop(self) -> None:
        # Connections and the semaphore belong to one event loop; a new loop (asyncio.run in a
        # script, then the shared background loop) must not reuse them.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            for endpoint in self._endpoints:
                endpoint.client, endpoint.in_flight = None, 0  # their transports died with the old loop
            self._loop, self._sem = loop, asyncio.Semaphore(self.max_concurrency)

    def _client(self, endpoint: _Endpoint) -> EndpointClient:
        if endpoint.client is None:
            from eapo_env.experts.openai_transport import EndpointClient

            endpoint.client = EndpointClient(
                endpoint.url, self.api_key, self._path, self.timeout_s, self.max_concurrency, self.max_response_bytes
            )
        return endpoint.client

    def _groups(self, requests: list[ExpertRequest]) -> list[list[ExpertRequest]]:
        """The queries of each HTTP request: one each, or even chunks of at most ``batch_size``
        (at least one per endpoint, so that a call's load spreads over the fleet)."""
        if self.batch_size == 1 or not requests:
            return [[r] for r in requests]
        n = max(math.ceil(len(requests) / self.batch_size), min(len(requests), len(self._endpoints)))
        bounds = [len(requests) * i // n for i in range(n + 1)]
        return [requests[a:b] for a, b in zip(bounds, bounds[1:])]

    def _encode_template(self) -> tuple[bytes, bytes, bytes, bytes]:
        """The JSON body around the prompt(s), encoded once (re-encoding it per request was a
        measurable share of the client's CPU): ``(head, tail)`` around the ``messages``/``prompt``
        value, ``(item_head, item_tail)`` around one query's JSON string inside that value."""
        hole = "\x00eapo-prompt\x00"
        key = "messages" if self.mode == "chat" else "prompt"
        head, _, tail = json.dumps({"model": self.model, **self._sampling, key: hole}).partition(json.dumps(hole))
        item_head = item_tail = ""
        if self.mode == "chat":
            system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            item_head, _, item_tail = json.dumps([*system, {"role": "user", "content": hole}]).partition(
                json.dumps(hole)
            )
        return head.encode(), tail.encode(), item_head.encode(), item_tail.encode()

    def _item(self, request: ExpertRequest) -> bytes:
        user = self.render_prompt(request)
        if self.mode == "completions" and self.system_prompt:
            user = f"{self.system_prompt}\n\n{user}"
        return self._item_head + json.dumps(user).encode() + self._item_tail

    def _body(self, group: list[ExpertRequest]) -> bytes:
        if self.batch_size == 1:
            return self._head + self._item(group[0]) + self._tail
        return self._head + b"[" + b",".join(map(self._item, group)) + b"]" + self._tail

    def _pick(self, tries: _Tries) -> _Endpoint:
        """Least in flight among the endpoints that have not failed this request (ties rotate)."""
        eps = self._endpoints
        if len(eps) == 1:
            return eps[0]
        now = time.monotonic()
        self._rotate = (self._rotate + 1) % len(eps)
        order = eps[self._rotate :] + eps[: self._rotate]  # rotation breaks ties evenly
        return min(order, key=lambda e: (e in tries.failed, e is tries.last, e.down_until > now, e.in_flight))

    async def _call(self, group: list[ExpertRequest], t0: float) -> list[ExpertReply]:
        """One HTTP request (with its retries) for the queries of ``group``: one reply each."""
        stats, n = self.stats, len(group)
        try:
            body = self._body(group)
        except Exception as exc:  # e.g. a query that is not a str: a status, not a crash
            stats.errors += n
            return [
                failed_reply("error", f"cannot build request: {exc}"[:200], time.perf_counter() - t0, self.name)
            ] * n
        status: Literal["timeout", "error"] = "error"
        reason, tries, backoffs = "", _Tries(), 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                stats.retries += 1
                if len(tries.failed) >= len(self._endpoints):  # nowhere fresh to fail over to: wait
                    delay = self.backoff_s * 2**backoffs * (0.75 + 0.5 * self._jitter.random())
                    backoffs += 1
                    await asyncio.sleep(delay)
            stats.attempts += 1
            try:
                texts, prompt_tokens, tokens = await self._attempt(body, n, tries)
            except TimeoutError:
                status, reason = "timeout", f"no reply within {self.timeout_s:g}s"
                continue
            except RetryableError as exc:
                status, reason = "error", str(exc)
                continue
            except RefusedError as exc:
                if n > 1:
                    return await self._split(group, t0)
                status, reason = "error", str(exc)
                break
            except FatalError as exc:
                status, reason = "error", str(exc)
                break
            except Exception as exc:  # a bug or an unforeseen failure: still a status, never a raise
                status, reason = "error", f"{type(exc).__name__}: {exc}"
                break
            latency = time.perf_counter() - t0
            stats.ok += n
            stats.prompt_tokens += prompt_tokens
            stats.completion_tokens += tokens
            stats.latency_s += latency * n
            per_reply = tokens if self.batch_size == 1 else 0  # batch responses report totals only
            return [
                ExpertReply(text=t, status="ok", latency_s=latency, tokens=per_reply, expert=self.name) for t in texts
            ]
        latency = time.perf_counter() - t0
        stats.latency_s += latency * n
        if status == "timeout":
            stats.timeouts += n
        else:
            stats.errors += n
        attempts = "attempt" if self.max_retries == 0 else f"{self.max_retries + 1} attempts"
        return [failed_reply(status, f"{reason} ({attempts})"[:300], latency, self.name)] * n

    async def _split(self, group: list[ExpertRequest], t0: float) -> list[ExpertReply]:
        """A refused batch as two requests (each split again if refused): only bad queries fail."""
        self.stats.splits += 1
        half = len(group) // 2
        left, right = await asyncio.gather(self._call(group[:half], t0), self._call(group[half:], t0))
        return left + right

    async def _attempt(self, body: bytes, n: int, tries: _Tries) -> tuple[list[str], int, int]:
        """One HTTP exchange under the deadline: (one text per query, prompt tokens, completion tokens).
        A failure that another attempt may fix marks the endpoint in ``tries`` (where not to retry)."""
        assert self._sem is not None
        async with self._sem:
            endpoint = self._pick(tries)
            if tries.last is not None and endpoint is not tries.last:
                self.stats.failovers += 1
            self.stats.by_endpoint[endpoint.url] += 1
            tries.last = endpoint
            endpoint.in_flight += 1
            try:
                async with asyncio.timeout(self.timeout_s):
                    status, data = await self._client(endpoint).post(body)
                if status == 429 or status >= 500:
                    raise RetryableError(f"HTTP {status} from {endpoint.url}: {snippet(data)}")
                if status in REFUSED_STATUSES:
                    raise RefusedError(f"HTTP {status} from {endpoint.url}: {snippet(data)}")
                if status != 200:
                    raise FatalError(f"HTTP {status} from {endpoint.url}: {snippet(data)}")
                return parse_completion(data, endpoint.url, n, chat=self.mode == "chat", batched=self.batch_size > 1)
            except (TimeoutError, RetryableError):
                tries.failed.add(endpoint)  # this request's retry goes elsewhere, and new ones too for a while
                endpoint.down_until = time.monotonic() + AVOID_S
                raise
            finally:
                endpoint.in_flight -= 1
