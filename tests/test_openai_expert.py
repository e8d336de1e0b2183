"""OpenAIExpert against a real local OpenAI-compatible server (tests/faults/server.py), happy paths.

Fault injection (timeouts, 429/500, bad JSON, drops, flaky) lives in tests/faults/test_fault_tier.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from eapo_env.experts import ExpertRequest, consult_blocking, make_expert
from eapo_env.experts.openai_backend import OpenAIExpert
from eapo_env.problems import Problem
from tests.faults.server import FaultServer

PROBLEM = Problem("p/1", "Compute $\\frac{1}{2} + {x}$ for x = 1.", "\\frac{3}{2}")


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


@pytest.fixture
def fresh(server: FaultServer) -> FaultServer:
    server.reset_stats()
    return server


def req(query: str, rid: str = "e0/0/0") -> ExpertRequest:
    return ExpertRequest(rid, PROBLEM, query)


def test_chat_request_carries_problem_query_and_sampling(fresh):
    expert = OpenAIExpert(fresh.base_url, model="expert-7b", api_key="sk-test", temperature=0.3, max_tokens=77)
    (reply,) = asyncio.run(expert.consult([req("what is {x}?")]))
    assert reply.ok and reply.text == "echo: what is {x}? The answer is \\boxed{42}."
    assert reply.tokens == len(reply.text.split()) and reply.latency_s > 0
    (payload,) = fresh.stats.payloads
    assert payload["model"] == "expert-7b" and payload["max_tokens"] == 77 and payload["temperature"] == 0.3
    system, user = payload["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert PROBLEM.question in user["content"] and "what is {x}?" in user["content"]  # braces verbatim
    assert fresh.stats.headers[-1]["authorization"] == "Bearer sk-test"
    assert fresh.stats.paths == {"/v1/chat/completions": 1}
    assert expert.stats.ok == 1 and expert.stats.completion_tokens == reply.tokens
    assert expert.stats.prompt_tokens > 0


def test_completions_mode_and_custom_prompt(fresh):
    expert = make_expert(
        "openai",
        base_urls=fresh.base_url,
        model="m",
        mode="completions",
        system_prompt="",
        prompt_template="Q: {question}\nAsk: {query}",
        extra_body={"stop": ["\n\n"]},
    )
    (reply,) = asyncio.run(expert.consult([req("hint")]))
    assert reply.ok and reply.text.startswith("echo: Ask: hint")
    (payload,) = fresh.stats.payloads
    assert payload["prompt"] == f"Q: {PROBLEM.question}\nAsk: hint" and payload["stop"] == ["\n\n"]
    assert fresh.stats.paths == {"/v1/completions": 1}


@pytest.mark.parametrize("wire", ["chunked", "gzip", "close"])
def test_response_framings(fresh, wire):
    expert = OpenAIExpert(fresh.base_url, model="m", max_retries=0)
    replies = asyncio.run(
        expert.consult([req(f"WIRE:{wire} #{i}", rid=f"e{i}/0/0") for i in range(5)] + [req("plain")])
    )
    assert [r.status for r in replies] == ["ok"] * 6, [r.error for r in replies]
    assert replies[0].text == f"echo: WIRE:{wire} #0 The answer is \\boxed{{42}}."
    assert fresh.stats.requests == 6  # no retries were needed


def test_keep_alive_connections_are_reused(fresh):
    expert = OpenAIExpert(fresh.base_url, model="m", max_concurrency=4)

    async def run() -> list[int]:
        for _ in range(3):
            assert all(r.ok for r in await expert.consult([req(f"q{i}", f"e{i}/0/0") for i in range(20)]))
        ((open_, idle),) = expert.pool_connections()
        await expert.aclose()
        return [open_, idle, expert.pool_connections()[0][0]]

    open_, idle, after_close = asyncio.run(run())
    assert 1 <= idle <= open_ <= 4 and after_close == 0  # bounded by max_concurrency, not one per request
    assert fresh.stats.requests == 60
    assert expert.stats.by_endpoint == {fresh.base_url: 60} and expert.stats.retries == 0


def test_usable_across_event_loops_and_from_consult_blocking(fresh):
    expert = OpenAIExpert(fresh.base_url, model="m")
    assert asyncio.run(expert.consult([req("a")]))[0].ok
    assert asyncio.run(expert.consult([req("b")]))[0].ok  # a second loop: stale pool is dropped
    replies = consult_blocking(expert, [req("c"), req("d")])  # the shared background loop
    assert [r.text.split()[1] for r in replies] == ["c", "d"]
    assert getattr(expert, "consult_sync", None) is None  # async-only: the env must use the loop


def test_client_error_is_not_retried(fresh):
    expert = OpenAIExpert(fresh.base_url.replace("/v1", "/nope"), model="m", max_retries=3, backoff_s=0.01)
    (reply,) = asyncio.run(expert.consult([req("x")]))
    assert reply.status == "error" and "HTTP 404" in reply.error
    assert fresh.stats.requests == 1 and expert.stats.retries == 0


def test_empty_batch_and_validation():
    expert = OpenAIExpert("http://127.0.0.1:9/v1", model="m")
    assert asyncio.run(expert.consult([])) == []
    bad_kwargs = (
        {"base_urls": []},
        {"base_urls": "ftp://x/v1"},
        {"mode": "embeddings"},
        {"timeout_s": 0},
        {"batch_size": 0},
    )
    for bad in bad_kwargs:
        kwargs = {"base_urls": "http://127.0.0.1:9/v1", "model": "m", **bad}
        with pytest.raises(ValueError):
            OpenAIExpert(**kwargs)


@pytest.mark.parametrize("wire", ["", "WIRE:chunked ", "WIRE:close "])
def test_oversized_response_is_an_error(fresh, wire):
    expert = OpenAIExpert(fresh.base_url, model="m", max_response_bytes=64, max_retries=0)
    (reply,) = asyncio.run(expert.consult([req(wire + "x")]))
    assert reply.status == "error" and "larger than 64 bytes" in reply.error


def test_decompression_is_bounded(fresh):
    expert = OpenAIExpert(fresh.base_url, model="m", max_response_bytes=1 << 16, max_retries=0)
    small, bomb = asyncio.run(expert.consult([req("WIRE:gzip a"), req("WIRE:bomb b")]))
    assert small.ok and bomb.status == "error" and "decompressed response larger" in bomb.error


@pytest.mark.parametrize("pause_s", [0.0, 0.05])
def test_connections_closed_by_the_server_are_replaced_silently(fresh, pause_s):
    # A server's keep-alive timeout closes idle connections; the next batch must neither fail nor
    # count retries, whether the client has already seen the close (pause) or not (no pause).
    expert = OpenAIExpert(fresh.base_url, model="m", max_concurrency=8)

    async def run() -> list[bool]:
        first = await expert.consult([req(f"a{i}", f"e{i}/0/0") for i in range(16)])
        assert expert.pool_connections()[0][1] > 0  # idle keep-alive connections, about to be closed
        fresh.drop_connections()
        await asyncio.sleep(pause_s)
        second = await expert.consult([req(f"b{i}", f"e{i}/1/0") for i in range(16)])
        return [r.ok for r in first + second]

    assert all(asyncio.run(run()))
    assert expert.stats.retries == 0 and fresh.stats.requests == 32


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_batched_requests_carry_several_queries_in_order(fresh, mode):
    expert = OpenAIExpert(fresh.base_url, model="m", mode=mode, batch_size=4)
    replies = asyncio.run(expert.consult([req(f"q{i}", f"e{i}/0/0") for i in range(10)]))
    assert [r.text for r in replies] == [f"echo: q{i} The answer is \\boxed{{42}}." for i in range(10)]
    path = "/v1/chat/completions/batch" if mode == "chat" else "/v1/completions"
    assert fresh.stats.paths == {path: 3}  # 10 queries in even chunks of at most 4: 3 + 3 + 4
    if mode == "chat":
        sizes = [len(p["messages"]) for p in fresh.stats.payloads]
        assert all(len(c) == 2 and c[1]["role"] == "user" for p in fresh.stats.payloads for c in p["messages"])
    else:
        sizes = [len(p["prompt"]) for p in fresh.stats.payloads]
        assert all(isinstance(x, str) for p in fresh.stats.payloads for x in p["prompt"])
    assert sorted(sizes) == [3, 3, 4]  # the three requests go out together: the server sees them in any order
    s = expert.stats
    assert (s.requests, s.ok, s.attempts) == (10, 10, 3)
    assert all(r.tokens == 0 for r in replies) and s.completion_tokens == sum(len(r.text.split()) for r in replies)


def test_a_batched_call_is_split_over_the_endpoints():
    with FaultServer() as a, FaultServer() as b:
        expert = OpenAIExpert([a.base_url, b.base_url], model="m", mode="completions", batch_size=64)
        replies = asyncio.run(expert.consult([req(f"q{i}", f"e{i}/0/0") for i in range(10)]))
        assert [r.text.split()[1] for r in replies] == [f"q{i}" for i in range(10)]
        assert (a.stats.requests, b.stats.requests) == (1, 1)
        assert sorted(len(s.payloads[0]["prompt"]) for s in (a.stats, b.stats)) == [5, 5]
