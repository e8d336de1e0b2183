"""SFT traces and the SFT loop: env-exact text, policy-only labels, loss goes down (LoRA too)."""

from __future__ import annotations

import collections
import random

import gymnasium as gym
import pytest
import torch

import eapo_env
from agents.policy.model import build_model
from agents.policy.tokenizer import build_tokenizer, encode_prompt, encode_segment, mine_phrases
from agents.sft import IGNORE_INDEX, _length_bucketed_batches, collate, sft_train, tokenize_trace
from agents.traces import PARADIGMS, TraceConfig, make_trace, make_traces, policy_text, reference_reply_fn, trace_text
from eapo_env.problems import load_problems
from eapo_env.protocol import parse_action

torch.set_num_threads(1)  # the machine is shared: 2 intra-op threads under contention run ~3x slower


@pytest.fixture(scope="module")
def problems():
    src = load_problems("generated")
    return [src[i] for i in range(100)]


@pytest.fixture(scope="module")
def tokenizer(problems):
    traces = make_traces(problems, seed=0)
    corpus = [p.question for p in problems] + [p.solution for p in problems] + [trace_text(t) for t in traces]
    return build_tokenizer(mine_phrases(corpus, min_count=5))


# ------------------------------------------------------------------ traces


def test_traces_match_the_env_byte_for_byte(problems):
    """Every paradigm, replayed through EAPO-Math-v0 with the reference expert, gives the same transcript."""
    cfg = TraceConfig(unavailable_prob=0.0)  # the env at p = 1 never marks a reply unavailable
    reply = reference_reply_fn()
    rng = random.Random(0)
    checked = collections.Counter()
    for problem in problems[:25]:
        for paradigm, eval_mode in [(p, False) for p in PARADIGMS] + [("self", True)]:
            trace = make_trace(problem, paradigm, rng, cfg, reply, eval_mode=eval_mode)
            env = gym.make(
                eapo_env.EVAL_ID if eval_mode else eapo_env.TRAIN_ID,
                problems=[problem],
                expert="reference",
                max_experts=cfg.max_experts,
                max_turns=cfg.max_turns,
            )
            obs, _ = env.reset(seed=0, options={"problem": problem})
            assert obs == trace[0][1]
            for source, text in trace[1:]:
                if source == "policy":
                    obs, _, terminated, _, info = env.step(text)
            assert terminated and info["answer"] == problem.answer
            assert env.unwrapped.transcript == trace
            checked[paradigm, eval_mode] += 1
    assert len(checked) == 4 and set(checked.values()) == {25}


def test_trace_mix_and_actions(problems):
    traces = make_traces(problems, seed=1)
    assert len(traces) == len(problems)
    kinds = collections.Counter()
    for problem, trace in zip(problems, traces):
        assert trace[0][0] == "prompt" and trace[-1][0] == "policy"
        final = parse_action(trace[-1][1], 3)
        assert final.kind == "answer" and final.answer == problem.answer
        if "consult up to" not in trace[0][1]:  # evaluation prompt: always self-resolution
            assert len(trace) == 2
            kinds["eval"] += 1
        elif len(trace) == 2:  # self-resolution under the training prompt: only on easy levels
            assert problem.meta["level"] in (1, 2)
            kinds["self"] += 1
        else:
            consult = parse_action(trace[1][1], 3)
            assert consult.kind == "consult" and 1 <= len(consult.queries) <= 3 and not consult.format_error
            assert trace[2][0] == "expert" and trace[2][1].startswith("\n<experts>")
            kinds["consult"] += 1
    assert kinds["self"] > 3 and kinds["eval"] > 10 and kinds["consult"] > 40, kinds
    assert make_traces(problems, seed=1) == traces  # deterministic


# ------------------------------------------------------------------ tokenization and labels


def test_labels_mask_only_policy_segments(tokenizer, problems):
    trace = make_trace(problems[7], "direct", random.Random(0), TraceConfig(), reference_reply_fn())
    ex = tokenize_trace(tokenizer, trace)
    # ids are the per-segment encodings concatenated (never the joined text re-tokenized)
    pieces = [encode_prompt(tokenizer, trace[0][1])] + [encode_segment(tokenizer, t) for _, t in trace[1:]]
    assert ex.input_ids == [i for p in pieces for i in p]
    expected = [i if src == "policy" else IGNORE_INDEX for (src, _), p in zip(trace, pieces) for i in p]
    assert ex.labels == expected
    trained = [i for i, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX]
    assert tokenizer.decode(trained) == policy_text(trace)
    batch = collate([ex, tokenize_trace(tokenizer, trace[:2])], tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert int(batch["attention_mask"][1].sum()) == len(tokenize_trace(tokenizer, trace[:2]).input_ids)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_length_bucketing_covers_each_example_once_per_epoch():
    gen = torch.Generator().manual_seed(0)
    lengths = [(i * 37) % 101 for i in range(203)]
    batches = _length_bucketed_batches(lengths, 8, gen, window=4)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(203))
    assert all(1 <= len(b) <= 8 for b in batches)


