"""Embedded experts (reference, constant, noisy, replay), the pool, the registry/plugins, local models."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eapo_env.experts import (
    ExpertReply,
    ExpertRequest,
    available_experts,
    consult_blocking,
    make_expert,
)
from eapo_env.experts.pool import ExpertPool, query_index
from eapo_env.experts.replay import ReplayExpert
from eapo_env.experts.simple import MEANINGLESS, ConstantExpert, NoisyExpert, ReferenceExpert, perturb_answer
from eapo_env.problems import Problem, load_problems
from eapo_env.verify import verify
from tests.conftest import AsyncSpyExpert, SpyExpert

DATA = Path(__file__).parent / "data"
TOY = Problem("toy/1", "What is $2+3$?", "5", "$2+3=5$.\nThe answer is \\boxed{5}.")
NO_SOLUTION = Problem("toy/3", "Solve $2x = -8$.", "-4")


def req(query: str = "q", problem: Problem = TOY, rid: str = "e0/0/0") -> ExpertRequest:
    return ExpertRequest(rid, problem, query)


def boxed(text: str) -> str:
    start = text.rindex("\\boxed{") + len("\\boxed{")
    depth, i = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start : i - 1]


# ---------------------------------------------------------------- reference / constant
def test_reference_returns_worked_solution_whatever_the_query():
    expert = make_expert("reference")
    replies = expert.consult_sync([req("the whole problem please"), req("just a hint"), req("")])
    assert [r.text for r in replies] == [TOY.solution] * 3
    assert all(r.ok and r.expert == "reference" and r.tokens > 0 for r in replies)


def test_reference_without_solution_boxes_the_answer():
    (reply,) = ReferenceExpert().consult_sync([req(problem=NO_SOLUTION)])
    assert reply.text == "The answer is \\boxed{-4}."


def test_reference_is_correct_on_generated_problems():
    problems = load_problems("generated")
    for i in range(0, 2000, 97):
        p = problems[i]
        (reply,) = ReferenceExpert().consult_sync([req(problem=p)])
        assert verify(boxed(reply.text), p.answer).score == 1.0, (p.id, reply.text)


@pytest.mark.parametrize("cache_size", [3, 64])  # evicting, and holding every problem
def test_reference_cache_never_mixes_up_problems(cache_size):
    """The reply cache is keyed by problem identity; neither a full cache nor a freed problem (whose
    id gets reused) may hand one problem's solution to another."""
    expert = ReferenceExpert(cache_size=cache_size)
    for round_ in range(4):
        problems = [Problem(f"p{round_}/{i}", f"q{i}", str(i), f"sol {round_}/{i}") for i in range(5)]
        batch = [req(problem=p) for p in problems for _ in range(2)]
        assert [r.text for r in expert.consult_sync(batch)] == [p.solution for p in problems for _ in range(2)]
        del problems, batch  # frees the problems: their ids may be reused next round
    assert len(expert._cache) <= cache_size


def test_reference_builds_one_reply_per_problem(monkeypatch):
    """What keeps the embedded expert cheap at thousands of requests per step (its speed is measured
    in benchmarks/bench_vector_env.py): one reply object per problem, shared by every request on it."""
    built = []
    monkeypatch.setattr(ReferenceExpert, "reply_for", staticmethod(lambda p: built.append(p.id) or ExpertReply(p.id)))
    problems = [Problem(f"p{i}", "q", "1") for i in range(3)]
    expert = ReferenceExpert()
    replies = expert.consult_sync([req(rid=f"e{i}/0/0", problem=problems[i % 3]) for i in range(1000)])
    replies += expert.consult_sync([req(problem=p) for p in problems])
    assert sorted(built) == ["p0", "p1", "p2"]
    assert [r.text for r in replies[:6]] == ["p0", "p1", "p2"] * 2
    assert len({id(r) for r in replies}) == 3


def test_constant_is_content_free_and_configurable():
    assert [r.text for r in ConstantExpert().consult_sync([req(), req("x")])] == [MEANINGLESS] * 2
    assert make_expert("constant", text="nope").consult_sync([req()])[0].text == "nope"


def test_async_consult_of_sync_expert_matches_sync():
    expert = ReferenceExpert()
    assert asyncio.run(expert.consult([req()])) == expert.consult_sync([req()])


# ---------------------------------------------------------------- noisy
@given(st.integers(-(10**6), 10**6), st.integers(0, 1000))
def test_perturbed_integer_is_wrong(n, draw):
    assert verify(perturb_answer(str(n), draw), str(n)).score == 0.0


@pytest.mark.parametrize(
    "gold", ["\\frac{3}{4}", "-\\frac{1}{2}", "\\dfrac{7}{3}", "0.25", "-3.5", "1,000", "2x+1", "(1, 2)", "Paris", ""]
)
def test_perturbed_answers_are_wrong(gold):
    for draw in range(12):
        wrong = perturb_answer(gold, draw)
        assert wrong != gold
        if gold:
            assert verify(wrong, gold).score == 0.0, (gold, wrong)


