"""EAPO-Code-v0 (issue 22): the reference answer scores 1 and a wrong one 0 under gym.make, check_env
passes, the vector env matches independent single envs, and the loaders read the published schemas."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import SyncVectorEnv

import eapo_env  # noqa: F401  (registers the ids)
from eapo_env.problems.code_generated import GeneratedCodeSource
from eapo_env.problems.code_sets import code_spec, read_code_problems
from eapo_env.tasks import resolve_task
from eapo_env.tasks.code import CODE, CodeVerdict, build_program, extract_code
from envs.vector_env import EAPOVectorEnv
from tests.sandbox_helpers import require_sandbox, sandbox_pids  # noqa: F401  (fixture)

DATA = "tests/data"
SPECS = [
    f"humaneval:{DATA}/humaneval_tiny.jsonl",
    f"mbpp:{DATA}/mbpp_tiny.jsonl",
    f"evalplus:{DATA}/evalplus_tiny.jsonl",
]


def test_reference_scores_one_and_a_wrong_answer_zero_under_gym_make():
    env = gym.make("EAPO-Code-v0", max_turns=3)
    obs, info = env.reset(seed=0)
    problem = env.unwrapped.problem
    assert problem.id.startswith("code/gen/") and env.observation_space.contains(obs) and "<answer>" in obs
    obs, reward, *_, info = env.step("<consult><query>how?</query></consult>")
    assert "```python" in obs and problem.answer.strip() in obs and reward == 0.0  # the reference expert's code
    _, reward, terminated, _, info = env.step(f"<answer>\n```python\n{problem.answer}```\n</answer>")
    assert (reward, terminated, info["verdict"], info["correct"]) == (1.0, True, "correct", True)
    env.reset(seed=0)
    entry = problem.meta["entry_point"]
    _, reward, _, _, info = env.step(f"<answer>def {entry}(*args):\n    return None\n</answer>")
    assert (reward, info["verdict"], info["correct"]) == (0.0, "tests_failed", False)
    env.reset(seed=0)
    assert env.step("<answer>def broken(:</answer>")[4]["verdict"] == "syntax_error"
    env.reset(seed=0)
    assert env.step("<answer>  </answer>")[4]["verdict"] == "unparseable"
    ev = gym.make("EAPO-Code-Eval-v0")
    ev.reset(seed=3)
    assert ev.step(f"<answer>{ev.unwrapped.problem.answer}</answer>")[1] == 1.0
    assert sandbox_pids() == []


@pytest.mark.parametrize("spec", SPECS)
def test_every_fixture_problem_passes_with_its_reference_and_fails_a_stub(spec):
    env = gym.make("EAPO-Code-v0", problems=spec)
    for i in range(len(env.unwrapped.source)):
        problem = env.unwrapped.source[i]
        env.reset(options={"problem_id": problem.id})
        assert env.step(f"<answer>{problem.answer}</answer>")[1] == 1.0, problem.id
        env.reset(options={"problem_id": problem.id})
        stub = f"```python\ndef {problem.meta['entry_point']}(*args):\n    return 0\n```"
        assert env.step(f"<answer>{stub}</answer>")[1] == 0.0, problem.id


def test_check_env_passes():
    check_env(gym.make("EAPO-Code-v0").unwrapped, skip_render_check=True)
    check_env(gym.make("EAPO-Code-Eval-v0").unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", ["EAPO-Code-v0", "EAPO-Code-Eval-v0"])
def test_vector_env_matches_single_envs(env_id):
    kw = dict(max_turns=3, problems=SPECS[1])
    vec = gym.make_vec(env_id, num_envs=3, **kw)
    ref = SyncVectorEnv([lambda: gym.make(env_id, **kw) for _ in range(3)])
    assert isinstance(vec, EAPOVectorEnv)
    obs_v, _ = vec.reset(seed=5)
    obs_r, _ = ref.reset(seed=5)
    assert obs_v == obs_r
    rows = [
        lambda p, i: "<consult><query>help</query></consult>" if i != 1 else "thinking",
        lambda p, i: f"<answer>{p.answer}</answer>" if i != 2 else "<answer>def nope(): pass</answer>",
        lambda p, i: "<answer>x = (</answer>",
    ]
    for row in rows:
        actions = [row(env.unwrapped.problem, i) for i, env in enumerate(ref.envs)]
        out_v, out_r = vec.step(actions), ref.step(tuple(actions))
        assert out_v[0] == out_r[0]
        for a, b in zip(out_v[1:4], out_r[1:4]):
            assert a.tolist() == b.tolist()
        for key in ("verdict", "correct"):
            if key in out_r[4]:
                assert np.asarray(out_v[4][key]).tolist() == np.asarray(out_r[4][key]).tolist()
    vec.close()
    ref.close()


def test_task_registration_and_generated_family():
    assert resolve_task("code") is CODE
    a, b = GeneratedCodeSource(seed=1), GeneratedCodeSource(seed=1)
    assert [a[i] for i in range(10)] == [b[i] for i in range(10)] and a[3] != GeneratedCodeSource(seed=2)[3]
    assert a.get(a[7].id) == a[7]
    for i in range(8):  # every template: its reference passes
        assert CODE.score(a[i].answer, a[i]) == CodeVerdict("correct", 1.0)
    with pytest.raises(ValueError, match="unknown code problem spec"):
        CODE.problems("nonsense")


def test_answer_extraction_rule():
    assert extract_code("Sure.\n```python\ndef f():\n    return 1\n```\nand ```x```") == "def f():\n    return 1\n"
    assert extract_code("def f():\n    return 2") == "def f():\n    return 2\n"
    assert extract_code("   ") == ""
    assert build_program("    return 1\n", "def f():\n", "f") == "def f():\n    return 1\n"  # a completion
    assert build_program("def f():\n    return 1\n", "import math\ndef f():\n", "f").endswith(
        "def f():\n    return 1\n"
    )


def test_loaders_read_the_published_schemas():
    he = read_code_problems(f"{DATA}/humaneval_tiny.jsonl")
    assert [p.id for p in he][:2] == ["humaneval/HumanEval/0", "humaneval/HumanEval/2"]
    assert code_spec(he[0]).tests[0].kind == "check" and he[0].answer.startswith(he[0].meta["code"]["prefix"])
    mbpp = read_code_problems(f"{DATA}/mbpp_tiny.jsonl")
    assert {p.meta["entry_point"] for p in mbpp} >= {"remove_Occ", "heap_queue_largest"}
    assert all(t.kind == "assert" for p in mbpp for t in code_spec(p).tests)
    ep = read_code_problems(f"{DATA}/evalplus_tiny.jsonl")
    spec = code_spec(ep[0])
    assert spec.tests[0].kind == "io" and spec.tests[0].atol == 1e-6 and len(spec.tests) == 7


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"task_id": "HumanEval/9", "prompt": "def f():\n", "test": "", "entry_point": "f"}, "canonical_solution"),
        ({"task_id": 3, "text": "t", "code": "def g(): pass", "test_list": "assert g()"}, "test_list"),
        ({"task_id": 4, "text": "t", "code": "def g(): pass", "test_list": ["assert h() == 1"]}, "no function"),
        ({"task_id": "x", "prompt": "p", "entry_point": "f", "canonical_solution": "", "base_input": [1]}, "input 0"),
        ({"foo": 1}, "not a HumanEval, MBPP or EvalPlus row"),
    ],
)
def test_malformed_rows_name_the_row(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"task_id": 1, "text": "t", "code": "def g():\n    return 1", "test_list": ["assert g() == 1"]})
        + "\n"
        + json.dumps(row)
        + "\n"
    )
    with pytest.raises(ValueError, match="row 1") as err:
        read_code_problems(path)
    assert message in str(err.value)
