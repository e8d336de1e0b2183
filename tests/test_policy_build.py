"""The locally built policy: tokenizer, model, and ``build_policy`` output loading offline."""

from __future__ import annotations

import json
import os
import unicodedata

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents.policy import build_model, build_policy, build_tokenizer, count_parameters, load_policy, read_policy_info
from agents.policy.build import POLICY_INFO_FILE, format_compliance
from agents.policy.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, TAG_TOKENS, encode_prompt, mine_phrases, prompt_text
from eapo_env import prompts
from eapo_env.problems import load_problems
from eapo_env.protocol import PROTOCOL_TAGS

torch.set_num_threads(1)  # the machine is shared: 2 intra-op threads under contention run ~3x slower
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may touch the network


@pytest.fixture(scope="module")
def tokenizer():
    src = load_problems("generated")
    corpus = [prompts.TRAIN_PROMPT, prompts.EVAL_PROMPT, prompts.NUDGE]
    corpus += [t for i in range(200) for t in (src[i].question, src[i].solution)]
    return build_tokenizer(mine_phrases(corpus, min_count=5))


# ------------------------------------------------------------------ tokenizer


@given(st.text(max_size=200))
def test_tokenizer_round_trips_any_text(tokenizer, text):
    # Exactly for NFC text; other text comes back in its NFC form (the normalizer Qwen2Tokenizer,
    # which AutoTokenizer picks for a qwen2 directory, also applies: tests/test_policy_dirs.py).
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == unicodedata.normalize("NFC", text)


@pytest.mark.parametrize(
    "text",
    [
        "héllo  wörld\n\n\t 中文 🎉 ∑ x² — “quotes”",
        "  leading and trailing  ",
        " . , ! ?",
        "a\r\nb",
        "\\frac{1}{2} $x$",
        "<answer>-3</answer>",
        "<consult><query>What is 6*7?</query></consult>",
        prompts.render_experts_block(["x", None]),
    ],
)
def test_tokenizer_round_trips_examples(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_tags_are_single_tokens(tokenizer):
    for tag in (*PROTOCOL_TAGS, *TAG_TOKENS, *SPECIAL_TOKENS):
        assert len(tokenizer.encode(tag, add_special_tokens=False)) == 1, tag
    # also inside running text, and the tag tokens survive skip_special_tokens (the env must see them)
    ids = tokenizer.encode("so<answer>42</answer>.", add_special_tokens=False)
    assert tokenizer.convert_tokens_to_ids("</answer>") in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "so<answer>42</answer>."
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == tokenizer.bos_token == "<|endoftext|>"
    assert tokenizer.encode("1234", add_special_tokens=False) == [tokenizer.convert_tokens_to_ids(c) for c in "1234"]


def test_chat_template_renders(tokenizer):
    text = prompt_text(tokenizer, "Problem: 2+2?\n")
    assert text == "<|im_start|>user\nProblem: 2+2?\n<|im_end|>\n<|im_start|>assistant\n"
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    rendered = tokenizer.apply_chat_template(msgs, tokenize=False)
    assert (
        rendered
        == "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
    )
    ids = encode_prompt(tokenizer, "hi")
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") and tokenizer.decode(ids) == prompt_text(
        tokenizer, "hi"
    )


