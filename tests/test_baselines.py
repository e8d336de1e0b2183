"""Every baseline and ablation of the paper runs from a packaged config (DESIGN §8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.baselines import expert_replies, with_policy_expert, workflow_problems
from agents.config import load_config
from agents.methods import METHODS, RUNNERS, register, runner
from eapo_env import prompts

CONFIGS = Path(__file__).resolve().parents[1] / "agents" / "configs"

#: Ablation config -> (the config it ablates, the only keys allowed to differ from it).
ABLATIONS = {
    "eapo_sched_const": ("eapo", {"acceptance_schedule"}),
    "eapo_sched_slow": ("eapo", {"acceptance_schedule"}),
    "eapo_sched_fast": ("eapo", {"acceptance_schedule"}),
    "eapo_expert_self": ("eapo", {"expert", "expert_kwargs"}),
    "eapo_expert_noisy": ("eapo", {"expert", "expert_kwargs"}),
    "eapo_expert_constant": ("eapo", {"expert", "expert_kwargs"}),
    "eapo_expert_noisy_k1": ("eapo_expert_noisy", {"max_experts"}),
    "distill_lora": ("distill_sft", {"lora_r", "lora_alpha"}),
    "workflow_noisy": ("expert_workflow", {"expert", "expert_kwargs"}),
    "workflow_constant": ("expert_workflow", {"expert", "expert_kwargs"}),
    "self_collab": ("expert_workflow", {"expert", "expert_kwargs"}),
    # The mechanism rows (issue 20): only whether and what the experts answer differs.
    "eapo_answer": ("eapo_hint", {"expert"}),
    "eapo_placebo": ("eapo_hint", {"expert"}),
    "mech_self_explore": ("eapo_hint", {"acceptance_schedule"}),
}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_packaged_config_loads_and_has_a_runner(path):
    config = load_config(path.stem)
    assert config.method in METHODS and config.method in RUNNERS


def test_every_method_has_exactly_one_registered_runner():
    """One registry: every name config validation accepts has a runner, and only those do."""
    assert sorted(RUNNERS) == sorted(METHODS)
    assert all(runner(m) is RUNNERS[m] for m in METHODS)
    assert runner("eapo") is runner("self_explore")
    with pytest.raises(ValueError, match="not in agents.methods.METHODS"):
        register("dpo")(lambda *a, **k: {})
    with pytest.raises(ValueError, match="already has a runner"):
        register("base")(lambda *a, **k: {})
    with pytest.raises(ValueError, match="method"):
        load_config(None, method="dpo")


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_an_ablation_changes_only_its_knob(name):
    parent, knobs = ABLATIONS[name]
    mine, theirs = load_config(name).to_dict(), load_config(parent).to_dict()  # effective values
    differ = {k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)}
    assert differ and differ <= knobs, (
        f"{name} differs from {parent} in {sorted(differ - knobs)}: an ablation extends its parent and sets only its knob"
    )


def test_budget_matched_constant_spends_the_default_schedules_budget():
    default, const = load_config("eapo"), load_config("eapo_sched_const")
    p = default.acceptance()
    mean_p = sum(p(t) for t in range(default.steps)) / default.steps
    assert const.acceptance()(0) == pytest.approx(mean_p, abs=0.005)
    slow, fast = (
        load_config("eapo_sched_slow").acceptance(),
        load_config("eapo_sched_fast").acceptance(),
    )
    mid = next(t for t in range(default.steps) if p(t) <= 0.5)  # half-way down the default's decay
    assert fast(mid) < p(mid) < slow(mid)


def test_the_sequential_ablation_is_k1_at_the_same_turn_budget():
    k1, k3 = load_config("eapo_expert_noisy_k1"), load_config("eapo_expert_noisy")
    assert (k1.max_experts, k3.max_experts) == (1, 3)
    assert (k1.max_turns, k1.turn_schedule) == (k3.max_turns, k3.turn_schedule)


def test_policy_expert_defaults_to_the_runs_own_policy(tmp_path):
    config = load_config("self_collab")
    assert config.expert == "policy" and "policy_dir" not in config.expert_kwargs
    filled = with_policy_expert(config, tmp_path)
    assert filled.expert_kwargs["policy_dir"] == str(tmp_path)
    assert filled.expert_kwargs["max_new_tokens"] == config.expert_kwargs["max_new_tokens"]
    pinned = config.replace(expert_kwargs={"policy_dir": "elsewhere"})
    assert with_policy_expert(pinned, tmp_path) is pinned
    assert with_policy_expert(load_config("expert_workflow"), tmp_path).expert_kwargs == {}


def test_workflow_shows_k_replica_replies_per_question():
    config = load_config("workflow_noisy", eval_num_problems=6)
    problems = workflow_problems(config)
    assert len(problems) == 6
    for p in problems:
        block = p.question[p.question.index("<experts>") :]
        assert block.count('<expert index="') == config.max_experts
    replies = expert_replies(
        config.replace(expert_kwargs={"base": "reference", "error_rate": 0.5}), problems, replicas=3
    )
    assert len({tuple(r) for r in replies}) > 1
    # replicas are independent draws of the noisy expert: some question gets disagreeing replies
    assert any(len(set(r)) > 1 for r in replies)


def test_constant_workflow_block_is_the_meaningless_text():
    config = load_config("workflow_constant", eval_num_problems=2)
    p = workflow_problems(config)[0]
    assert p.question.endswith(
        prompts.render_experts_block(["I cannot offer you any assistance; please resolve the issue yourself."] * 3)
    )


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """A tiny random policy directory (locally built; random weights are enough to run the path)."""
    pytest.importorskip("torch")
    from agents_fixtures import build_tiny_model, build_tiny_tokenizer

    from agents.policy.tokenizer import CHAT_TEMPLATE

    tok = build_tiny_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    out = tmp_path_factory.mktemp("policy")
    build_tiny_model(tok, stop_prob=0.0, seed=5).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


TINY = dict(
    eval_num_problems=3,
    eval_k=2,
    eval_pass_ks=[1],
    max_turn_tokens=8,
    max_total_tokens=1024,
    threads=1,
    progress_bar=False,
    tensorboard=False,
    eval_problems="generated:arithmetic:1",
)


def test_self_collaboration_runs_from_its_packaged_config(tiny_policy, tmp_path):
    from agents.baselines import RESULT_FILE, run

    config = load_config(
        "self_collab", policy=tiny_policy, **TINY, expert_kwargs={"max_new_tokens": 6, "temperature": 1.0}
    )
    result = run(config, tmp_path, log=lambda _: None)
    assert result["method"] == "expert_workflow" and (tmp_path / RESULT_FILE).exists()
    assert result["eval"]["num_problems"] == 3 and result["eval"]["k"] == 2
    assert 0.0 <= result["eval"]["score_mean"] <= 1.0


def test_homogeneous_eapo_runs_from_its_packaged_config(tiny_policy, tmp_path):
    from agents.baselines import run

    config = load_config(
        "eapo_expert_self",
        policy=tiny_policy,
        steps=1,
        group_size=2,
        prompts_per_step=1,
        problems="generated:arithmetic:1",
        max_turns=2,
        turn_schedule="const:2",
        expert_kwargs={"max_new_tokens": 6},
        checkpoint_every=1,
        **TINY,
    )
    result = run(config, tmp_path, log=lambda _: None)
    saved = (tmp_path / "config.json").read_text()
    assert f'"policy_dir": "{tiny_policy}"' in saved  # the replicas are the starting policy
    assert result["steps"] == 1 and "eval" in result


def test_mechanism_rows_share_prompt_caps_and_give_a_real_dose():
    """No confound (issue 20): every mechanism RL row trains on the training prompt with the same caps;
    self-exploration is the same run with p(t) = 0; the EAPO rows answer for a real share of the run."""
    hint = load_config("eapo_hint")
    rows = [load_config(n) for n in ("eapo_hint", "eapo_answer", "eapo_placebo", "mech_self_explore")]
    assert {(c.method, c.consultation, c.max_turn_tokens, c.max_total_tokens, c.turn_schedule) for c in rows} == {
        ("eapo", True, hint.max_turn_tokens, hint.max_total_tokens, hint.turn_schedule)
    }
    assert {c.expert for c in rows} == {"hint", "reference", "constant"}
    never = load_config("mech_self_explore").acceptance()
    assert all(never(t) == 0.0 for t in range(hint.steps))
    p = hint.acceptance()
    first_half = [p(t) for t in range(hint.steps // 2)]
    assert sum(first_half) / len(first_half) >= 0.4  # a meaningful share of the run with p(t) > 0
    assert all(p(t) == 0.0 for t in range(int(0.3 * hint.steps), hint.steps))  # and time left to wean:
    turns = hint.turns()  # the last 40 % has one turn, so a consult leaves none to answer in
    assert all(turns(t) == 1.0 for t in range(int(0.6 * hint.steps), hint.steps))
    assert hint.resolved_eval_max_turns == 1
    assert hint.max_turn_tokens >= 128  # level-2 solutions (~83 tokens, 95th pct ~108) fit one turn