def test_noisy_rate_zero_and_one():
    batch = [req(rid=f"e{i}/0/0") for i in range(50)]
    clean = NoisyExpert("reference", error_rate=0.0).consult_sync(batch)
    assert [r.text for r in clean] == [TOY.solution] * 50
    dirty = NoisyExpert("reference", error_rate=1.0).consult_sync(batch)
    assert all(boxed(r.text) != "5" and verify(boxed(r.text), "5").score == 0.0 for r in dirty)
    assert all(r.text.startswith("$2+3=5$.") for r in dirty)  # the worked steps are kept


def test_noisy_rate_is_respected_and_deterministic():
    problems = load_problems("generated")
    batch = [req(problem=problems[i], rid=f"e{i}/0/{i % 3}") for i in range(2000)]
    a = NoisyExpert("reference", error_rate=0.3, seed=7).consult_sync(batch)
    b = NoisyExpert("reference", error_rate=0.3, seed=7).consult_sync(batch)
    c = NoisyExpert("reference", error_rate=0.3, seed=8).consult_sync(batch)
    assert a == b
    assert a != c
    wrong = sum(verify(boxed(r.text), q.problem.answer).score == 0.0 for r, q in zip(a, batch))
    assert 0.25 < wrong / len(batch) < 0.35


def test_noisy_without_boxed_appends_a_wrong_answer():
    (reply,) = NoisyExpert(ConstantExpert("think harder"), error_rate=1.0).consult_sync([req()])
    assert reply.text.startswith("think harder\nThe answer is \\boxed{") and boxed(reply.text) != "5"


def test_noisy_passes_failures_through():
    class Failing(SpyExpert):
        def consult_sync(self, requests):
            return [ExpertReply("", "timeout", error="slow") for _ in requests]

    (reply,) = NoisyExpert(Failing(), error_rate=1.0).consult_sync([req()])
    assert reply.status == "timeout" and reply.text == ""


def test_noisy_over_async_base_has_no_sync_path_and_delegates():
    base = AsyncSpyExpert()
    noisy = NoisyExpert(base, error_rate=1.0)
    assert getattr(noisy, "consult_sync", None) is None
    assert not hasattr(noisy, "consult_sync")
    (reply,) = consult_blocking(noisy, [req("hello")])
    assert base.requests and base.requests[0].query == "hello"  # the async base was really called
    assert reply.text == "async:hello\nThe answer is \\boxed{" + boxed(reply.text) + "}."
    assert boxed(reply.text) != "5"
    assert callable(NoisyExpert("reference", error_rate=0.5).consult_sync)


def test_noisy_rejects_bad_rate():
    with pytest.raises(ValueError):
        NoisyExpert(error_rate=1.5)


# ---------------------------------------------------------------- replay
def test_replay_samples_recorded_responses_deterministically():
    expert = make_expert("replay", path=DATA / "replay_tiny.jsonl", seed=0)
    assert len(expert) == 5
    batch = [req(rid=f"e{i}/0/0") for i in range(200)]
    texts = [r.text for r in expert.consult_sync(batch)]
    assert set(texts) == set(expert.responses["toy/1"])  # all three recordings get used, nothing else
    assert texts == [r.text for r in ReplayExpert(DATA / "replay_tiny.jsonl", seed=0).consult_sync(batch)]
    assert texts != [r.text for r in ReplayExpert(DATA / "replay_tiny.jsonl", seed=1).consult_sync(batch)]
    five = Problem("toy/5", "What is $7 \\times 6$?", "42")
    assert expert.consult_sync([req(problem=five)])[0].text.endswith("\\boxed{42}.")  # "id" alias


def test_replay_unknown_problem_is_an_error_reply():
    (reply,) = ReplayExpert(DATA / "replay_tiny.jsonl").consult_sync([req(problem=NO_SOLUTION)])
    assert reply.status == "error" and "no recording" in reply.error and reply.text == ""


def test_replay_rejects_malformed_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem_id": "a", "response": "x"}\n{"problem_id": "b"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        ReplayExpert(bad)


# ---------------------------------------------------------------- pool
def test_query_index_convention():
    assert query_index("env3/2/1", 9) == 1
    assert query_index("whatever", 9) == 9
    assert query_index("a/b/x", 4) == 4


def test_pool_round_robin_over_consults_of_a_vector_step():
    pool = ExpertPool(["reference", "constant", {"name": "constant", "text": "third"}])
    # two envs, the first consults with 2 queries, the second with 3: ids carry the query index
    batch = [req(rid="e0/1/0"), req(rid="e0/1/1"), req(rid="e1/4/0"), req(rid="e1/4/1"), req(rid="e1/4/2")]
    replies = pool.consult_sync(batch)
    assert [r.expert for r in replies] == [
        "slot0:reference",
        "slot1:constant",
        "slot0:reference",
        "slot1:constant",
        "slot2:constant",
    ]
    assert [r.text for r in replies] == [TOY.solution, MEANINGLESS, TOY.solution, MEANINGLESS, "third"]
    assert asyncio.run(pool.consult(batch)) == replies


