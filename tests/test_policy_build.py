"""The locally built policy: tokenizer, model, and ``build_policy`` output loading offline."""

from __future__ import annotations

import json
import os

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents.policy import build_model, build_policy, build_tokenizer, count_parameters, load_policy, read_policy_info
from agents.policy.build import POLICY_INFO_FILE, format_compliance
from agents.policy.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, TAG_TOKENS, encode_prompt, prompt_text
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
    return build_tokenizer(corpus, vocab_size=1024)


# ------------------------------------------------------------------ tokenizer


@given(st.text(max_size=200))
def test_tokenizer_round_trips_any_text(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


@pytest.mark.parametrize(
    "text",
    ["héllo  wörld\n\n\t 中文 🎉 ∑ x² — “quotes”", "  leading and trailing  ", " . , ! ?", "a\r\nb", "\\frac{1}{2} $x$",
     "<answer>-3</answer>", "<consult><query>What is 6*7?</query></consult>", prompts.render_experts_block(["x", None])],
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
    assert rendered == "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
    ids = encode_prompt(tokenizer, "hi")
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") and tokenizer.decode(ids) == prompt_text(tokenizer, "hi")


def test_tokenizer_save_load_round_trip(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = prompts.TRAIN_PROMPT.format(question="Solve $3x = 9$. 中文", max_experts=3, max_turns=8) + "<answer>3</answer>"
    assert loaded.encode(text) == tokenizer.encode(text)
    assert loaded.decode(loaded.encode(text)) == text
    assert loaded.chat_template == CHAT_TEMPLATE
    assert (loaded.bos_token, loaded.eos_token, loaded.pad_token) == (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token)


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


def test_build_policy_loads_offline_and_emits_protocol_actions(tmp_path):
    """A reduced build (fewer traces, steps) that still has to produce well-formed first turns.

    Measured for this reduced build (80 steps of 8 traces, seeds 0-2): 0.96-1.0 well-formed first
    turns under the training prompt, 0.88-1.0 under the evaluation prompt, where 0.88-1.0 answer
    directly. The thresholds (0.7) leave room for noise. The default build (120 steps of 16 traces)
    measured 1.0 on 64 held-out problems for both prompts.
    """
    out = build_policy(tmp_path / "policy", "tiny", sft_steps=80, seed=0, problems="generated:arithmetic,linear,counting",
                       n_train=400, n_heldout=0, vocab_size=1024, batch_size=8, verbose=False)
    info = json.loads((out / POLICY_INFO_FILE).read_text())
    assert info == read_policy_info(out) and info["sft"]["loss_last"] < 0.5 * info["sft"]["loss_first"]
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template and count_parameters(model) == info["parameters"]
    heldout = [load_problems("generated")[i] for i in range(5000, 5024)]  # other families too: held out
    train = format_compliance(model, tok, heldout, eval_mode=False, max_new_tokens=64)
    evalp = format_compliance(model, tok, heldout, eval_mode=True, max_new_tokens=48)
    assert train["well_formed"] >= 0.7, train
    assert evalp["well_formed"] >= 0.7, evalp
    assert evalp["answer"] >= 0.7, evalp  # under the evaluation prompt it answers (does not consult)
