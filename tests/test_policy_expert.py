"""The ``policy`` expert (self-collaboration): replicas of a locally built tiny policy directory."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from agents_fixtures import build_tiny_model, build_tiny_tokenizer  # noqa: E402

from agents.policy.expert import PolicyExpert, reply_from_turn  # noqa: E402
from eapo_env import prompts  # noqa: E402
from eapo_env.experts import ExpertRequest, consult_blocking, make_expert  # noqa: E402
from eapo_env.problems import Problem  # noqa: E402


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    """A tiny random Qwen2 policy saved as a HF directory with the project's chat template."""
    from agents.policy.tokenizer import CHAT_TEMPLATE

    tok = build_tiny_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    model = build_tiny_model(tok, stop_prob=0.0, seed=3)
    out = tmp_path_factory.mktemp("policy")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


PROBLEMS = [Problem(f"p{i}", f"What is {i} + {2 * i}?", str(3 * i), f"{i} + {2 * i} = {3 * i}.") for i in range(5)]


def _requests(tag: str = "r") -> list[ExpertRequest]:
    return [ExpertRequest(f"{tag}{i}", p, "Solve this problem.") for i, p in enumerate(PROBLEMS)]


def test_make_expert_builds_a_policy_expert(policy_dir):
    expert = make_expert("policy", policy_dir=policy_dir, max_new_tokens=8)
    assert isinstance(expert, PolicyExpert)
    assert expert.name == f"policy({policy_dir})"


def test_missing_policy_dir_is_a_clear_error():
    with pytest.raises(ValueError, match="policy_dir"):
        make_expert("policy", policy_dir="")
    with pytest.raises(ValueError, match="prompt"):
        PolicyExpert("x", prompt="nonsense")


def test_one_generate_call_per_consult_batch(policy_dir):
    expert = PolicyExpert(policy_dir, max_new_tokens=6, seed=1)
    calls = []
    real = expert.model.generate

    def spy(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return real(*args, **kwargs)

    expert.model.generate = spy
    replies = consult_blocking(expert, _requests())
    assert calls == [len(PROBLEMS)]  # the whole batch in one call, one row per request
    assert [r.status for r in replies] == ["ok"] * len(PROBLEMS)
    assert all(1 <= r.tokens <= 6 for r in replies)


def test_deterministic_given_seed_and_leaves_global_rng_alone(policy_dir):
    a = PolicyExpert(policy_dir, max_new_tokens=8, seed=7)
    b = PolicyExpert(policy_dir, max_new_tokens=8, seed=7)
    c = PolicyExpert(policy_dir, max_new_tokens=8, seed=8)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    ra = [r.text for r in consult_blocking(a, _requests())]
    assert torch.equal(torch.get_rng_state(), before)
    assert ra == [r.text for r in consult_blocking(b, _requests())]
    assert ra == [r.text for r in consult_blocking(a, _requests())]  # same batch twice: same replies
    assert ra != [r.text for r in consult_blocking(c, _requests())]  # another seed samples otherwise


def test_greedy_reply_is_the_policys_own_first_turn(policy_dir):
    """The replica sees exactly the prompt the policy sees at evaluation (chat template included)."""
    from agents.policy import encode_prompt, load_policy

    expert = PolicyExpert(policy_dir, max_new_tokens=10, temperature=0.0)
    model, tok = load_policy(policy_dir)
    problem = PROBLEMS[2]
    ids = encode_prompt(tok, prompts.render_prompt(problem.question, eval_mode=True, max_experts=3, max_turns=4))
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") or "<|im_start|>" not in tok.get_vocab()
    gen = model.generate(
        torch.tensor([ids]),
        max_new_tokens=10,
        do_sample=False,
        eos_token_id=expert.stop_ids,
        pad_token_id=tok.pad_token_id,
    )
    turn = tok.decode(gen[0, len(ids) :], skip_special_tokens=True)
    reply = consult_blocking(expert, [ExpertRequest("g", problem, "anything")])[0]
    assert reply.text == reply_from_turn(turn)


def test_query_prompt_mode_changes_the_prompt(policy_dir):
    expert = PolicyExpert(policy_dir, max_new_tokens=4, prompt="query")
    req = ExpertRequest("q", PROBLEMS[1], "What is 5 + 5?")
    assert expert.prompt_ids(req) != PolicyExpert(policy_dir, max_new_tokens=4).prompt_ids(req)


def test_a_broken_batch_becomes_error_replies(policy_dir):
    expert = PolicyExpert(policy_dir, max_new_tokens=4)

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    expert.model.generate = boom
    replies = consult_blocking(expert, _requests())
    assert {r.status for r in replies} == {"error"}
    assert "out of memory" in replies[0].error


@pytest.mark.parametrize(
    ("turn", "reply"),
    [
        ("3 + 4 = 7. <answer>7</answer>", "3 + 4 = 7.\nThe answer is \\boxed{7}."),
        ("<answer> 12 </answer>", "The answer is \\boxed{12}."),
        ("thinking <consult><query>q</query></consult>", "thinking"),
        ("no block at all", "no block at all"),
        ("half <answer>5", "half <answer>5"),
    ],
)
def test_reply_from_turn(turn, reply):
    assert reply_from_turn(turn) == reply


def test_eapo_env_imports_without_torch():
    code = "import sys, eapo_env, eapo_env.experts.local, eapo_env.experts.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_gym_make_shares_the_expert_instead_of_copying_it(policy_dir):
    import copy

    import gymnasium as gym

    import eapo_env

    expert = PolicyExpert(policy_dir, max_new_tokens=4)
    assert copy.deepcopy(expert) is expert
    env = gym.make(eapo_env.TRAIN_ID, problems="generated:arithmetic:1", expert=expert)
    assert env.spec is not None and env.unwrapped.expert is expert