def test_tokenizer_save_load_round_trip(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = (
        prompts.TRAIN_PROMPT.format(question="Solve $3x = 9$. 中文", max_experts=3, max_turns=8) + "<answer>3</answer>"
    )
    assert loaded.encode(text) == tokenizer.encode(text)
    assert loaded.decode(loaded.encode(text)) == text
    assert loaded.chat_template == CHAT_TEMPLATE
    assert (loaded.bos_token, loaded.eos_token, loaded.pad_token) == (
        tokenizer.bos_token,
        tokenizer.eos_token,
        tokenizer.pad_token,
    )


# ------------------------------------------------------------------ model


def test_model_sizes_and_deterministic_init(tokenizer):
    tiny = build_model(tokenizer, "tiny", seed=0)
    assert 0.5e6 < count_parameters(tiny) < 3e6
    assert tiny.get_output_embeddings().weight is tiny.get_input_embeddings().weight  # tied
    assert tiny.config.vocab_size >= len(tokenizer) and tiny.config.max_position_embeddings == 2048
    same = build_model(tokenizer, "tiny", seed=0)
    other = build_model(tokenizer, "tiny", seed=1)
    assert all(torch.equal(a, b) for a, b in zip(tiny.state_dict().values(), same.state_dict().values()))
    assert not torch.equal(tiny.model.layers[0].mlp.up_proj.weight, other.model.layers[0].mlp.up_proj.weight)
    small = build_model(tokenizer, "small", seed=0)
    assert 10e6 < count_parameters(small) < 20e6
    with pytest.raises(ValueError, match="unknown size"):
        build_model(tokenizer, "huge")


def test_model_save_load_gives_identical_logits(tokenizer, tmp_path):
    model = build_model(tokenizer, "tiny", seed=3).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, tok = load_policy(tmp_path)
    ids = torch.tensor([encode_prompt(tok, "What is 2 + 2?")])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    half, _ = load_policy(tmp_path, dtype="bfloat16")
    assert half.dtype == torch.bfloat16


# ------------------------------------------------------------------ build_policy


def test_build_policy_loads_offline_and_learns(tmp_path):
    """A reduced build (400 traces, 80 steps of 8) writes a directory that loads offline and whose
    SFT loss at least halved. Protocol compliance is checked on the shipped base (below)."""
    out = build_policy(
        tmp_path / "policy",
        "tiny",
        sft_steps=80,
        seed=0,
        problems="generated:arithmetic:1-2",
        n_train=400,
        n_heldout=0,
        batch_size=8,
        verbose=False,
    )
    info = json.loads((out / POLICY_INFO_FILE).read_text())
    assert info == read_policy_info(out) and info["sft"]["loss_last"] < 0.5 * info["sft"]["losses_first"][0]
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template and count_parameters(model) == info["parameters"]
    assert "--sft-steps 80 --seed 0" in info["rebuild_command"]


def test_shipped_base_emits_protocol_actions():
    """Greedy first turns of the shipped base on held-out problems: well-formed actions, and under
    the evaluation prompt it answers rather than consults."""
    model, tok = load_policy("tiny-base")
    heldout = [load_problems("generated:arithmetic:1-2", seed=7)[i] for i in range(24)]
    train = format_compliance(model, tok, heldout, eval_mode=False, max_new_tokens=64)
    evalp = format_compliance(model, tok, heldout, eval_mode=True, max_new_tokens=64)
    assert train["well_formed"] >= 0.8, train
    assert evalp["well_formed"] >= 0.8 and evalp["answer"] >= 0.8, evalp


def test_saved_policy_tokenizer_gives_the_ids_it_was_trained_on(tmp_path):
    """The ids SFT trained on (the in-memory tokenizer) are the ids the loaded policy sees at rollout.

    Guards the trap of ``AutoTokenizer`` mapping a ``qwen2`` directory to ``Qwen2Tokenizer``, which
    rebuilds the pre-tokenizer: a policy then gets other ids at rollout than in SFT.
    """
    from agents.policy.build import policy_phrases
    from agents.policy.recipes import BASE_TRACES
    from agents.sft import tokenize_trace
    from agents.traces import make_traces, solution_reply

    problems = [load_problems("generated:arithmetic:1-3")[i] for i in range(200)]
    trained = build_tokenizer(policy_phrases(problems))
    out = build_policy(
        tmp_path / "p",
        "tiny",
        sft_steps=0,
        problems="generated:arithmetic:1-3",
        n_train=200,
        n_heldout=0,
        verbose=False,
    )
    _, loaded = load_policy(out)
    traces = make_traces(problems[:60], seed=0, config=BASE_TRACES, reply_fn=solution_reply)
    for trace in traces:
        assert tokenize_trace(loaded, trace).input_ids == tokenize_trace(trained, trace).input_ids
    text = "Compute $12 - 7 \\times 3$. 12 - 21 = -9 <answer>-9</answer> é 中"
    assert loaded.encode(text, add_special_tokens=False) == trained.encode(text, add_special_tokens=False)
    digits = loaded.encode("90817", add_special_tokens=False)
    assert [loaded.decode([i]) for i in digits] == list("90817")  # every digit its own token


def test_shipped_base_loads_by_name_and_records_its_rebuild():
    from agents.policy import SHIPPED_POLICIES, resolve_policy_path

    path = SHIPPED_POLICIES["tiny-base"]
    info = read_policy_info(path)
    assert info is not None and resolve_policy_path("tiny-base") == str(path)
    assert "eapo build-policy" in info["rebuild_command"] and len(info["sft"]["losses_first"]) >= 5
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size <= 10 * 2**20
    model, tok = load_policy("tiny-base")
    assert model.config.model_type == "qwen2" and len(tok) == info["vocab_size"]


@pytest.mark.slow
def test_short_rebuild_reproduces_the_shipped_first_losses(tmp_path):
    """Rebuild the shipped base for 5 SFT steps with its recorded arguments: the same losses.

    The first SFT steps depend on the trace draw, the tokenizer, the init and the batch order, so
    this pins the whole build recipe (on the same torch version; CPU float32).
    """
    from agents.policy import SHIPPED_POLICIES
    from tests.policy_rebuild import first_sft_losses

    info = read_policy_info(SHIPPED_POLICIES["tiny-base"])
    seen = first_sft_losses(info["build_args"], tmp_path / "p")
    assert seen == pytest.approx(info["sft"]["losses_first"][:5], rel=1e-3)
