"""``benchmarks/learning.py --smoke``: the whole report path on a tiny policy, in seconds."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from learning_claims import CLAIMS  # noqa: E402
from learning_rows import PROFILES, ROWS, row_config, row_table  # noqa: E402

from agents.stats import Claim, Estimate, RowScores, difference, mean_score, verdict  # noqa: E402
from eapo_env.schedules import parse_schedule  # noqa: E402

# (row set, row) -> {steps: 'acceptance | turns'} that row_config resolved to by rescaling the strings (captured
# before it was removed); 'ValueError': a piecewise too short for that many steps, then and now.
RESCALED_ROW_SCHEDULES: dict[tuple[str, str], dict[int, str]] = {
    ("mechanism", "distill_full"): {
        3: "linear:1.0:0.0:1 | linear:4.0:4.0:1",
        7: "linear:1.0:0.0:3 | linear:4.0:4.0:3",
        40: "linear:1.0:0.0:20 | linear:4.0:4.0:20",
        80: "linear:1.0:0.0:40 | linear:4.0:4.0:40",
        100: "linear:1.0:0.0:50 | linear:4.0:4.0:50",
    },
    ("mechanism", "eapo_answer"): {
        3: "ValueError",
        7: "piecewise:0=1.0,1=1.0,2=0.0 | linear:4.0:1.0:4",
        40: "piecewise:0=1.0,6=1.0,12=0.0 | linear:4.0:1.0:24",
        80: "piecewise:0=1.0,12=1.0,24=0.0 | linear:4.0:1.0:48",
        100: "piecewise:0=1.0,15=1.0,30=0.0 | linear:4.0:1.0:60",
    },
    ("mechanism", "eapo_hint"): {
        3: "ValueError",
        7: "piecewise:0=1.0,1=1.0,2=0.0 | linear:4.0:1.0:4",
        40: "piecewise:0=1.0,6=1.0,12=0.0 | linear:4.0:1.0:24",
        80: "piecewise:0=1.0,12=1.0,24=0.0 | linear:4.0:1.0:48",
        100: "piecewise:0=1.0,15=1.0,30=0.0 | linear:4.0:1.0:60",
    },
    ("mechanism", "eapo_placebo"): {
        3: "ValueError",
        7: "piecewise:0=1.0,1=1.0,2=0.0 | linear:4.0:1.0:4",
        40: "piecewise:0=1.0,6=1.0,12=0.0 | linear:4.0:1.0:24",
        80: "piecewise:0=1.0,12=1.0,24=0.0 | linear:4.0:1.0:48",
        100: "piecewise:0=1.0,15=1.0,30=0.0 | linear:4.0:1.0:60",
    },
    ("mechanism", "self_explore"): {
        3: "const:0.0 | linear:4.0:1.0:2",
        7: "const:0.0 | linear:4.0:1.0:4",
        40: "const:0.0 | linear:4.0:1.0:24",
        80: "const:0.0 | linear:4.0:1.0:48",
        100: "const:0.0 | linear:4.0:1.0:60",
    },
    ("mechanism", "luffy"): {
        3: "const:0.0 | linear:4.0:1.0:2",
        7: "const:0.0 | linear:4.0:1.0:4",
        40: "const:0.0 | linear:4.0:1.0:24",
        80: "const:0.0 | linear:4.0:1.0:48",
        100: "const:0.0 | linear:4.0:1.0:60",
    },
    ("paper", "base"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:3 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:30 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:50 | linear:4.0:2.0:50",
    },
    ("paper", "distill_full"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:3 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:30 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:50 | linear:4.0:2.0:50",
    },
    ("paper", "distill_lora"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:3 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:30 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:50 | linear:4.0:2.0:50",
    },
    ("paper", "eapo"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:2 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:15 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:25 | linear:4.0:2.0:50",
    },
    ("paper", "expert_constant"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:2 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:15 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:25 | linear:4.0:2.0:50",
    },
    ("paper", "expert_noisy"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:2 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:15 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:25 | linear:4.0:2.0:50",
    },
    ("paper", "expert_self"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:2 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:15 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:25 | linear:4.0:2.0:50",
    },
    ("paper", "expert_workflow"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:3 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:30 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:50 | linear:4.0:2.0:50",
    },
    ("paper", "noisy_k1"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:2 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:15 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:25 | linear:4.0:2.0:50",
    },
    ("paper", "sched_const"): {
        2: "const:0.126 | linear:4.0:2.0:1",
        3: "const:0.126 | linear:4.0:2.0:2",
        7: "const:0.126 | linear:4.0:2.0:4",
        60: "const:0.126 | linear:4.0:2.0:30",
        100: "const:0.126 | linear:4.0:2.0:50",
    },
    ("paper", "sched_fast"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:1 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:8 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:12 | linear:4.0:2.0:50",
    },
    ("paper", "sched_slow"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:2 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:4 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:30 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:50 | linear:4.0:2.0:50",
    },
    ("paper", "self_collab"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:3 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:30 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:50 | linear:4.0:2.0:50",
    },
    ("paper", "self_explore"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:3 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:30 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:50 | linear:4.0:2.0:50",
    },
    ("paper", "workflow_constant"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:3 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:30 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:50 | linear:4.0:2.0:50",
    },
    ("paper", "workflow_noisy"): {
        2: "linear:1.0:0.0:1 | linear:4.0:2.0:1",
        3: "linear:1.0:0.0:1 | linear:4.0:2.0:2",
        7: "linear:1.0:0.0:3 | linear:4.0:2.0:4",
        60: "linear:1.0:0.0:30 | linear:4.0:2.0:30",
        100: "linear:1.0:0.0:50 | linear:4.0:2.0:50",
    },
}


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    pytest.importorskip("torch")
    from agents_fixtures import build_tiny_model, build_tiny_tokenizer

    from agents.policy.tokenizer import CHAT_TEMPLATE

    root = tmp_path_factory.mktemp("bench")
    tok = build_tiny_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    build_tiny_model(tok, stop_prob=0.0, seed=5).save_pretrained(root / "policy")
    tok.save_pretrained(root / "policy")
    out = root / "out"
    import learning  # in-process: the same main() the script runs, without a second interpreter start

    assert learning.main(["--smoke", "--policy", str(root / "policy"), "--out", str(out)]) == 0
    return out


def test_smoke_report_has_every_profile_row_with_well_formed_cis(smoke_report):
    out = smoke_report
    text = (out / "report.md").read_text()
    rows = json.loads((out / "rows.json").read_text())
    assert {r["row"] for r in rows} == set(PROFILES["smoke"].rows)
    cell = r"(-?\d+\.\d+) \[(-?\d+\.\d+), (-?\d+\.\d+)\]"
    for key in PROFILES["smoke"].rows:
        line = next(li for li in text.splitlines() if f"(`{key}`)" in li and "not run" not in li)
        mean, lo, hi = map(float, re.search(cell, line).groups())
        assert 0.0 <= lo <= mean <= hi <= 100.0, line
    claims = [li for li in text.splitlines() if li.startswith("| 1 |")]
    assert any("`eapo` − `self_explore`" in li for li in claims)
    assert all(re.search(r"\*\*(supported|contradicted|inconclusive)", li) for li in claims)
    for png in ("heldout.png", "call_rate.png", "length.png", "pass_bars.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in text
    assert "problems only" in text  # one seed: the report says what its CIs leave out


def test_a_rerun_reuses_finished_rows(smoke_report):
    import learning

    out = smoke_report
    before = json.loads((out / "rows.json").read_text())
    argv = ["--smoke", "--out", str(out), "--policy", before[0]["config"]["policy"], "--rows", "base,eapo"]
    assert learning.main(argv) == 0
    after = {r["row"]: r for r in json.loads((out / "rows.json").read_text())}
    assert set(after) == {"base", "eapo"}
    assert after["eapo"]["seconds"] == next(r["seconds"] for r in before if r["row"] == "eapo")
    # another budget is another run: a finished pair is reused only for the very config it ran
    assert learning.main([*argv[:-2], "--rows", "base", "--steps", "3"]) == 0
    rerun = json.loads((out / "rows.json").read_text())[0]
    assert rerun["config"]["steps"] == 3 and rerun["seconds"] != after["base"]["seconds"]


def test_rows_scale_their_schedules_to_the_benchmark_budget():
    profile = PROFILES["full"]
    by_key = {r.key: r for r in ROWS}
    default = parse_schedule(row_config(by_key["eapo"], profile, 0, "p", "g", "g").acceptance_schedule)
    const = parse_schedule(row_config(by_key["sched_const"], profile, 0, "p", "g", "g").acceptance_schedule)
    budget = np.mean([default(t) for t in range(profile.steps)])
    assert const(0) == pytest.approx(budget, abs=0.01)  # still budget-matched at the benchmark's steps


@pytest.mark.parametrize("key", sorted(RESCALED_ROW_SCHEDULES))
def test_relative_schedules_resolve_to_what_rescaling_produced(key):
    """The rows set only ``steps``; the packaged share-of-the-run schedules give each row, at each budget,
    the very schedules the string rescaling used to write (and a piecewise too short still fails)."""
    row_set, row_key = key
    # the paper rows' pins were taken on the tiny base's quickstart regime (turns 4 -> 2), which smoke keeps
    profile = PROFILES["mechanism" if row_set == "mechanism" else "smoke"]
    for steps, expected in RESCALED_ROW_SCHEDULES[key].items():
        budget = dataclasses.replace(profile, steps=steps)
        if expected == "ValueError":
            with pytest.raises(ValueError, match="strictly increasing"):
                row_config(row_table(budget)[row_key], budget, 0, "p", "g", "g")
            continue
        cfg = row_config(row_table(budget)[row_key], budget, 0, "p", "g", "g")
        assert f"{cfg.acceptance()} | {cfg.turns()}" == expected, (key, steps)
        # a curve segment stops early on the same (whole-run) schedules
        seg = row_config(row_table(budget)[row_key], budget, 0, "p", "g", "g", segment_steps=max(1, steps // 2))
        assert (seg.acceptance(), seg.turns()) == (cfg.acceptance(), cfg.turns())


def test_distillation_gets_the_rl_rows_optimizer_steps():
    from learning_rows import updates_per_step

    row = next(r for r in ROWS if r.key == "distill_full")
    cfg = row_config(row, PROFILES["quick"], 0, "p", "g", "g")
    assert cfg.distill_steps == PROFILES["quick"].steps * updates_per_step(cfg)


def test_paired_difference_ci_and_verdicts():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, size=(3, 200))
    a = RowScores("a", np.clip(base + 0.1, 0, 1), np.zeros_like(base))
    b = RowScores("b", base, np.zeros_like(base))
    est = difference(a, b)
    assert 0.05 < est.lo <= est.value <= est.hi < 0.11
    claim = Claim("1", "a beats b", "a", "b", +1, 1.0)
    assert verdict(claim, est) == "supported"
    assert verdict(Claim("1", "b beats a", "b", "a", +1, 1.0), difference(b, a)) == "contradicted"
    assert verdict(claim, Estimate(0.01, -0.02, 0.04)).startswith("inconclusive")
    assert verdict(Claim("1", "same", "a", "b", 0, 0.0), Estimate(0.0, -0.01, 0.01)).startswith("supported")
    lo, hi = mean_score(b).lo, mean_score(b).hi
    assert lo < base.mean() < hi
    assert {c.a for c in CLAIMS} | {c.b for c in CLAIMS} <= {r.key for r in ROWS}


def test_weaning_section_judges_every_seed_and_lists_each_eapo_rows_settings(tmp_path):
    from learning_report import weaning_section

    def run(key, seed, rates, schedule, penalty):
        path = tmp_path / key / f"seed{seed}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            "".join(json.dumps({"step": i, "consult_rate": r, "p_t": 0.0}) + "\n" for i, r in enumerate(rates))
        )
        config = {"acceptance_schedule": schedule, "consult_penalty": penalty}
        return {
            "row": key,
            "seed": seed,
            "method": "eapo",
            "metrics": str(path.relative_to(tmp_path)),
            "config": config,
        }

    weaned = [0.4] * 9 + [0.01]
    by_row = {
        "eapo": [
            run("eapo", 0, weaned, "linear:1.0:0.0:15", 0.3),
            run("eapo", 1, [0.4] * 9 + [0.06], "linear:1.0:0.0:15", 0.3),
        ],
        "sched_slow": [run("sched_slow", 0, [0.5] * 10, "linear:1.0:0.0:60", 0.3)],
    }
    text = "\n".join(weaning_section(tmp_path, by_row))
    assert "**not met**" in text  # one seed at 6 % fails the bar even though the mean (3.5 %) is below it
    assert "| `eapo` | 1.0 -> 0.0 over 15 steps (linear) | 0.3 | 3.5% (1.0%, 6.0%) |" in text
    assert "| `sched_slow` | 1.0 -> 0.0 over 60 steps (linear) | 0.3 | 50.0% (50.0%) |" in text
    by_row["eapo"][1] = run("eapo", 1, weaned, "linear:1.0:0.0:15", 0.3)
    assert "**met**" in "\n".join(weaning_section(tmp_path, by_row))


def test_mechanism_profile_rows_share_prompt_caps_and_budget():
    """Issue 20: every mechanism RL row trains on the same prompt and caps; only the expert / p(t) differ."""
    from learning_rows import MECH_ROWS

    profile = PROFILES["mechanism"]
    configs = {r.key: row_config(r, profile, 0, "p", "generated:arithmetic:1-2", "g") for r in MECH_ROWS}
    rl = [c for c in configs.values() if c.method == "eapo"]
    assert len(rl) == 5 and all(c.consultation for c in rl)
    shared = {(c.max_turn_tokens, c.max_total_tokens, c.turn_schedule, c.consult_penalty, c.lr, c.steps) for c in rl}
    assert len(shared) == 1 and next(iter(shared))[0] >= 128
    assert parse_schedule(configs["self_explore"].acceptance_schedule)(0) == 0.0
    hint = parse_schedule(configs["eapo_hint"].acceptance_schedule)
    assert hint(0) == 1.0 and hint(profile.steps - 1) == 0.0
    assert configs["eapo_placebo"].acceptance_schedule == configs["eapo_hint"].acceptance_schedule
    # the guidance baseline is self-exploration plus the expert's solution in every group, nothing else
    luffy, explore = dataclasses.asdict(configs["luffy"]), dataclasses.asdict(configs["self_explore"])
    assert {k for k in luffy if luffy[k] != explore[k]} == {"expert_in_group"} and luffy["expert_in_group"] == "every"
    assert PROFILES["mechanism_quick"].seeds == 1


@pytest.mark.parametrize("name", ["full", "quick"])
def test_paper_rows_run_on_the_expert_reader_base_with_the_mechanism_learner(name):
    """The paper rows (Tables 1/2/3/9, App. E) re-run on the reader base: every row takes ``eapo_hint``'s
    learner, caps and turn schedule; only each row's method, expert, K and p(t) differ."""
    from learning_rows import MECH_ROW_BY_KEY

    profile = PROFILES[name]
    configs = {k: row_config(row_table(profile)[k], profile, 0, "p", "g", "g") for k in profile.rows}
    assert profile.policy == "agents/assets/expert_reader_base" and profile.problems == "generated:arithmetic:2-3"
    shared = {
        (c.max_turn_tokens, c.max_total_tokens, c.turn_schedule, c.resolved_eval_max_turns) for c in configs.values()
    }
    assert shared == {(200, 900, configs["eapo"].turn_schedule, 1)}  # one evaluation budget for every row
    rl = [c for c in configs.values() if c.method == "eapo"]
    assert {(c.lr, c.group_size, c.consult_penalty, c.consultation) for c in rl} == {(3e-5, 8, 0.3, True)}
    # self-exploration is the mechanism's: EAPO's prompt with p(t) = 0, the very config of its mechanism runs
    explore = configs["self_explore"]
    assert explore.method == "eapo" and parse_schedule(explore.acceptance_schedule)(0) == 0.0
    if name == "full":
        mech = PROFILES["mechanism"]
        assert explore == row_config(MECH_ROW_BY_KEY["self_explore"], mech, 0, "p", "g", "g")
    for key, cfg in configs.items():
        if cfg.expert == "policy":  # replicas may reply with a whole turn, not the packaged 96 tokens
            assert cfg.expert_kwargs["max_new_tokens"] == 200, key