def test_pool_calls_each_expert_once_per_batch_and_keeps_order():
    spies = [SpyExpert(), SpyExpert()]
    pool = ExpertPool(spies)
    batch = [req(f"q{i}", rid=f"e{i // 3}/0/{i % 3}") for i in range(9)]
    replies = pool.consult_sync(batch)
    assert [r.text for r in replies] == [f"spy:q{i}" for i in range(9)]
    assert [len(s.calls) for s in spies] == [1, 1]
    assert [q.query for q in spies[1].requests] == ["q1", "q4", "q7"]


def test_pool_replicas_share_one_call():
    spy = SpyExpert()
    pool = ExpertPool.replicas(spy, 3)
    replies = pool.consult_sync([req(rid=f"e0/0/{i}") for i in range(3)])
    assert len(spy.calls) == 1
    assert [r.expert for r in replies] == ["replica0:spy", "replica1:spy", "replica2:spy"]


def test_pool_mixed_async_slot_uses_loop_and_isolates_failures():
    class Broken:
        name = "broken"

        async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
            raise RuntimeError("server exploded")

    pool = ExpertPool([AsyncSpyExpert(), Broken(), "reference"])
    assert getattr(pool, "consult_sync", None) is None
    replies = consult_blocking(pool, [req("a", rid="e0/0/0"), req("b", rid="e0/0/1"), req("c", rid="e0/0/2")])
    assert [r.status for r in replies] == ["ok", "error", "ok"]
    assert replies[0].text == "async:a" and "server exploded" in replies[1].error
    assert replies[1].expert == "slot1:broken"


def test_pool_hash_assignment_spreads_single_queries():
    pool = ExpertPool(["reference", "constant", "reference"], assignment="hash")
    slots = [pool.slot_of(req(rid=f"e{i}/0/0"), 0) for i in range(300)]
    assert all(60 < slots.count(s) < 140 for s in range(3))
    assert slots == [pool.slot_of(req(rid=f"e{i}/0/0"), 0) for i in range(300)]


def test_pool_validates_arguments():
    with pytest.raises(ValueError):
        ExpertPool([])
    with pytest.raises(ValueError):
        ExpertPool(["reference"], names=["a", "b"])
    with pytest.raises(ValueError):
        ExpertPool(["reference"], assignment="random")
    with pytest.raises(ValueError, match="'name'"):
        ExpertPool([{"text": "x"}])


# ---------------------------------------------------------------- registry and plugins
def test_every_builtin_name_resolves():
    assert {"reference", "constant", "noisy", "openai", "replay", "pool", "transformers", "vllm"} <= set(
        available_experts()
    )
    assert make_expert("pool", experts=["reference", "constant"]).names == ["slot0:reference", "slot1:constant"]
    assert make_expert("openai", base_urls="http://127.0.0.1:9/v1", model="m").endpoints == ["http://127.0.0.1:9/v1"]


def test_entry_point_plugin(monkeypatch):
    assert "echo" not in available_experts()
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    assert "echo" in available_experts()
    expert = make_expert("echo", prefix=">> ")
    assert type(expert).__module__ == "eapo_test_plugin"
    assert consult_blocking(expert, [req("hi")])[0].text == ">> hi"


# ---------------------------------------------------------------- local models
def test_vllm_expert_without_vllm_says_so():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(ImportError, match="optional vllm"):
        make_expert("vllm", model="x")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    out = tmp_path_factory.mktemp("tiny")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    lines = ["What is 2+3? The answer is 5.", "Problem: solve for x. The student asks: a hint?"] * 20
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    fast.save_pretrained(out)
    config = transformers.Qwen2Config(
        vocab_size=len(fast),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=fast.eos_token_id,
    )
    import torch

    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(config).save_pretrained(out)
    return out


def test_transformers_expert_batches_with_left_padding(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    expert = make_expert("transformers", model=str(tiny_model_dir), max_new_tokens=6)
    short, long = req("a?", rid="e0/0/0"), req("a much longer question about the problem " * 3, rid="e1/0/0")
    state = torch.random.get_rng_state()
    replies = asyncio.run(expert.consult([short, long]))
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert [r.status for r in replies] == ["ok", "ok"] and expert.calls == 1
    assert all(0 < r.tokens <= 6 for r in replies)
    # left padding is right: batched greedy output equals each request generated alone
    alone = [consult_blocking(expert, [q])[0].text for q in (short, long)]
    assert [r.text for r in replies] == alone


def test_transformers_expert_failure_is_a_status(tiny_model_dir):
    expert = make_expert("transformers", model=str(tiny_model_dir), max_new_tokens=2)

    def boom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    expert.model.generate = boom
    replies = consult_blocking(expert, [req(), req()])
    assert [r.status for r in replies] == ["error", "error"] and "out of memory" in replies[0].error
