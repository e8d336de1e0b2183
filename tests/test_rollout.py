"""Rollout engines: token-in/token-out, masks, exact KV-cache continuation, stopping, budgets."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from agents_fixtures import FakeTextEnv, build_tiny_model, build_tiny_tokenizer, reference_greedy_rollout  # noqa: E402

import agents.rollout.engine as engine_mod  # noqa: E402
from agents.losses import policy_loss, token_logprobs  # noqa: E402
from agents.rollout import HFRolloutEngine, RolloutBatch, RolloutEngine, StopCriteria, make_engine  # noqa: E402

CAP, BUDGET = 24, 400


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    torch.set_num_threads(1)
    return build_tiny_model(tok, stop_prob=0.1)


def run(model, tok, n=6, engine="ours", max_turns=3, seed=0, **kw):
    kw = {"max_turn_tokens": CAP, "max_total_tokens": BUDGET} | kw
    eng = make_engine(engine, model, tok, seed=seed, **kw)
    envs = [FakeTextEnv(max_turns=max_turns) for _ in range(n)]
    return eng.rollout(envs, seeds=list(range(n)), group_ids=[i // 2 for i in range(n)]), envs


def segments(traj):
    """[(mask, ids)] runs of equal loss mask."""
    out = []
    for t, m in zip(traj.token_ids, traj.loss_mask):
        if out and out[-1][0] == m:
            out[-1][1].append(t)
        else:
            out.append((m, [t]))
    return out


def test_masks_align_and_observations_are_masked(model, tok):
    trajs, envs = run(model, tok)
    for traj, env in zip(trajs, envs):
        assert len(traj.loss_mask) == len(traj.token_ids) == len(traj.logprobs)
        assert all(lp == 0.0 for lp, m in zip(traj.logprobs, traj.loss_mask) if m == 0)
        assert all(lp < 0.0 for lp, m in zip(traj.logprobs, traj.loss_mask) if m == 1)
        segs = segments(traj)
        policy = [ids for m, ids in segs if m == 1]
        obs = [ids for m, ids in segs if m == 0]
        assert len(policy) == traj.num_turns
        # every observation segment is exactly the env's text tokenized once
        assert obs == [tok.encode(o, add_special_tokens=False) for o in env.observations[: len(obs)]]


def test_token_in_token_out_and_env_text(model, tok, monkeypatch):
    sampled: Counter = Counter()
    real = engine_mod.sample_tokens

    def spy(*a, **k):
        tokens, lps = real(*a, **k)
        sampled.update(tokens.tolist())
        return tokens, lps

    monkeypatch.setattr(engine_mod, "sample_tokens", spy)
    trajs, envs = run(model, tok)
    recorded = Counter(t for tr in trajs for t, m in zip(tr.token_ids, tr.loss_mask) if m == 1)
    assert recorded == sampled  # every sampled token is kept, none re-tokenized or dropped
    stop = StopCriteria(tok)
    for traj, env in zip(trajs, envs):
        policy = [ids for m, ids in segments(traj) if m == 1]
        assert [stop.turn_text(ids) for ids in policy][: len(env.actions)] == env.actions
        for ids in policy[:-1]:  # every turn but a budget-cut last one ends at a stop tag or EOS
            assert ids[-1] in stop.all_ids or len(ids) == CAP


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_rescore_matches_sampling_logprobs(model, tok, temperature):
    """Re-scoring with a plain full forward reproduces the recorded log-probs: the KV-cache
    continuation across env steps is exact."""
    trajs, _ = run(model, tok, n=8, temperature=temperature, max_turns=4)
    assert sum(t.num_turns for t in trajs) > 8  # multi-turn really happened
    batch = RolloutBatch.from_trajectories(trajs, pad_id=tok.pad_token_id)
    with torch.no_grad():
        lp = token_logprobs(model, batch.input_ids, batch.attention_mask, temperature=temperature)
    err = ((lp - batch.old_logprobs).abs() * batch.loss_mask).max().item()
    assert err < 1e-4


def test_greedy_equals_no_cache_reference(model, tok):
    trajs, _ = run(model, tok, n=4, temperature=0.0)
    for i, traj in enumerate(trajs):
        ref = reference_greedy_rollout(model, tok, FakeTextEnv(max_turns=3), i, CAP, BUDGET)
        assert traj.token_ids == ref


def test_greedy_ours_equals_hf(model, tok):
    ours, _ = run(model, tok, n=4, temperature=0.0)
    hf, _ = run(model, tok, n=4, temperature=0.0, engine="hf")
    assert [t.token_ids for t in ours] == [t.token_ids for t in hf]
    assert [t.num_turns for t in ours] == [t.num_turns for t in hf]


def test_prefill_chunking_is_invisible(model, tok):
    a, _ = run(model, tok, n=5, temperature=0.0)
    b, _ = run(model, tok, n=5, temperature=0.0, prefill_chunk_tokens=64)
    assert [t.token_ids for t in a] == [t.token_ids for t in b]


def test_seeded_sampling_is_reproducible(model, tok):
    a, _ = run(model, tok, n=4, seed=3)
    b, _ = run(model, tok, n=4, seed=3)
    assert [t.token_ids for t in a] == [t.token_ids for t in b]


def test_token_budget_truncates(model, tok):
    budget = 170
    trajs, _ = run(model, tok, n=6, max_total_tokens=budget, max_turns=8)
    for t in trajs:
        assert len(t.prompt_ids) + len(t.token_ids) <= budget
        if not t.terminated:
            assert t.truncated
    assert any(t.overlong for t in trajs)


def test_prompt_longer_than_budget(model, tok):
    trajs, envs = run(model, tok, n=2, max_total_tokens=10)
    assert all(t.truncated and t.overlong and t.num_turns == 0 for t in trajs)
    assert all(e.actions == [] for e in envs)


def test_env_turn_budget_and_bookkeeping(model, tok):
    trajs, _ = run(model, tok, n=6, max_turns=1)
    for i, t in enumerate(trajs):
        assert t.num_turns == 1 and (t.terminated or t.truncated) and not t.overlong
        assert t.group_id == i // 2 and t.problem_id == f"p{i}"
        assert len(t.infos) == 1
    batch = RolloutBatch.from_trajectories(trajs, pad_id=tok.pad_token_id)
    assert batch.group_ids.tolist() == [0, 0, 1, 1, 2, 2]
    lengths = batch.attention_mask.sum(1)
    for i, t in enumerate(trajs):
        assert lengths[i] == len(t.prompt_ids) + len(t.token_ids)
        assert batch.loss_mask[i, : len(t.prompt_ids)].sum() == 0
        assert batch.loss_mask[i].sum() == t.num_policy_tokens


def test_env_tokens_get_zero_gradient(model, tok):
    trajs, _ = run(model, tok, n=4)
    batch = RolloutBatch.from_trajectories(trajs, pad_id=tok.pad_token_id)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.detach()
    logits.requires_grad_(True)
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    lp = torch.cat([torch.zeros_like(lp[:, :1]), lp], 1)  # position t = logprob of token t
    adv = torch.tensor([1.0, -1.0, 0.5, 2.0])
    loss, _ = policy_loss(lp, batch.old_logprobs, adv, batch.loss_mask)
    loss.backward()
    # the logits at t - 1 predict token t: their gradient is zero exactly where token t is not policy
    grad_norm = logits.grad[:, :-1].abs().sum(-1)
    masked = batch.loss_mask[:, 1:] == 0
    assert grad_norm[masked].max() == 0
    assert (grad_norm[~masked] > 0).all()


def test_text_stop_fallback():
    tok = build_tiny_tokenizer(tags_as_tokens=False)
    stop = StopCriteria(tok)
    assert set(stop.string_stops) == {"</consult>", "</answer>"}
    ids = tok.encode("so <answer>42</answer>", add_special_tokens=False)
    assert stop.text_stop(ids) and not stop.text_stop(ids[:-1])
    model = build_tiny_model(tok, stop_prob=0.0)
    trajs, envs = run(model, tok, n=3, max_turns=2, max_turn_tokens=8)
    assert all(t.num_turns >= 1 for t in trajs)
    batch = RolloutBatch.from_trajectories(trajs, pad_id=tok.pad_token_id)
    with torch.no_grad():
        lp = token_logprobs(model, batch.input_ids, batch.attention_mask)
    assert ((lp - batch.old_logprobs).abs() * batch.loss_mask).max() < 1e-4


def test_hf_engine_logprobs_and_interface(model, tok):
    trajs, envs = run(model, tok, n=4, engine="hf")
    batch = RolloutBatch.from_trajectories(trajs, pad_id=tok.pad_token_id)
    with torch.no_grad():
        lp = token_logprobs(model, batch.input_ids, batch.attention_mask)
    assert ((lp - batch.old_logprobs).abs() * batch.loss_mask).max() < 1e-4
    assert all(len(t.infos) == len(e.actions) for t, e in zip(trajs, envs))
    assert isinstance(make_engine("hf", model, tok), HFRolloutEngine)


def test_unknown_engine_and_vllm_optional(model, tok):
    with pytest.raises(ValueError):
        make_engine("nope", model, tok)
    with pytest.raises(TypeError, match="in-memory torch model"):  # an HF model has .generate too
        make_engine("vllm", model, tok)
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="vLLM"):
            make_engine("vllm", "some/model", tok)


def test_real_vector_env(model, tok):
    """The engine over ``gym.make_vec``: typed step infos booked, correctness read from the env."""
    import gymnasium as gym

    import eapo_env  # noqa: F401  (registers the ids)

    vec = gym.make_vec("EAPO-Math-v0", num_envs=4, problems="generated", expert="reference", max_turns=3)
    eng = RolloutEngine(model, tok, max_turn_tokens=CAP, max_total_tokens=600, seed=0)
    trajs = eng.rollout(vec, seeds=[0, 0, 1, 1], group_ids=[0, 0, 1, 1])
    for t in trajs:
        assert t.terminated or t.truncated
        assert t.problem_id is not None and t.num_turns == len(t.infos) >= 1
        assert [info["turn"] for info in t.infos] == list(range(1, len(t.infos) + 1))
        if not t.overlong:  # the env ended it: its own verdict, never a guess from the reward
            assert t.correct == t.infos[-1]["correct"] and t.consults == t.infos[-1]["consults"]
    assert trajs[0].problem_id == trajs[1].problem_id
    batch = RolloutBatch.from_trajectories(trajs, pad_id=tok.pad_token_id)
    with torch.no_grad():
        lp = token_logprobs(model, batch.input_ids, batch.attention_mask)
    assert ((lp - batch.old_logprobs).abs() * batch.loss_mask).max() < 1e-4
    vec.close()


class SlowExpert:
    """An async expert backend whose every call takes ``delay_s`` (a deterministic reply per request)."""

    def __init__(self, delay_s: float = 0.3) -> None:
        self.delay_s, self.calls = delay_s, 0

    async def consult(self, requests):
        import asyncio

        from eapo_env.experts import ExpertReply

        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return [ExpertReply(f"hint {len(r.query)} for {r.problem.id}") for r in requests]


@pytest.fixture(scope="module")
def consulting(tok):
    from agents_fixtures import train_consulting_model

    return train_consulting_model(tok)


def test_parked_rows_overlap_decoding_and_change_nothing(consulting, tok):
    """Rows waiting on a slow expert are parked while the others decode on; the trajectories are
    exactly those of the old path (each env stepped on its own, blocking), sampled at T = 1."""
    import gymnasium as gym

    from agents.rollout import PerEnvVector

    def vec(expert):
        return gym.make_vec("EAPO-Math-v0", num_envs=16, problems="generated:arithmetic:1", expert=expert, max_turns=3)

    kw = dict(max_turn_tokens=CAP, max_total_tokens=700, temperature=1.0)
    expert = SlowExpert()
    eng = RolloutEngine(consulting, tok, **kw)
    parked = eng.rollout(vec(expert), seeds=list(range(16)), seed=5)
    stats = eng.stats
    old = RolloutEngine(consulting, tok, **kw).rollout(
        PerEnvVector(vec(SlowExpert()).envs), seeds=list(range(16)), seed=5
    )
    assert sum(t.consults for t in parked) >= 6  # the model really consults
    first_turn = {(t.loss_mask + [0]).index(0) for t in parked}  # policy tokens before the first observation
    assert len(first_turn) > 1  # rows stopped their first turn at different steps...
    assert stats.overlapped_steps > 0  # ...and some decoded while others waited on the expert
    assert expert.calls < sum(t.consults for t in parked)  # batched: fewer calls than consulting turns
    assert 0 < stats.env_cpu_seconds <= stats.env_seconds + 1e-3  # the env's CPU is counted, within its wall
    for a, b in zip(parked, old):
        assert (a.token_ids, a.loss_mask) == (b.token_ids, b.loss_mask)
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)  # other batch shapes: float rounding only
        assert (a.reward, a.terminated, a.truncated, a.correct) == (b.reward, b.terminated, b.truncated, b.correct)
        assert a.infos == b.infos


def test_engines_agree_on_the_vector_env(consulting, tok):
    """Greedy: ours (parked rows) and hf (lock-step) give the same episodes over the same vector env."""
    import gymnasium as gym

    runs = []
    for name in ("ours", "hf"):
        vec = gym.make_vec(
            "EAPO-Math-v0", num_envs=4, problems="generated:arithmetic:1", expert=SlowExpert(0.05), max_turns=3
        )
        eng = make_engine(name, consulting, tok, max_turn_tokens=CAP, max_total_tokens=700, temperature=0.0)
        runs.append(eng.rollout(vec, seeds=[3, 4, 5, 6]))
    assert [t.token_ids for t in runs[0]] == [t.token_ids for t in runs[1]]
    assert [t.infos for t in runs[0]] == [t.infos for t in runs[1]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs path needs a GPU")
def test_cuda_graphs_match_eager(model, tok):  # pragma: no cover - no GPU on CI
    m = build_tiny_model(tok, stop_prob=0.1).cuda()
    a = RolloutEngine(m, tok, max_turn_tokens=CAP, max_total_tokens=BUDGET, temperature=0.0, cuda_graphs=True)
    b = RolloutEngine(m, tok, max_turn_tokens=CAP, max_total_tokens=BUDGET, temperature=0.0, cuda_graphs=False)
    ta = a.rollout([FakeTextEnv() for _ in range(5)], seeds=list(range(5)))
    tb = b.rollout([FakeTextEnv() for _ in range(5)], seeds=list(range(5)))
    assert [t.token_ids for t in ta] == [t.token_ids for t in tb]


def test_engines_leave_train_mode_alone(model, tok):
    model.train()
    try:
        run(model, tok, n=2, max_turns=1)
        run(model, tok, n=2, max_turns=1, engine="hf")
        assert model.training
    finally:
        model.eval()


def test_gpu_check_script_is_well_formed():
    """The CPU-checkable parts of ``scripts/gpu_check.sh``: shell syntax, the benchmark calls parse, the
    CUDA-graph test it selects exists, and the ~100M model its config builds has ~100M parameters."""
    import shlex
    import subprocess

    root = Path(__file__).resolve().parents[1]
    script = root / "scripts" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    sys.path.insert(0, str(root / "benchmarks"))
    import bench_rollout

    text = script.read_text().replace("\\\n", " ")
    calls = [
        shlex.split(line.split("bench_rollout.py", 1)[1].split("|")[0])
        for line in text.splitlines()
        if "bench_rollout.py" in line and not line.lstrip().startswith("#")
    ]
    assert len(calls) == 2
    parsed = [bench_rollout.build_parser().parse_args(argv) for argv in calls]
    assert all(
        a.device == "cuda" and a.batch == [256, 1024] and a.turns == [3] and a.engines == ["ours", "hf"] for a in parsed
    )
    assert parsed[0].policy and parsed[1].model_size == "100m" and parsed[1].dtype == "bfloat16"
    assert "-k cuda_graphs" in text and callable(test_cuda_graphs_match_eager)
    model = bench_rollout.build_model("100m", build_tiny_tokenizer(), 0.03, device="meta")
    assert 80e6 < sum(p.numel() for p in model.parameters()) < 120e6


def test_a_failed_rollout_leaves_the_vector_env_usable(consulting, tok):
    """An error in the middle of a rollout (here: tokenizing an observation) propagates, and the
    steps still with the expert are completed, so the same vector env rolls out again."""
    import gymnasium as gym

    vec = gym.make_vec(
        "EAPO-Math-v0", num_envs=6, problems="generated:arithmetic:1", expert=SlowExpert(0.2), max_turns=3
    )

    def broken(text):
        raise ValueError("tokenizer down")

    with pytest.raises(ValueError, match="tokenizer down"):
        RolloutEngine(consulting, tok, max_turn_tokens=CAP, max_total_tokens=700, encode_observation=broken).rollout(
            vec, seeds=list(range(6)), seed=1
        )
    trajs = RolloutEngine(consulting, tok, max_turn_tokens=CAP, max_total_tokens=700).rollout(vec, seeds=list(range(6)))
    assert all(t.terminated or t.truncated for t in trajs)


def test_training_configs_take_the_vllm_engine_with_its_sync_fields():
    """``engine = "vllm"`` trains (the weights are pushed each step: tests/test_vllm_training.py); its
    remote mode needs the server's URL; LoRA and the final evaluation are refused with a message."""
    from agents.config import TrainConfig

    assert TrainConfig(engine="vllm", final_eval=False).vllm_mode == "colocate"
    with pytest.raises(ValueError, match="vllm_url"):
        TrainConfig(engine="vllm", vllm_mode="remote", final_eval=False)
    with pytest.raises(ValueError, match="lora_r"):
        TrainConfig(engine="vllm", lora_r=4, final_eval=False)
    with pytest.raises(ValueError, match="final_eval"):  # the evaluation cannot run on vLLM yet: said up front
        TrainConfig(engine="vllm")
