"""The torchrun learner (DESIGN §9, issue 19 item 4) on real torch.distributed gloo (CPU, fp32).

1. DDP equals one process (PyTorch's own ``_test_DDP_niter`` pattern): two ranks, each holding its
   share of whole groups of a fixed rollout batch, run k ``ppo_update`` calls (several mini-batches,
   epochs, micro-batches, clip, KL); their parameters must equal those of one process doing the same on
   the whole batch, to 1e-6 relative. One scenario leaves a rank with no kept row at all (it must still
   join every gradient sync, with zero weight). SGD, as PyTorch's test: DDP's contract is the
   gradient, and SGD maps it to the weights linearly. AdamW is no fair judge here: ``k_proj.bias`` has
   a true gradient of exactly 0 (softmax is shift-invariant), and Adam's per-element normalisation
   turns either run's rounding noise in it into full-size steps (measured: 0.7 % of its movement).
2. The real command, ``torchrun --nproc-per-node 2 -m agents.cli train`` on the shipped tiny base:
   completes, both ranks end with the same parameters (the digests the run records), those are the
   weights in ``final_policy``, and metrics/checkpoints are written once (rank 0).

The ranks are this file run as a script under torchrun (``python -m torch.distributed.run --standalone
--nproc-per-node 2 tests/test_ddp.py equality OUT``), so the test and its workers share one source.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from agents import distributed
from agents.config import TrainConfig
from agents.losses import token_logprobs
from agents.rollout.types import RolloutBatch, Trajectory
from agents.update import ppo_update, select_and_score

pytestmark = pytest.mark.slow  # three torchrun launches of two ranks: ~80 s on 2 busy cores

REPO = Path(__file__).resolve().parents[1]
K_UPDATES = 3  # ppo_update calls (training steps) per scenario
#: 3 mini-batches x 2 epochs, 2 micro-batches each, grad clip, k3 KL; lr 1e-2 moves the weights far
#: enough that the clip acts on ~30 % of tokens, not so far that rounding differences grow chaotically.
CONFIG = TrainConfig(lr=1e-2, max_grad_norm=1.0, mini_batches=3, ppo_epochs=2, grad_accum=2, kl_coef=0.05)


@dataclass(frozen=True)
class Scenario:
    name: str
    groups: int  # G = 2 episodes each
    all_correct_from: int  # groups >= this are all-correct (dynamic sampling drops them)


SCENARIOS = (
    Scenario("uneven", groups=5, all_correct_from=4),  # rank 0: 3 groups, rank 1: 2 (one dropped)
    Scenario("rank_without_rows", groups=4, all_correct_from=2),  # rank 1's groups are all dropped
)
RUNS = [(strategy, scenario) for strategy in ("ddp", "fsdp2") for scenario in SCENARIOS]


def _load_base() -> torch.nn.Module:
    from agents.policy import load_policy

    model, _ = load_policy("tiny-base")
    return model.float()


def _fixed_episodes(model: torch.nn.Module, scenario: Scenario) -> tuple[list[Trajectory], list[bool]]:
    """The same trajectories in every process: random tokens of varied lengths, policy and observation
    segments, sampling log-probs = the model's own (each sequence scored alone) + noise, so the ratio
    leaves 1 and the clip acts."""
    g = torch.Generator().manual_seed(1234 + scenario.groups)
    trajs, correct = [], []
    for group in range(scenario.groups):
        for j in range(2):
            ids = torch.randint(5, 300, (40,), generator=g).tolist()
            n_prompt, n1, n_obs, n2 = (int(x) for x in torch.randint(3, 9, (4,), generator=g))
            t = Trajectory(prompt_ids=ids[:n_prompt], group_id=group, reward=float(j == 0) - 0.1 * group)
            t.add_policy(ids[n_prompt : n_prompt + n1], [0.0] * n1)
            t.add_observation(ids[n_prompt + n1 : n_prompt + n1 + n_obs])
            t.add_policy(ids[n_prompt + n1 + n_obs : n_prompt + n1 + n_obs + n2], [0.0] * n2)
            seq = torch.tensor([t.prompt_ids + t.token_ids])
            with torch.no_grad():
                lp = token_logprobs(model, seq)[0, len(t.prompt_ids) :]
            noise = 0.05 * torch.randn(len(t.token_ids), generator=g)
            t.logprobs = (lp + noise).tolist()
            trajs.append(t)
            correct.append(group >= scenario.all_correct_from or j == 0)
    return trajs, correct


def run_updates(
    trajs: list[Trajectory], correct: list[bool], shard_world: bool, strategy: str = "ddp"
) -> tuple[dict[str, torch.Tensor], list]:
    """K_UPDATES ``ppo_update`` calls on this process's episodes (its rank's groups under torchrun);
    returns the final parameters (whole) and the statistics of each call."""
    model = _load_base()
    ref = _load_base().eval().requires_grad_(False)
    batch = RolloutBatch.from_trajectories(trajs, pad_id=0)
    _, _, advantages, loss_mask = select_and_score(batch, torch.tensor(correct), CONFIG)
    learner = distributed.wrap_for_training(model, strategy, torch.device("cpu"))
    optimizer = torch.optim.SGD(learner.parameters(), lr=CONFIG.lr)  # why not AdamW: see the module docs
    shard = distributed.RowShard.gather(len(batch)) if shard_world else None
    stats = []
    for k in range(K_UPDATES):
        gen = torch.Generator().manual_seed(100 + k)
        stats.append(ppo_update(learner, batch, advantages, loss_mask, CONFIG, optimizer, ref, gen, shard=shard))
    distributed.sync_full_weights(learner, model)  # FSDP2: the whole module gets the sharded weights
    return {k: v.clone() for k, v in distributed.full_parameters(model).items()}, stats


def equality_worker(out: Path) -> None:
    """One rank of the equality test: its groups of every scenario, then its parameters to ``out``."""
    distributed.init_from_env(torch.device("cpu"), timeout_s=120)
    try:
        for strategy, scenario in RUNS:
            trajs, correct = _fixed_episodes(_load_base(), scenario)
            groups = distributed.rank_groups(scenario.groups)
            mine = [i for i, t in enumerate(trajs) if t.group_id in groups]
            params, stats = run_updates([trajs[i] for i in mine], [correct[i] for i in mine], True, strategy)
            torch.save({"params": params, "stats": stats}, out / f"{strategy}_{scenario.name}_{distributed.rank()}.pt")
        torch.save(_rollout_calls(_RecordingEngine()), out / f"rollout_{distributed.rank()}.pt")
        torch.save(_rollout_calls(_KeyedRecordingEngine()), out / f"rollout_keyed_{distributed.rank()}.pt")
        try:
            distributed.rank_groups(1)
        except distributed.LaunchError as exc:
            (out / f"too_few_groups_{distributed.rank()}.txt").write_text(str(exc))
    finally:
        distributed.destroy()


class _RecordingEngine:
    """Records what ``rollout_episodes`` asks of the engine (and the progress clock of the envs)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def set_progress(self, step: int) -> None:
        self.calls.append({"progress": step})

    def rollout(self, envs, **kwargs) -> list:
        self.calls.append(kwargs)
        return []