def test_the_tiny_profile_keeps_the_paper_rows_on_the_tiny_base_and_its_quickstart_regime():
    import learning

    tiny = PROFILES["tiny"]
    assert tiny.policy is None and tiny.problems is None and tiny.rows == PROFILES["full"].rows
    cfg = row_config(row_table(tiny)["self_explore"], tiny, 0, "p", "g", "g")
    assert (cfg.method, cfg.max_turn_tokens, cfg.turn_schedule) == ("self_explore", 64, "linear:4.0:2.0:30")
    with pytest.raises(SystemExit, match="no --quick"):
        learning.main(["--profile", "tiny", "--quick"])


def test_mechanism_report_states_the_prediction_before_results_and_the_dose(tmp_path):
    from learning_mechanism import write_mechanism_report

    rng = np.random.default_rng(1)
    ids = [f"gen/arithmetic/L{2 + i % 2}/{i}" for i in range(40)]
    records = []
    for key, lift, dose in (("self_explore", 0.0, 0.0), ("eapo_hint", 0.3, 0.6), ("eapo_placebo", 0.0, 0.6)):
        csv = tmp_path / f"{key}.csv"
        rows = ["problem_id,n,correct,mean_score,variance"]
        for pid in ids:
            m = float(np.clip(rng.uniform(0, 0.2) + lift, 0, 1))
            rows.append(f"{pid},8,{round(8 * m)},{m},{m * (1 - m)}")
        csv.write_text("\n".join(rows) + "\n")
        metrics = tmp_path / f"{key}.jsonl"
        steps = [
            {"step": i, "dose": dose if i < 5 else 0.0, "solved_group_frac": 0.5, "consult_rate": 0.02}
            | {"time_rollout_s": 1.0, "time_train_s": 2.0, "accuracy": 0.1}
            for i in range(10)
        ]
        metrics.write_text("".join(json.dumps(s) + "\n" for s in steps))
        config = {"acceptance_schedule": "piecewise:0=1.0,16=1.0,36=0.0"}
        curve = [[5, 0.1], [10, 0.2 + lift]]
        records.append(
            {"row": key, "seed": 0, "eval_csv": csv.name, "metrics": metrics.name, "config": config, "curve": curve}
        )
    # the base solves only the even-numbered L3 problems' twins: every L3 problem (odd index) is never solved
    base_csv = tmp_path / "base.csv"
    base_csv.write_text(
        "problem_id,n,correct,mean_score,variance\n"
        + "".join(f"{pid},8,{4 if '/L2/' in pid else 0},{0.5 if '/L2/' in pid else 0.0},0.25\n" for pid in ids)
    )
    records.insert(0, {"row": "base", "seed": 0, "eval_csv": base_csv.name, "metrics": None, "config": {}})
    text = write_mechanism_report(tmp_path, records, {"command": "x"}).read_text()
    assert "L3 held-out problems the base solved in 0 of k samples: 20." in text
    assert "| `eapo_hint` | 20 | 20.0 |" in text  # lift 0.3: every never-solved problem now has a correct sample
    assert "| `eapo_hint` | 5: 0.100 (15 s), 10: 0.500 (30 s) |" in text and (tmp_path / "curves.png").exists()
    assert "`eapo_hint`: a real dose" in text and "**met**; weaned" in text
    assert text.index("Pre-registered prediction") < text.index("Held-out Pass@k per level") < text.index("## Verdict")
    assert "| `eapo_hint` | piecewise:0=1.0,16=1.0,36=0.0 | 60.0% | 50.0% | 2.0% (2.0%) |" in text
    assert "The prediction is **supported**" in text
