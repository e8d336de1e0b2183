"""The ``vllm`` tier: real consults against a real vLLM OpenAI server on CPU.

The server serves a tiny Qwen2 built by our own ``agents.policy.build`` (random weights, no SFT:
its text is gibberish, which is fine, we check that it arrives where it must, intact). It runs from
the vLLM venv (``bash scripts/setup_vllm_venv.sh``; ``EAPO_VLLM_VENV`` to reuse one); see
``tests/servers/vllm_server.py``. If the venv is missing or the server does not come up, every
test here FAILS with the reason and the server log's tail: this tier never skips.

Counting what reached the server: each check reads vLLM's own Prometheus counter
``vllm:request_success_total`` (generation requests the engine finished) before and after, so a
client that thinks it sent something but did not, or sent more than it should, is caught. The
counter is updated asynchronously, so "nothing arrived" is proved with a fence: after the action
under test, one known request is sent and the counter must land on exactly ``before + 1``.
A recording wrapper around the expert also counts the batched ``consult`` calls on the client side
(one call per consulting step is the vector env's contract).

Several expert servers (the last tests): a second server beside the first, both behind one
``openai`` expert: the load spreads over both (each server's own counter), then the second is
killed (SIGKILL, as a crash) while it generates for a vector env's consult: every episode still
gets every reply, from the first server, and the failed-over requests are counted.

Run:  ``pytest -m vllm`` (about 2-3 minutes, mostly the servers' start).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence

import gymnasium as gym
import pytest
from servers.vllm_server import VLLMServer, VLLMServerError, ensure_served_model, start_vllm_server

import eapo_env  # noqa: F401  (registers the env ids)
from eapo_env import prompts
from eapo_env.experts import ExpertReply, ExpertRequest, consult_blocking, make_expert
from eapo_env.experts.openai_backend import OpenAIExpert
from eapo_env.problems import load_problems

pytestmark = pytest.mark.vllm

MAX_TOKENS = 12
PROBLEMS = "generated:arithmetic"


@pytest.fixture(scope="session")
def vllm_srv() -> Iterator[VLLMServer]:
    """One real server for the whole tier; a failure to start fails every test, with the log."""
    try:
        model_dir = ensure_served_model()
        server = start_vllm_server(model_dir, startup_timeout_s=300, single_process=True)
    except VLLMServerError as exc:
        pytest.fail(f"vLLM tier: the server could not start.\n{exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


class Recording:
    """Wraps an async expert; records every batched ``consult`` call and its replies."""

    def __init__(self, inner: OpenAIExpert) -> None:
        self.inner = inner
        self.calls: list[list[ExpertRequest]] = []
        self.replies: list[list[ExpertReply]] = []
        self.wall_s: list[float] = []

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        self.calls.append(list(requests))
        t0 = time.perf_counter()
        out = await self.inner.consult(requests)
        self.wall_s.append(time.perf_counter() - t0)
        self.replies.append(list(out))
        return out


def make_openai(server: VLLMServer, mode: str = "chat", **kw) -> OpenAIExpert:
    return OpenAIExpert(
        [server.base_url],
        model=server.model_name,
        mode=mode,
        temperature=0.0,
        top_p=1.0,
        max_tokens=MAX_TOKENS,
        timeout_s=60.0,
        max_retries=0,
        **kw,
    )


def fenced_count(server: VLLMServer, before: int) -> int:
    """Requests the server finished since ``before``, excluding a fence request sent now.

    After the fence the counter is exactly ``before + n + 1`` once stats are flushed, where n is
    what arrived earlier; waiting for ``before + 1`` and then briefly for more gives n.
    """
    server.complete("fence", max_tokens=1)
    n = server.wait_requests_finished(before + 1, timeout_s=15)
    time.sleep(0.3)  # let any straggling stats land
    return server.requests_finished() - before - 1 if n >= before + 1 else -1


def assert_ok(reply: ExpertReply) -> None:
    assert reply.status == "ok", f"{reply.status}: {reply.error}"
    assert reply.text, "empty reply text"
    assert 1 <= reply.tokens <= MAX_TOKENS
    assert reply.latency_s > 0


# ---------------------------------------------------------------------------------------------


def test_server_is_up_and_counts(vllm_srv: VLLMServer) -> None:
    before = vllm_srv.requests_finished()
    out = vllm_srv.complete(["2 + 2 =", "3 + 3 ="], max_tokens=4)
    assert len(out["choices"]) == 2
    assert vllm_srv.wait_requests_finished(before + 2) == before + 2


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_openai_expert_modes(vllm_srv: VLLMServer, mode: str) -> None:
    problems = load_problems(PROBLEMS)
    expert = make_expert(
        "openai",
        base_urls=[vllm_srv.base_url],
        model=vllm_srv.model_name,
        mode=mode,
        temperature=0.0,
        top_p=1.0,
        max_tokens=MAX_TOKENS,
        timeout_s=60.0,
        max_retries=0,
    )
    assert isinstance(expert, OpenAIExpert)
    requests = [ExpertRequest(f"r{i}", problems[i], f"what is step {i}?") for i in range(2)]
    before = vllm_srv.requests_finished()
    replies = consult_blocking(expert, requests, timeout_s=120)
    assert len(replies) == 2
    for reply in replies:
        assert_ok(reply)
    assert expert.stats.ok == 2 and expert.stats.completion_tokens == sum(r.tokens for r in replies)
    assert vllm_srv.wait_requests_finished(before + 2) == before + 2
    # temperature 0: the same request gives the same text (the replies are the server's, not made up)
    again = consult_blocking(expert, requests[:1], timeout_s=120)
    assert again[0].text == replies[0].text


def test_env_consult_writes_server_text(vllm_srv: VLLMServer) -> None:
    rec = Recording(make_openai(vllm_srv))
    env = gym.make("EAPO-Math-v0", problems=PROBLEMS, expert=rec)
    env.reset(seed=0)
    before = vllm_srv.requests_finished()
    obs, reward, terminated, truncated, info = env.step("<consult><query>How do I start?</query></consult>")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert len(rec.calls) == 1 and len(rec.calls[0]) == 1
    reply = rec.replies[0][0]
    assert_ok(reply)
    assert info["accepted"] == 1 and info["unavailable"] == 0
    # the observation is exactly the experts block of the server's text (escaped as the env escapes)
    assert obs == prompts.render_experts_block([reply.text])
    assert env.unwrapped.transcript[-1] == ("expert", obs)
    assert vllm_srv.wait_requests_finished(before + 1) == before + 1
    env.close()


def test_k3_queries_all_answered_in_one_consult(vllm_srv: VLLMServer) -> None:
    rec = Recording(make_openai(vllm_srv, mode="completions"))
    env = gym.make("EAPO-Math-v0", problems=PROBLEMS, expert=rec, max_experts=3)
    env.reset(seed=1)
    before = vllm_srv.requests_finished()
    action = "<consult><query>first?</query><query>second?</query><query>third?</query></consult>"
    obs, _, _, _, info = env.step(action)
    assert len(rec.calls) == 1 and [r.query for r in rec.calls[0]] == ["first?", "second?", "third?"]
    for reply in rec.replies[0]:
        assert_ok(reply)
    assert info["queries"] == 3 and info["accepted"] == 3 and info["unavailable"] == 0
    assert obs == prompts.render_experts_block([r.text for r in rec.replies[0]])
    assert vllm_srv.wait_requests_finished(before + 3) == before + 3
    env.close()


def test_vector_env_consults_go_out_as_one_batch(vllm_srv: VLLMServer) -> None:
    n_envs, k = 4, 3
    rec = Recording(make_openai(vllm_srv, mode="completions"))
    vec = gym.make_vec("EAPO-Math-v0", num_envs=n_envs, problems=PROBLEMS, expert=rec, max_experts=k)
    vec.reset(seed=0)
    before = vllm_srv.requests_finished()
    actions = [
        "<consult>" + "".join(f"<query>env {i} query {j}?</query>" for j in range(k)) + "</consult>"
        for i in range(n_envs)
    ]
    obs, reward, terminated, truncated, info = vec.step(actions)
    # client side: exactly one batched expert call carrying all N x k queries
    assert len(rec.calls) == 1, f"{len(rec.calls)} expert calls for one vector step"
    assert len(rec.calls[0]) == n_envs * k
    assert sorted(r.query for r in rec.calls[0]) == sorted(
        f"env {i} query {j}?" for i in range(n_envs) for j in range(k)
    )
    for reply in rec.replies[0]:
        assert_ok(reply)
    # the batch went out concurrently: its wall time is well under the sum of its requests' latencies
    assert rec.wall_s[0] < 0.5 * sum(r.latency_s for r in rec.replies[0]), (
        rec.wall_s,
        [r.latency_s for r in rec.replies[0]],
    )
    # every reply arrived in the right env's observation
    assert info["accepted"].tolist() == [k] * n_envs and info["unavailable"].tolist() == [0] * n_envs
    by_query = {req.query: rep.text for req, rep in zip(rec.calls[0], rec.replies[0])}
    for i in range(n_envs):
        assert obs[i] == prompts.render_experts_block([by_query[f"env {i} query {j}?"] for j in range(k)])
    # server side: every query reached the engine, once
    assert vllm_srv.wait_requests_finished(before + n_envs * k) == before + n_envs * k
    vec.close()


def test_eval_env_never_hits_the_server(vllm_srv: VLLMServer) -> None:
    rec = Recording(make_openai(vllm_srv))
    env = gym.make("EAPO-Math-Eval-v0", problems=PROBLEMS, expert=rec)
    env.reset(seed=0)
    before = vllm_srv.requests_finished()
    for _ in range(3):
        obs, _, terminated, truncated, info = env.step("<consult><query>help?</query><query>more?</query></consult>")
        assert info.get("consult_disabled") is True and info["accepted"] == 0
        assert "<experts>" not in obs
        if terminated or truncated:
            break
    env.close()
    vec = gym.make_vec("EAPO-Math-Eval-v0", num_envs=3, problems=PROBLEMS, expert=rec)
    vec.reset(seed=0)
    vec.step(["<consult><query>help?</query></consult>"] * 3)
    vec.close()
    assert rec.calls == [] and rec.inner.stats.requests == 0
    assert fenced_count(vllm_srv, before) == 0


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_batched_requests_reach_vllm_as_one_request_in_order(vllm_srv: VLLMServer, mode: str) -> None:
    """``batch_size`` > 1: five queries go out as ONE HTTP request (a prompt list, or vLLM's
    ``/chat/completions/batch``); each reply comes back in its query's place. ``echo`` makes every
    reply start with (chat: the user text) or contain (completions) its own prompt, which proves the order."""
    problems = load_problems(PROBLEMS)
    # chat echo needs the last message's role to be the reply's: continue the user message
    echo = {"echo": True, "add_generation_prompt": False} if mode == "chat" else {"echo": True}
    expert = make_openai(vllm_srv, mode, batch_size=8, extra_body=echo)
    requests = [ExpertRequest(f"r{i}", problems[i], f"what is step {i}?") for i in range(5)]
    before = vllm_srv.requests_finished()
    replies = consult_blocking(expert, requests, timeout_s=120)
    assert [r.status for r in replies] == ["ok"] * 5, [r.error for r in replies]
    for request, reply in zip(requests, replies):
        prompt = expert.render_prompt(request)
        assert reply.text.startswith(prompt) if mode == "chat" else prompt in reply.text
        assert len(reply.text) > len(prompt)  # plus the generated continuation
    assert expert.stats.attempts == 1 and expert.stats.ok == 5
    assert 5 <= expert.stats.completion_tokens <= 5 * MAX_TOKENS
    assert vllm_srv.wait_requests_finished(before + 5) == before + 5


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_a_query_past_the_context_length_fails_alone_in_a_batch(vllm_srv: VLLMServer, mode: str) -> None:
    """vLLM refuses (400) a whole batched request when one of its prompts is longer than
    ``--max-model-len``; the client sends the halves again, so only that query fails."""
    problems = load_problems(PROBLEMS)
    expert = make_openai(vllm_srv, mode, batch_size=8)
    queries = [f"what is step {i}?" for i in range(4)]
    queries[1] = "7 " * 5000  # far past the served model's 2048-token context
    requests = [ExpertRequest(f"r{i}", problems[i], q) for i, q in enumerate(queries)]
    before = vllm_srv.requests_finished()
    replies = consult_blocking(expert, requests, timeout_s=120)
    assert [r.status for r in replies] == ["ok", "error", "ok", "ok"], [r.error for r in replies]
    assert "HTTP 400" in replies[1].error and all(replies[i].text for i in (0, 2, 3))
    # refused: [0..4) and [0, 1], then [1] alone; answered: [2, 3] and [0]
    assert (expert.stats.splits, expert.stats.attempts, expert.stats.ok) == (2, 5, 3)
    assert fenced_count(vllm_srv, before) == 3  # the engine generated for exactly the three others


# --------------------------------------------------------------------------------------------
# Several expert servers: balanced, and one lost mid-run costs no episode


@pytest.fixture(scope="module")
def second_srv(vllm_srv: VLLMServer) -> Iterator[VLLMServer]:
    """A second server (same model) for the fleet tests; the last of them kills it."""
    try:
        server = start_vllm_server(vllm_srv.model_dir, startup_timeout_s=300, single_process=True)
    except VLLMServerError as exc:
        pytest.fail(f"vLLM tier: the second server could not start.\n{exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def running(server: VLLMServer) -> int:
    """Requests the server's engine is generating for now (its own gauge)."""
    return int(sum(v for k, v in server.metrics().items() if k.startswith("vllm:num_requests_running")))


