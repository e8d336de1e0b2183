"""EAPO episodes inside TRL's GRPOTrainer (agents/integrations/trl.py, examples/trl_grpo.py).

The example runs 2 real TRL steps on the shipped tiny base with the reference expert. What TRL
receives is read in two places: the dict the rollout returns (a wrapper of ``on_rollout``) and the
batch TRL's own loss is computed on (a ``GRPOTrainer`` subclass recording ``compute_loss``'s inputs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

try:
    import trl  # noqa: F401
except ImportError:  # declared in setup.cfg's extras and tox.ini: missing is a broken environment, not a skip
    pytest.fail("the 'trl' extra is not installed (pip install -e '.[trl]')", pytrace=False)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import trl_grpo  # noqa: E402

from agents.integrations.trl import TESTED_TRL_VERSION, completion_of  # noqa: E402
from agents.policy.tokenizer import encode_segment  # noqa: E402
from agents.rollout import StopCriteria, Trajectory  # noqa: E402


@pytest.fixture(scope="module")
def example_run():
    import torch
    from trl import GRPOTrainer

    loss_batches: list[dict[str, list[list[int]]]] = []

    class RecordingTrainer(GRPOTrainer):
        """Records the completion ids and the loss mask of every batch TRL computes its loss on."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss_mask = inputs["completion_mask"] * inputs["tool_mask"]  # what TRL's _compute_loss multiplies in
            ids = inputs["completion_ids"]
            kept = inputs["completion_mask"].bool()
            loss_batches.append(
                {
                    "ids": [row[k].tolist() for row, k in zip(ids, kept)],
                    "mask": [row[k].tolist() for row, k in zip(loss_mask, kept)],
                }
            )
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    records = []
    torch.manual_seed(0)
    result = trl_grpo.run(steps=2, trainer_cls=RecordingTrainer, on_rollout=records.append)
    return {**result, "records": records, "loss_batches": loss_batches}


def mask_runs(ids: list[int], mask: list[int]) -> list[tuple[int, list[int]]]:
    """``[(mask value, ids), ...]`` for each maximal run of equal mask values."""
    runs: list[tuple[int, list[int]]] = []
    for tok, m in zip(ids, mask):
        if runs and runs[-1][0] == m:
            runs[-1][1].append(tok)
        else:
            runs.append((m, [tok]))
    return runs


def test_trl_is_the_tested_version():
    import trl

    assert trl.__version__ == TESTED_TRL_VERSION