# ------------------------------------------------------------------ training


def test_sft_lowers_the_loss(tokenizer, problems):
    traces = make_traces(problems[:8], seed=0)
    model = build_model(tokenizer, "tiny", seed=0)
    res = sft_train(model, tokenizer, traces, steps=30, batch_size=8, lr=5e-3, warmup_steps=3, max_len=192)
    assert len(res.losses) == 30 and res.model is model
    first, last = res.losses[0], sum(res.losses[-3:]) / 3
    assert last < 0.5 * first, (first, last)
    assert res.steps_per_s > 0 and res.tokens > 0


def test_sft_with_lora_merges_back(tokenizer, problems):
    pytest.importorskip("peft")
    traces = make_traces(problems[:8], seed=0)
    model = build_model(tokenizer, "tiny", seed=0)
    before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    res = sft_train(model, tokenizer, traces, steps=15, batch_size=8, lr=1e-2, lora_r=4, warmup_steps=2, max_len=192)
    assert res.model is model  # merged back in place: the caller's model, no peft wrapper
    assert not any("lora" in name for name, _ in res.model.named_parameters())
    after = res.model.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(before, after)  # the adapters were merged into the base weights
    assert sum(res.losses[-3:]) / 3 < res.losses[0]


def test_rl_and_sft_share_one_lora_set_up(tokenizer):
    """The trainer's ``apply_lora`` is the SFT set-up (``add_lora_adapters``): same adapters, same
    frozen base, and the rollout model is the LoRA-injected causal LM inside the peft model."""
    from agents.config import TrainConfig
    from agents.run_setup import apply_lora
    from agents.sft import LORA_TARGETS, add_lora_adapters

    rl_module, rollout = apply_lora(build_model(tokenizer, "tiny", seed=0), TrainConfig(lora_r=4))
    sft_module = add_lora_adapters(build_model(tokenizer, "tiny", seed=0), 4)
    rl_cfg, sft_cfg = rl_module.peft_config["default"], sft_module.peft_config["default"]
    assert (rl_cfg.r, rl_cfg.lora_alpha, rl_cfg.lora_dropout) == (sft_cfg.r, sft_cfg.lora_alpha, 0.0) == (4, 8, 0.0)
    assert set(rl_cfg.target_modules) == set(sft_cfg.target_modules) == set(LORA_TARGETS)
    trainable = lambda m: sorted(n for n, p in m.named_parameters() if p.requires_grad)  # noqa: E731
    assert trainable(rl_module) == trainable(sft_module) and all("lora_" in n for n in trainable(rl_module))
    assert rollout is rl_module.get_base_model()
    assert apply_lora(model := build_model(tokenizer, "tiny", seed=0), TrainConfig()) == (model, model)


def test_rsqrt_schedule_makes_a_short_run_the_prefix_of_a_long_one(tokenizer, problems):
    """With the horizon-free schedule, N steps of a long run are exactly a run of N steps (so a
    snapshot of the shipped base build is what ``--sft-steps N`` rebuilds); cosine depends on ``steps``."""
    traces = make_traces(problems[:16], seed=0)

    def run(steps: int, schedule: str) -> tuple[list[float], torch.Tensor]:
        model = build_model(tokenizer, "tiny", seed=0)
        res = sft_train(
            model,
            tokenizer,
            traces,
            steps=steps,
            batch_size=4,
            lr=5e-3,
            warmup_steps=2,
            max_len=128,
            schedule=schedule,
            rsqrt_from=3,
        )
        return res.losses, model.model.layers[0].mlp.up_proj.weight.detach().clone()

    short, w_short = run(5, "rsqrt")
    long, _ = run(8, "rsqrt")
    assert long[:5] == short
    cos_short, w_cos = run(5, "cosine")
    cos_long, _ = run(8, "cosine")
    assert cos_short[:3] == short[:3] and cos_long[:5] != cos_short  # the cosine decay differs by step 4
    assert not torch.equal(w_short, w_cos)
    with pytest.raises(ValueError, match="unknown schedule"):
        sft_train(build_model(tokenizer, "tiny", seed=0), tokenizer, traces, steps=1, schedule="linear")