def test_two_servers_share_the_load(vllm_srv: VLLMServer, second_srv: VLLMServer) -> None:
    problems = load_problems(PROBLEMS)
    expert = OpenAIExpert(
        [vllm_srv.base_url, second_srv.base_url],
        model=vllm_srv.model_name,
        mode="completions",
        temperature=0.0,
        max_tokens=MAX_TOKENS,
        timeout_s=60.0,
        max_concurrency=8,
    )
    before = (vllm_srv.requests_finished(), second_srv.requests_finished())
    requests = [ExpertRequest(f"r{i}", problems[i % len(problems)], f"step {i}?") for i in range(32)]
    replies = consult_blocking(expert, requests, timeout_s=180)
    for reply in replies:
        assert_ok(reply)
    served = [fenced_count(s, b) for s, b in zip((vllm_srv, second_srv), before)]
    assert sum(served) == 32 and min(served) >= 8, served  # both took a real share, every query once
    assert list(expert.stats.by_endpoint.values()) == served and expert.stats.retries == 0


def test_a_server_killed_mid_run_costs_no_episode(vllm_srv: VLLMServer, second_srv: VLLMServer) -> None:
    n_envs, k = 8, 3
    expert = OpenAIExpert(
        [vllm_srv.base_url, second_srv.base_url],
        model=vllm_srv.model_name,
        mode="completions",
        temperature=0.0,
        max_tokens=192,
        extra_body={"ignore_eos": True},  # long generations: the kill lands while they run
        timeout_s=120.0,
        max_retries=2,
        backoff_s=0.2,
    )
    vec = gym.make_vec("EAPO-Math-v0", num_envs=n_envs, problems=PROBLEMS, expert=expert, max_experts=k)
    vec.reset(seed=0)
    first_before = vllm_srv.requests_finished()
    actions = [
        "<consult>" + "".join(f"<query>env {i} q{j}?</query>" for j in range(k)) + "</consult>" for i in range(n_envs)
    ]
    outcome: dict[str, object] = {}
    stepper = threading.Thread(target=lambda: outcome.update(step=vec.step(actions)), daemon=True)
    stepper.start()
    deadline = time.monotonic() + 60
    while running(second_srv) == 0:  # the second server is generating for some of the queries
        assert stepper.is_alive() and time.monotonic() < deadline, "the second server never got a query"
        time.sleep(0.05)
    killed_while_running = running(second_srv)
    os.killpg(second_srv.process.pid, signal.SIGKILL)  # a crash: no graceful drain
    stepper.join(180)
    second_srv.stop()
    assert not stepper.is_alive(), "the vector step did not return after the kill"
    obs, reward, terminated, truncated, info = outcome["step"]  # type: ignore[misc]
    # no query lost: every env got all k replies, none unavailable
    assert info["accepted"].tolist() == [k] * n_envs and info["unavailable"].tolist() == [0] * n_envs
    assert info["expert_errors"].tolist() == [0] * n_envs and info["expert_timeouts"].tolist() == [0] * n_envs
    s = expert.stats
    print(f"killed with {killed_while_running} generating on it; {s}")  # for the tier's log (-rP)
    assert (s.ok, s.errors, s.timeouts) == (n_envs * k, 0, 0)
    assert s.retries >= killed_while_running > 0 and s.failovers >= killed_while_running
    # the first server generated for its own share and for every query failed over to it
    assert fenced_count(vllm_srv, first_before) == s.by_endpoint[vllm_srv.base_url] >= s.failovers
    # and every episode still ends, scored
    obs, reward, terminated, truncated, info = vec.step(["<answer>0</answer>"] * n_envs)
    assert terminated.all() and not truncated.any()
    vec.close()
