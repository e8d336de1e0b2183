"""``rollout_workers = N`` on real Ray (a local cluster, one per module): the sharded rollout equals the
in-process one, a worker that dies or stalls costs no episode and counts none twice, and
``eapo train --set rollout_workers=2`` completes.

Equality: the engine keys each episode's sampling draws by its id in the step (``draw_ids``), so a
shard samples what the unsharded rollout samples. On this machine's kernels the float results of a
4-row shard and the 8-row batch agree closely enough that every token is equal; the test asserts
that (tokens exactly, log-probs to 1e-5) next to what holds whatever the numerics: problems, env
seeds, groups and schedule values.
"""

from __future__ import annotations

import json
import time

import pytest
import ray
import torch

from agents.config import load_config
from agents.policy import load_policy, resolve_policy_path
from agents.rollout.ledger import EpisodeLedger, ShardResult
from agents.rollout.types import Trajectory
from agents.run_setup import build_engine, make_envs, step_rng
from agents.trainer import rollout_episodes
from eapo_env.problems import load_problems

B = 8  # episodes per step: 4 groups of 2


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module (start-up is ~10 s); pools inside it leave it running."""
    try:
        ray.init(num_cpus=6, include_dashboard=False, object_store_memory=2**28, logging_level="WARNING")
    except Exception as exc:  # a tier that cannot start fails loudly
        pytest.fail(f"could not start a local Ray cluster: {exc}")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    config = load_config(
        "quickstart", group_size=2, prompts_per_step=4, rollout_workers=2, worker_timeout_s=10.0,
        tensorboard=False, progress_bar=False,
    )  # fmt: skip
    policy_dir = resolve_policy_path(config.policy)
    model, tokenizer = load_policy(policy_dir)
    source = load_problems(config.problems, seed=config.problems_seed)
    engine = build_engine(config, model, tokenizer, torch.device("cpu"))
    envs = make_envs(config, B, source)
    yield config, policy_dir, model, source, envs, engine
    envs.close()


def reference(setup, step: int) -> list[Trajectory]:
    """The in-process rollout (``rollout_workers = 0``) of ``step`` with the model as it is now."""
    config, _, _, source, envs, engine = setup
    return rollout_episodes(config, source, envs, engine, step, step_rng(config.seed, step))


def sharded(setup, pool, step: int) -> list[Trajectory]:
    config, _, model, source, _, _ = setup
    pool.push_weights(model, version=step)
    return rollout_episodes(config, source, pool, pool, step, step_rng(config.seed, step))


def assert_same(a: list[Trajectory], b: list[Trajectory]) -> None:
    assert len(a) == len(b) == B
    for x, y in zip(a, b):
        # equal whatever the numerics: problem, group, schedule values the env used (p(t), turn budget)
        assert (x.group_id, x.problem_id, x.reset_info, x.prompt_ids) == (
            y.group_id,
            y.problem_id,
            y.reset_info,
            y.prompt_ids,
        )
        # equal here (see the module docs): the sampled tokens and what the env made of them
        assert x.token_ids == y.token_ids and x.loss_mask == y.loss_mask
        assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-5)
        assert (x.reward, x.correct, x.num_turns) == (y.reward, y.correct, y.num_turns)


def assert_ledger_exact(pool) -> None:
    """0 lost, 0 counted twice: the returned ids are exactly the ledger's, each once."""
    ledger = pool.last_ledger
    assert sorted(ledger.done) == sorted(ledger.specs) == list(range(B))
    assert ledger.dropped == 0 and not ledger.missing()


@pytest.fixture(scope="module")
def pool(cluster, setup):
    from agents.rollout.ray_workers import RayRolloutPool

    config, policy_dir = setup[0], setup[1]
    logs: list[str] = []
    p = RayRolloutPool(config, policy_dir, log=logs.append)
    p.logs = logs  # type: ignore[attr-defined]
    yield p
    p.close()