def test_agents_import_without_trl():
    code = (
        "import sys; sys.modules['trl'] = None\n"  # any `import trl` now raises ImportError
        "import agents.integrations, agents.integrations.trl as t\n"
        "assert callable(t.EAPORollout) and 'trl' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr


def test_two_trl_steps_ran_with_one_rollout_each(example_run):
    assert example_run["trainer"].state.global_step == 2
    assert [r.step for r in example_run["records"]] == [0, 1]  # rollouts at TRL's global steps 0 and 1
    assert len(example_run["loss_batches"]) == 2


def test_mask_trl_receives_is_zero_on_expert_and_env_tokens_and_one_on_policy_tokens(example_run):
    rollout = example_run["rollout"]
    tokenizer = rollout.tokenizer
    stop = StopCriteria(tokenizer)
    eos = tokenizer.eos_token_id
    expert_tokens = 0
    for record in example_run["records"]:
        out = record.output
        for row, transcript in enumerate(record.transcripts):
            ids, mask = out["completion_ids"][row], out["env_mask"][row]
            assert len(ids) == len(mask) == len(out["logprobs"][row])
            assert transcript[0][0] == "prompt"
            segments = transcript[1:]
            runs = mask_runs(ids, mask)
            if not record.trajectories[row].overlong and runs[-1][0] == 0:  # the env ended it: a closing EOS
                assert runs.pop() == (0, [eos])
            elif not record.trajectories[row].overlong:  # ... unless the policy's own last token was EOS
                assert runs[-1][1][-1] == eos
            assert len(runs) == len(segments), (runs, segments)
            for (value, run_ids), (source, text) in zip(runs, segments):
                if source == "policy":
                    assert value == 1
                    assert stop.turn_text(run_ids) == text  # the sampled tokens, as the env read them
                else:
                    assert source in ("expert", "env") and value == 0
                    assert run_ids == encode_segment(tokenizer, text)  # the observation, tokenized once
                    expert_tokens += len(run_ids) if source == "expert" else 0
            for m, lp in zip(mask, out["logprobs"][row]):
                assert (lp == 0.0) if m == 0 else (-30.0 < lp <= 0.0)  # sampling log-probs on policy tokens
    assert expert_tokens > 0  # some expert text was in a completion (and masked)


def test_loss_mask_inside_trl_equals_the_rollout_mask(example_run):
    for record, batch in zip(example_run["records"], example_run["loss_batches"]):
        sent = sorted(zip(map(tuple, record.output["completion_ids"]), map(tuple, record.output["env_mask"])))
        used = sorted(zip(map(tuple, batch["ids"]), map(tuple, batch["mask"])))  # TRL shuffles the rows
        assert used == sent


def test_p_t_seen_by_the_env_follows_trls_global_step(example_run):
    rollout = example_run["rollout"]
    schedule = rollout.config.acceptance()
    assert rollout.config.steps == example_run["trainer"].state.max_steps == 2  # the horizon is TRL's
    seen = []
    for record in example_run["records"]:
        p_env = [t.reset_info["acceptance_prob"] for t in record.trajectories]
        assert p_env == pytest.approx([schedule(record.step)] * len(p_env))
        seen.append(p_env[0])
    assert seen == [pytest.approx(1.0), pytest.approx(0.5)]
    assert [h["eapo/p_t"] for h in example_run["logs"]] == pytest.approx(seen)  # logged through TRL's metrics


def test_rewards_trl_logs_are_the_envs_rewards(example_run):
    for record, log in zip(example_run["records"], example_run["logs"]):
        env_rewards = [t.reward for t in record.trajectories]
        assert record.output["eapo_reward"] == env_rewards
        assert log["reward"] == pytest.approx(sum(env_rewards) / len(env_rewards), abs=1e-6)
        assert log["rewards/eapo_reward/mean"] == pytest.approx(log["reward"], abs=1e-6)
    trajs = [t for r in example_run["records"] for t in r.trajectories]
    for t in trajs:  # verified correctness minus the consult penalty (0.1 per consulting turn)
        assert t.reward == pytest.approx(float(t.correct) - 0.1 * t.consults)
    assert any(t.consults for t in trajs)


def test_a_consult_got_an_accepted_reply_and_the_rate_is_logged(example_run):
    records, logs = example_run["records"], example_run["logs"]
    assert sum(sum(r.output["eapo_accepted"]) for r in records) >= 1
    for record, log in zip(records, logs):
        consulted = [c > 0 for c in record.output["eapo_consults"]]
        assert log["eapo/consult_rate"] == pytest.approx(sum(consulted) / len(consulted))


def test_completion_of_closes_ended_episodes_and_leaves_cut_ones_open():
    ended = Trajectory(prompt_ids=[1], token_ids=[5, 6, 7], loss_mask=[1, 0, 1], logprobs=[-0.5, 0.0, -0.2])
    assert completion_of(ended, eos_id=2, pad_id=0) == ([5, 6, 7, 2], [1, 0, 1, 0], [-0.5, 0.0, -0.2, 0.0])
    cut = Trajectory(prompt_ids=[1], token_ids=[5, 6], loss_mask=[1, 1], logprobs=[-0.1, -0.1], overlong=True)
    assert completion_of(cut, eos_id=2, pad_id=0) == ([5, 6], [1, 1], [-0.1, -0.1])
    empty = Trajectory(prompt_ids=[1] * 9, overlong=True)
    assert completion_of(empty, eos_id=2, pad_id=0) == ([0], [0], [0.0])


def test_bad_prompts_and_engines_are_clear_errors(example_run):
    from agents.integrations.trl import EAPORollout

    with pytest.raises(ValueError, match="engine"):
        EAPORollout(trl_grpo.example_config(2), example_run["rollout"].tokenizer, engine="nope")
    with pytest.raises(TypeError, match="problem ids"):
        example_run["rollout"]([[{"role": "user", "content": "hi"}]], example_run["trainer"])


def test_self_exploration_under_trl_never_calls_an_expert():
    records = []
    result = trl_grpo.run(steps=1, method="self_explore", engine="hf", on_rollout=records.append)
    (record,) = records
    assert all("Solve the problem." in transcript[0][1] for transcript in record.transcripts)  # evaluation prompt
    assert not any(source == "expert" for transcript in record.transcripts for source, _ in transcript)
    assert sum(record.output["eapo_accepted"]) == 0
    assert result["logs"][0]["eapo/dose"] == 0.0
    assert result["trainer"].state.global_step == 1