class _KeyedRecordingEngine(_RecordingEngine):
    """As :class:`_RecordingEngine`, for an engine that keys its draws by episode id (ours)."""

    draws_keyed_by_id = True


def _rollout_calls(engine: _RecordingEngine) -> list[dict]:
    """Two steps of the trainer's ``rollout_episodes`` on a recording engine."""
    from agents.run_setup import step_rng
    from agents.trainer import rollout_episodes

    config = TrainConfig(group_size=3, prompts_per_step=5)
    for step in range(2):
        rollout_episodes(config, list(range(100)), engine, engine, step, step_rng(config.seed, step))
    return engine.calls


def _torchrun(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun did not finish in {timeout} s: {exc.stderr}")
    if proc.returncode != 0:
        pytest.fail(f"torchrun failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def ranks_out(tmp_path_factory) -> Path:
    """One torchrun launch of two ranks running every scenario (start-up paid once)."""
    out = tmp_path_factory.mktemp("ranks")
    t0 = time.perf_counter()
    _torchrun(str(Path(__file__).resolve()), "equality", str(out), timeout=300)
    print(f"equality ranks: {time.perf_counter() - t0:.1f} s")
    return out


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_ranks_equal_one_process(ranks_out, strategy):
    torch.set_num_threads(1)
    start = {k: v.detach() for k, v in _load_base().named_parameters()}
    for scenario in SCENARIOS:
        trajs, correct = _fixed_episodes(_load_base(), scenario)
        single, single_stats = run_updates(trajs, correct, shard_world=False)
        ranks = [torch.load(ranks_out / f"{strategy}_{scenario.name}_{r}.pt") for r in range(2)]
        for name, want in single.items():
            moved = float((want - start[name]).norm())
            for r, got in enumerate(ranks):
                torch.testing.assert_close(got["params"][name], want, rtol=1e-6, atol=1e-8, msg=f"rank {r} {name}")
                assert float((got["params"][name] - want).norm()) <= 1e-3 * moved, f"{name}: moved too little to test"
            assert torch.equal(ranks[0]["params"][name], ranks[1]["params"][name]), name
        for got, want in zip(ranks[0]["stats"], single_stats):  # averaged over ranks = whole-batch stats
            assert got.keys() == want.keys()
            for key in want:  # abs: approx_kl is a mean of differences of log-probs of size ~5
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-5), (scenario.name, key)


def test_ranks_roll_out_the_single_process_draws_in_whole_groups(ranks_out):
    """Same problems, env seeds, groups and progress clock as one process; rank 0 keeps the sampler
    key, rank 1 gets another (equal keys would give both ranks' row i the same random numbers)."""
    single = _rollout_calls(_RecordingEngine())
    ranks = [torch.load(ranks_out / f"rollout_{r}.pt") for r in range(2)]
    for i, want in enumerate(single):
        got = [rank[i] for rank in ranks]
        if "progress" in want:
            assert got == [want, want]
            continue
        for key in ("seeds", "options", "group_ids"):
            assert got[0][key] + got[1][key] == want[key], key
        assert len(set(got[0]["group_ids"]) & set(got[1]["group_ids"])) == 0  # whole groups
        assert [len(g["group_ids"]) for g in got] == [9, 6]  # 5 groups of 3: 3 + 2 groups
        assert got[0]["seed"] == want["seed"] != got[1]["seed"]
    # an engine keyed by episode id keeps the step's key on every rank, each episode its global id
    keyed = [torch.load(ranks_out / f"rollout_keyed_{r}.pt") for r in range(2)]
    for i, want in enumerate(_rollout_calls(_KeyedRecordingEngine())):
        if "progress" in want:
            continue
        got = [rank[i] for rank in keyed]
        assert "draw_ids" not in want  # a single process needs none: row = episode id
        assert got[0]["seed"] == got[1]["seed"] == want["seed"]
        assert got[0]["draw_ids"] + got[1]["draw_ids"] == list(range(15))
    message = (ranks_out / "too_few_groups_0.txt").read_text()
    assert "prompts_per_step = 1 < 2 ranks" in message


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_torchrun_train_command_writes_once_and_ranks_agree(tmp_path, strategy):
    """The acceptance command on the shipped tiny base, shrunk to seconds (16 episodes, 2 steps, a
    small final evaluation): one report, one metrics line per step over both ranks' episodes, one
    checkpoint, one TensorBoard file, and both ranks' final weights equal to ``final_policy``'s."""
    from agents.policy import load_policy

    out = tmp_path / "run"
    t0 = time.perf_counter()
    proc = _torchrun(
        "-m", "agents.cli", "train", "--config", "quickstart", "--out", str(out), "--no-progress",
        "--set", "steps=2", "prompts_per_step=4", "group_size=4", "eval_num_problems=8", "eval_k=2",
        "eval_pass_ks=[1]", f'distributed="{strategy}"',
        # quickstart's schedules are shares of the run: at steps=2, p(t) = 0 and 2 turns by step 1, where
        # every group may be all-wrong (nothing to update); fixed schedules keep both steps updating
        'acceptance_schedule="const:1.0"', 'turn_schedule="const:4"', timeout=240,
    )  # fmt: skip
    print(f"torchrun train ({strategy}): {time.perf_counter() - t0:.1f} s")
    assert proc.stdout.count("eapo: run in") == 1, proc.stdout  # rank 0 reports, rank 1 is silent
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1]
    assert all(r["episodes"] == 16 and r["optimizer_steps"] > 0 for r in records)  # both ranks' episodes
    assert [c.name for c in (out / "checkpoints").iterdir()] == ["step_000002"]
    assert len(list((out / "tb").rglob("events.out.tfevents.*"))) == 1
    assert json.loads((out / "result.json").read_text())["eval"]["k"] == 2  # evaluated once, on rank 0
    digests = json.loads((out / "train_summary.json").read_text())["param_sha256_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert distributed.parameter_digest(load_policy(out / "final_policy")[0]) == digests[0]
    assert distributed.parameter_digest(load_policy("tiny-base")[0]) != digests[0]  # it did train


def test_misconfigured_launch_is_a_clear_error_not_a_hang(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in distributed.TORCHRUN_VARS}
    cmd = [sys.executable, "-m", "agents.cli", "train", "--config", "quickstart", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, env={**env, "WORLD_SIZE": "2"}, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "WORLD_SIZE=2 but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set" in proc.stderr
    assert not (tmp_path / "metrics.jsonl").exists()


if __name__ == "__main__":
    if sys.argv[1] == "equality":
        equality_worker(Path(sys.argv[2]))
