"""Fault tier: OpenAIExpert and the envs against a real loopback server that injects faults.

Every fault is chosen per request by a marker in the query (see tests/faults/server.py). What must
hold: affected replies get the right status (timeout vs error), every other reply arrives ok,
retries happen exactly where they should (server hit counts), concurrency stays bounded, nothing
hangs (wall-clock bounds), load is balanced over base URLs, a dead URL is an error, and through the
envs: no exception, the right ``unavailable``/timeout/error counts, and every episode completes.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest

import eapo_env  # noqa: F401  (registers the env ids)
from eapo_env.experts import ExpertRequest, consult_blocking
from eapo_env.experts.openai_backend import OpenAIExpert
from eapo_env.problems import Problem
from tests.faults.server import FaultServer

pytestmark = pytest.mark.faults

PROBLEM = Problem("p/1", "What is $6 \\times 7$?", "42", "6*7=42. The answer is \\boxed{42}.")
#: fault marker -> the reply status the expert must report once retries are exhausted
EXPECTED = {
    "ok": "ok",
    "slow": "ok",
    "flaky": "ok",
    "timeout": "timeout",
    "429": "error",
    "500": "error",
    "badjson": "error",
    "drop": "error",
}


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(slow_s=0.15) as s:
        yield s


@pytest.fixture
def fresh(server: FaultServer) -> FaultServer:
    server.reset_stats()
    return server


def query(fault: str, tag: object) -> str:
    return f"please help #{tag}" if fault == "ok" else f"FAULT:{fault} #{tag}"


def make(url: str | list[str], **kw) -> OpenAIExpert:
    # 1 s: long enough that a healthy request never times out on a loaded 2-core CI box
    kw = {"timeout_s": 1.0, "max_retries": 2, "backoff_s": 0.01, **kw}
    return OpenAIExpert(url, model="m", **kw)


def dead_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


# ---------------------------------------------------------------- expert level
def test_each_fault_gets_its_status_and_retries_are_counted(fresh):
    expert = make(fresh.base_url)
    faults = [f for f in EXPECTED for _ in range(3)] + ["ok"] * 30
    requests = [ExpertRequest(f"e{i}/0/0", PROBLEM, query(f, i)) for i, f in enumerate(faults)]
    start = time.perf_counter()
    replies = asyncio.run(expert.consult(requests))
    wall = time.perf_counter() - start
    assert wall < 8.0  # 3 timed-out attempts of 1 s run concurrently with everything else
    assert [r.status for r in replies] == [EXPECTED[f] for f in faults]
    for r in replies:
        assert (r.text != "") == (r.status == "ok")
        if r.status == "ok":
            assert r.text.startswith("echo: ") and r.tokens > 0
    assert all("no reply within 1s" in r.error for f, r in zip(faults, replies) if f == "timeout")
    assert any("HTTP 429" in r.error for f, r in zip(faults, replies) if f == "429")
    assert any("malformed completion" in r.error for f, r in zip(faults, replies) if f == "badjson")
    hits = fresh.stats.hits
    attempts = 1 + expert.max_retries
    assert hits["429"] == hits["500"] == hits["badjson"] == hits["timeout"] == 3 * attempts
    assert 3 * attempts <= hits["drop"] <= 2 * 3 * attempts  # + at most one stale-connection resend
    assert hits["flaky"] == 3 * 2  # fails once, succeeds on the first retry
    assert hits["slow"] == 3 and hits["ok"] == 33  # successes are never re-sent
    s = expert.stats
    assert (s.requests, s.ok, s.timeouts, s.errors) == (len(faults), 39, 3, 12)


def test_without_retries_every_fault_fails_once(fresh):
    expert = make(fresh.base_url, max_retries=0)
    faults = ["429", "500", "flaky", "ok"]
    replies = asyncio.run(expert.consult([ExpertRequest(f"r{i}", PROBLEM, query(f, i)) for i, f in enumerate(faults)]))
    assert [r.status for r in replies] == ["error", "error", "error", "ok"]
    assert fresh.stats.requests == 4 and expert.stats.retries == 0


def test_concurrency_is_bounded(fresh):
    expert = make(fresh.base_url, max_concurrency=8, timeout_s=5)
    start = time.perf_counter()
    replies = asyncio.run(expert.consult([ExpertRequest(f"r{i}", PROBLEM, f"DELAY:40 #{i}") for i in range(96)]))
    wall = time.perf_counter() - start
    assert all(r.ok for r in replies)
    assert 4 <= fresh.stats.max_in_flight <= 8
    assert wall >= 96 / 8 * 0.04 * 0.9  # the bound really queued requests


def test_many_requests_in_flight_at_once(fresh):
    expert = make(fresh.base_url, max_concurrency=1000, timeout_s=20, max_retries=0)
    start = time.perf_counter()
    replies = asyncio.run(expert.consult([ExpertRequest(f"r{i}", PROBLEM, f"DELAY:1000 #{i}") for i in range(1000)]))
    assert time.perf_counter() - start < 20
    assert all(r.ok for r in replies), {r.error for r in replies if not r.ok}
    assert fresh.stats.max_in_flight > 300  # far beyond a default-sized pool


def test_base_urls_are_balanced():
    with FaultServer() as a, FaultServer() as b:
        expert = make([a.base_url, b.base_url], max_concurrency=32, timeout_s=5)
        # 50 ms of server time per request. The servers are threads of this process: a stall of one of them
        # (GIL, a busy 2-core box) of X ms sends the requests of X ms to the other, by least in flight.
        # At 5 ms per request that was ~3 requests per ms of stall (one CI run split 318/82); at 50 ms, ~0.3.
        replies = asyncio.run(expert.consult([ExpertRequest(f"r{i}", PROBLEM, f"DELAY:50 #{i}") for i in range(400)]))
        assert all(r.ok for r in replies)
        assert a.stats.requests + b.stats.requests == 400
        assert 140 <= a.stats.requests <= 260, (a.stats.requests, b.stats.requests, expert.stats)


def test_least_in_flight_favours_the_faster_server():
    with FaultServer() as fast, FaultServer(delay_s=0.1) as slow:
        expert = make([slow.base_url, fast.base_url], max_concurrency=32, timeout_s=5)
        replies = asyncio.run(expert.consult([ExpertRequest(f"r{i}", PROBLEM, f"q{i}") for i in range(300)]))
        assert all(r.ok for r in replies)
        assert fast.stats.requests > 2 * slow.stats.requests > 0


def test_dead_base_url_errors_quickly():
    expert = make(dead_url(), max_retries=2, timeout_s=5)
    start = time.perf_counter()
    replies = asyncio.run(expert.consult([ExpertRequest(f"r{i}", PROBLEM, "q") for i in range(50)]))
    assert time.perf_counter() - start < 3.0
    assert {r.status for r in replies} == {"error"} and "cannot connect" in replies[0].error


def test_dead_url_next_to_a_live_one_is_routed_around(fresh):
    expert = make([dead_url(), fresh.base_url], max_retries=2)
    replies = asyncio.run(expert.consult([ExpertRequest(f"r{i}", PROBLEM, f"q{i}") for i in range(60)]))
    assert all(r.ok for r in replies), {r.error for r in replies if not r.ok}
    assert fresh.stats.requests == 60


def test_batch_deadline_of_consult_blocking_then_recovery(fresh):
    expert = make(fresh.base_url, timeout_s=30)
    start = time.perf_counter()
    replies = consult_blocking(
        expert, [ExpertRequest("a", PROBLEM, "FAULT:timeout x"), ExpertRequest("b", PROBLEM, "q")], 0.3
    )
    assert time.perf_counter() - start < 2.0
    assert [r.status for r in replies] == ["timeout", "timeout"]  # the batch deadline covers all of it
    retries = expert.stats.retries
    replies = consult_blocking(expert, [ExpertRequest(f"r{i}", PROBLEM, f"q{i}") for i in range(20)], 5)
    assert all(r.ok for r in replies) and expert.stats.retries == retries  # nothing wedged, pool healthy


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_a_fault_in_a_batched_request_fails_each_of_its_queries(fresh, mode):
    # batch_size 4, 16 queries: chunk 0 holds a 500, chunk 1 a reply one choice short, chunk 2 a
    # timeout, chunk 3 nothing; each fault fails its whole chunk, after its retries, and only it
    expert = make(fresh.base_url, mode=mode, batch_size=4, max_retries=1)
    faults = {1: "500", 6: "short", 8: "timeout"}
    requests = [ExpertRequest(f"r{i}", PROBLEM, query(faults.get(i, "ok"), i)) for i in range(16)]
    replies = asyncio.run(expert.consult(requests))
    assert [r.status for r in replies] == ["error"] * 8 + ["timeout"] * 4 + ["ok"] * 4
    assert "HTTP 500" in replies[0].error and "malformed completion" in replies[4].error
    assert all(r.text.startswith(f"echo: please help #{i} ") for i, r in enumerate(replies) if i >= 12)
    hits = fresh.stats.hits
    assert (hits["500"], hits["short"], hits["timeout"], hits["ok"]) == (2, 2, 2, 1)
    s = expert.stats
    assert (s.requests, s.ok, s.timeouts, s.errors, s.attempts) == (16, 4, 4, 8, 7)


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_a_refused_batch_is_split_until_only_the_refused_queries_fail(fresh, mode):
    # 8 queries in one request; the server refuses (400) any request holding #2 or #5: halves are
    # sent again (4+4, then 2+2 of each, then 1+1 where refused) and every other query is answered
    expert = make(fresh.base_url, mode=mode, batch_size=8, max_retries=2)
    faults = {2: "400", 5: "400"}
    requests = [ExpertRequest(f"r{i}", PROBLEM, query(faults.get(i, "ok"), i)) for i in range(8)]
    replies = asyncio.run(expert.consult(requests))
    assert [r.status for r in replies] == ["error" if i in faults else "ok" for i in range(8)]
    assert all("HTTP 400" in replies[i].error for i in faults)
    assert all(r.text.startswith(f"echo: please help #{i} ") for i, r in enumerate(replies) if i not in faults)
    # refused: [0..8), [0..4), [4..8), [2..4), [4..6), [2], [5]; answered: [0,1], [6,7], [3], [4]
    assert (fresh.stats.hits["400"], fresh.stats.hits["ok"]) == (7, 4)
    s = expert.stats
    assert (s.requests, s.ok, s.errors, s.splits, s.retries, s.attempts) == (8, 6, 2, 5, 0, 11)


def test_a_refusal_of_the_server_itself_is_not_split(fresh):
    # a 404 (no such route) says nothing about the queries: the batch fails once, as one request
    expert = OpenAIExpert(fresh.base_url.replace("/v1", "/nope"), model="m", batch_size=8, max_retries=2)
    replies = asyncio.run(expert.consult([ExpertRequest(f"r{i}", PROBLEM, f"q{i}") for i in range(8)]))
    assert [r.status for r in replies] == ["error"] * 8 and "HTTP 404" in replies[0].error
    assert fresh.stats.requests == 1 and (expert.stats.splits, expert.stats.attempts) == (0, 1)


def test_vector_env_with_batched_requests_completes_every_episode(fresh):
    expert = make(fresh.base_url, batch_size=4, max_retries=0)
    vec = gym.make_vec("EAPO-Math-v0", num_envs=8, expert=expert, problems=[PROBLEM], max_experts=3, max_turns=4)
    vec.reset(seed=0)
    obs, _, term, _, info = vec.step([consult_action([query("500" if e == 1 else "ok", e)]) for e in range(8)])
    assert vec.expert_calls == 1 and fresh.stats.requests == 2  # one call, two HTTP requests of 4
    assert info["unavailable"].tolist() == [1] * 4 + [0] * 4 and info["expert_errors"].tolist() == [1] * 4 + [0] * 4
    assert all(ENTRY.findall(obs[e])[0][2].startswith(f"echo: please help #{e}") for e in range(4, 8))
    obs, rew, term, trunc, info = vec.step(["<answer>42</answer>"] * 8)
    assert term.all() and not trunc.any() and (rew == 1.0).all()
    vec.close()


# ---------------------------------------------------------------- through the envs
ENTRY = re.compile(r'<expert index="(\d+)"( status="unavailable")?>(.*?)</expert>', re.S)


def consult_action(queries: list[str]) -> str:
    return "<consult>" + "".join(f"<query>{q}</query>" for q in queries) + "</consult>"


def counts(faults: list[str]) -> tuple[int, int, int]:
    """(unavailable, timeouts, errors) the env must report for these faults."""
    timeouts = sum(EXPECTED[f] == "timeout" for f in faults)
    errors = sum(EXPECTED[f] == "error" for f in faults)
    return timeouts + errors, timeouts, errors


def test_single_env_marks_failed_entries_unavailable(fresh):
    expert = make(fresh.base_url, max_retries=1)
    env = gym.make("EAPO-Math-v0", expert=expert, problems=[PROBLEM], max_experts=3, max_turns=4)
    mixes = [["ok", "500", "timeout"], ["drop", "flaky", "badjson"], ["429", "slow", "ok"], ["ok", "ok", "ok"]]
    for ep, faults in enumerate(mixes):
        env.reset(seed=ep)
        obs, reward, term, trunc, info = env.step(consult_action([query(f, f"{ep}.{i}") for i, f in enumerate(faults)]))
        unavailable, timeouts, errors = counts(faults)
        assert (info["accepted"], info["unavailable"]) == (3, unavailable)
        assert (info["expert_timeouts"], info["expert_errors"]) == (timeouts, errors)
        entries = ENTRY.findall(obs)
        assert [int(i) for i, _, _ in entries] == [1, 2, 3]
        for (_, unav, text), f, i in zip(entries, faults, range(3)):
            if EXPECTED[f] == "ok":
                assert not unav and text.startswith(f"echo: {query(f, f'{ep}.{i}')}")
            else:
                assert unav and text == "unavailable"
        obs, reward, term, trunc, info = env.step("<answer>42</answer>")
        assert term and not trunc and reward == 1.0


def test_vector_env_batch_with_faults_completes_every_episode(fresh):
    n = 48
    expert = make(fresh.base_url, max_retries=1)
    vec = gym.make_vec("EAPO-Math-v0", num_envs=n, expert=expert, problems=[PROBLEM], max_experts=3, max_turns=4)
    vec.reset(seed=0)
    kinds = list(EXPECTED)
    plan = [[kinds[(e + i) % len(kinds)] for i in range(1 + e % 3)] for e in range(n)]  # 1-3 queries each
    start = time.perf_counter()
    obs, rew, term, trunc, info = vec.step(
        [consult_action([query(f, f"{e}.{i}") for i, f in enumerate(fs)]) for e, fs in enumerate(plan)]
    )
    assert time.perf_counter() - start < 8.0  # two 1 s attempts for the timeouts, all concurrent
    expected = np.array([counts(fs) for fs in plan])
    assert info["accepted"].tolist() == [len(fs) for fs in plan]
    assert info["unavailable"].tolist() == expected[:, 0].tolist()
    assert info["expert_timeouts"].tolist() == expected[:, 1].tolist()
    assert info["expert_errors"].tolist() == expected[:, 2].tolist()
    for e, fs in enumerate(plan):  # every ok reply arrived, in its own env, at its own index
        entries = ENTRY.findall(obs[e])
        assert [bool(u) for _, u, _ in entries] == [EXPECTED[f] != "ok" for f in fs]
        assert all(
            t.startswith(f"echo: {query(f, f'{e}.{i}')}") for i, (f, (_, u, t)) in enumerate(zip(fs, entries)) if not u
        )
    # a second consulting turn, then everyone answers: no episode may be lost
    obs, rew, term, trunc, info = vec.step([consult_action([query("ok", f"{e}.x")]) for e in range(n)])
    assert info["unavailable"].tolist() == [0] * n and not term.any()
    obs, rew, term, trunc, info = vec.step(["<answer>42</answer>"] * n)
    assert term.all() and not trunc.any() and (rew == 1.0).all()
    vec.close()