def test_draw_ids_key_a_shard_like_the_whole_batch(setup):
    """No Ray: episodes 4..7 rolled out alone sample the tokens of the 8-row batch only when their
    draws are keyed by their ids in the step (what every worker passes)."""
    config, _, _, source, _, engine = setup
    whole = reference(setup, 0)
    rng = step_rng(config.seed, 0)
    problems = rng.integers(len(source), size=config.prompts_per_step).tolist()
    seeds = rng.integers(2**31 - 1, size=B).tolist()
    key = int(rng.integers(2**62))
    shard_envs = make_envs(config, 4, source)
    shard_envs.set_progress(0)
    kw = dict(seeds=seeds[4:], options=[{"problem_index": problems[i // 2]} for i in range(4, 8)], seed=key)
    keyed = engine.rollout(shard_envs, group_ids=[2, 2, 3, 3], draw_ids=[4, 5, 6, 7], **kw)
    by_row = engine.rollout(shard_envs, group_ids=[2, 2, 3, 3], **kw)
    shard_envs.close()
    assert [t.token_ids for t in keyed] == [t.token_ids for t in whole[4:]]
    assert [t.token_ids for t in by_row] != [t.token_ids for t in whole[4:]]


def test_ledger_dedupes_and_refuses_a_stale_version():
    ledger = EpisodeLedger.plan([1, 2, 3, 4], [{"problem_index": 7}] * 4, [0, 0, 1, 1], version=3)
    assert ledger.shard(list(range(4)), 2) == [[0, 1], [2, 3]]
    assert ledger.shard(list(range(4)), 3) == [[0, 1], [], [2, 3]]  # whole groups only
    ok = ShardResult("w0", 3, [0, 1], [Trajectory([1], group_id=0), Trajectory([2], group_id=0)])
    ledger.accept(ok)
    ledger.accept(ok)  # a late copy of the same episodes (a presumed-dead worker's)
    assert ledger.dropped == 2 and sorted(ledger.done) == [0, 1] and ledger.missing() == [2, 3]
    with pytest.raises(RuntimeError, match="policy version 2"):
        ledger.accept(ShardResult("w1", 2, [2], [Trajectory([3], group_id=1)]))
    with pytest.raises(ValueError, match="problem_index"):
        EpisodeLedger.plan([1], [{"x": 1}], [0], version=0)


def test_two_workers_equal_in_process(setup, pool):
    for step in (0, 1):  # p(t) differs between the steps: set_progress reached the workers
        assert_same(reference(setup, step), sharded(setup, pool, step))
        assert_ledger_exact(pool)
    assert pool.stats.workers_lost == 0


def test_dead_and_stalled_workers_lose_no_episode(setup, pool):
    from agents.rollout.ray_workers import WorkerFault, weights_checksum

    model = setup[2]
    pool.arm(WorkerFault(slot=0, mode="die", step=2))  # os._exit inside its shard, mid-step
    assert_same(reference(setup, 2), sharded(setup, pool, 2))
    assert_ledger_exact(pool)
    assert (pool.stats.workers_lost, pool.stats.replacements, pool.stats.episodes_rerun) == (1, 1, 4)
    assert ray.get(pool.slots[0].actor.held.remote()) == (2, 2, pytest.approx(weights_checksum(model)))

    with torch.no_grad():  # new weights: the replacement must sample with them too
        for p in model.parameters():
            p.mul_(1.01)
    try:
        pool.arm(WorkerFault(slot=1, mode="stall", step=3))  # silent past worker_timeout_s = 10 s
        t0 = time.monotonic()
        assert_same(reference(setup, 3), sharded(setup, pool, 3))
        assert 10 <= time.monotonic() - t0 < 60
        assert_ledger_exact(pool)
        assert (pool.stats.workers_lost, pool.stats.replacements, pool.stats.episodes_rerun) == (2, 2, 8)
        assert ray.get(pool.slots[1].actor.held.remote()) == (3, 3, pytest.approx(weights_checksum(model)))
        assert any("died" in m for m in pool.logs) and any("returned nothing" in m for m in pool.logs)
    finally:
        with torch.no_grad():
            for p in model.parameters():
                p.div_(1.01)


def test_no_worker_left_is_an_error_not_a_hang(setup, pool):
    from agents.rollout.ray_workers import WorkerFault

    for slot in (0, 1):  # every worker and every replacement dies: the restart budget runs out
        pool.arm(WorkerFault(slot=slot, mode="die", step=4, replacements=True))
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="no rollout worker left|lost their rollout worker"):
        sharded(setup, pool, 4)
    assert time.monotonic() - t0 < 120


def test_eapo_train_with_two_workers(cluster, tmp_path):
    """The acceptance command, in-process (the module's cluster is reused; final eval off for time)."""
    from agents.cli import main

    argv = ["train", "--config", "quickstart", "--out", str(tmp_path), "--no-progress", "--set",
            "rollout_workers=2", "steps=2", "final_eval=false", "tensorboard=false"]  # fmt: skip
    cpus_free = ray.available_resources().get("CPU", 0.0)
    assert main(argv) == 0
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [0, 1]
    assert (tmp_path / "final_policy").is_dir()
    deadline = time.monotonic() + 20  # the run's actors were killed: their CPUs come back
    while ray.available_resources().get("CPU", 0.0) < cpus_free and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0.0) >= cpus_free
