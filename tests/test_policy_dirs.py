"""Every policy directory the project writes loads with the ids it was trained on, through both loaders.

Kinds: ``build_policy`` (``eapo build-policy``), distillation SFT's ``final_policy`` (full and LoRA,
merged), ``eapo train``'s ``final_policy`` and its checkpoints (full and LoRA, merged into a copy), and
the shipped ``tiny_base``. For each, ``agents.policy.load_policy`` and plain
``transformers.AutoTokenizer.from_pretrained`` must give the ids of the tokenizer the policy was
trained with on the real prompts, env observations (run through the real env), experts blocks and
SFT traces; and the directory must carry ``eapo_policy.json`` saying so.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

import eapo_env
from agents.config import TrainConfig
from agents.policy import SHIPPED_POLICIES, build_policy, build_tokenizer, load_policy, load_tokenizer
from agents.policy.build import policy_phrases
from agents.policy.directory import POLICY_INFO_FILE, TOKENIZER_NOTE_FILE, write_policy_dir
from agents.policy.recipes import BASE_TRACES
from agents.policy.tokenizer import encode_prompt, encode_segment
from agents.sft import tokenize_trace
from agents.traces import make_traces, reference_reply_fn
from eapo_env import prompts
from eapo_env.problems import load_problems

torch.set_num_threads(1)
BUILD_PROBLEMS = "generated:arithmetic:1-2"
CONSULT = "Let me ask. <consult><query>How do I start?</query><query>What is the result?</query></consult>"


# ------------------------------------------------------------------ what the ids are compared on


def _env_observations() -> list[str]:
    """Observations of the real envs: prompts, experts blocks, the nudge, format error, consult disabled."""
    out: list[str] = []
    for env_id, actions in ((eapo_env.TRAIN_ID, [CONSULT, "Hmm, 12 - 3 = 9.", "<consult></consult>"]),
                            (eapo_env.EVAL_ID, [CONSULT])):  # fmt: skip
        env = gym.make(env_id, problems="generated", expert="reference", max_turns=8)
        for seed in range(4):
            obs, _ = env.reset(seed=seed)
            out.append(obs)
            for action in actions:
                out.append(env.step(action)[0])
    return out


@pytest.fixture(scope="module")
def corpus() -> dict[str, list]:
    src = load_problems("generated")
    problems = [src[i] for i in range(0, 3000, 97)]
    reply = reference_reply_fn()
    return {
        "prompts": [
            prompts.render_prompt(p.question, eval_mode=e, max_experts=3, max_turns=t)
            for p in problems
            for e, t in ((False, 8), (True, 4))
        ],
        "observations": _env_observations(),
        "expert_blocks": [prompts.render_experts_block([reply(p, "How?"), None, p.solution]) for p in problems],
        "traces": make_traces(problems, seed=0, config=BASE_TRACES),
    }


def _ids(tok: PreTrainedTokenizerBase, corpus: dict[str, list]) -> dict[str, list]:
    texts = corpus["prompts"] + corpus["observations"] + corpus["expert_blocks"]
    return {
        "prompts": [encode_prompt(tok, t) for t in corpus["prompts"] + corpus["observations"]],
        "segments": [encode_segment(tok, t) for t in texts],
        "traces": [tokenize_trace(tok, tr).input_ids for tr in corpus["traces"]],
        "non_nfc": [encode_segment(tok, t) for t in ("e\u0301 = 1", "\u212b\u2126 A\u030a", "\ufb01 \u00bd")],
        "specials": [tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, len(tok)],
    }


def _assert_both_loaders_give(trained: PreTrainedTokenizerBase, path: Path, corpus: dict[str, list]) -> None:
    expected = _ids(trained, corpus)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # load_policy must not warn for these directories
        _, ours = load_policy(path)
    auto = AutoTokenizer.from_pretrained(str(path))
    for name, loaded in (("load_policy", ours), ("AutoTokenizer", auto)):
        got = _ids(loaded, corpus)
        for part in expected:
            assert got[part] == expected[part], f"{path.name}: {name} differs on {part}"
    assert auto.chat_template == trained.chat_template


def _assert_record(path: Path, written_by: str) -> dict:
    info = json.loads((path / POLICY_INFO_FILE).read_text())
    assert info["written_by"] == written_by
    assert info["tokenizer"]["agrees"] and info["tokenizer"]["file_agrees"], info["tokenizer"]
    assert not (path / TOKENIZER_NOTE_FILE).exists()
    return info


# ------------------------------------------------------------------ the directories


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train 1 step (full and LoRA) and distil 2 SFT steps (full and LoRA) from the shipped base."""
    from agents.baselines import run_distill_sft
    from agents.trainer import train

    root = tmp_path_factory.mktemp("policy_dirs")
    common = dict(policy="tiny-base", problems=BUILD_PROBLEMS, final_eval=False, threads=1, progress_bar=False)
    for lora_r in (0, 4):
        config = TrainConfig(
            **common, steps=1, group_size=4, prompts_per_step=4, checkpoint_every=1, lora_r=lora_r,
            max_turns=4, max_turn_tokens=64, max_total_tokens=384, mini_batches=1, ppo_epochs=1,
            lr=1e-3,  # (seed 0: mixed groups, so the step updates and the weights move)
        )  # fmt: skip
        train(config, root / f"train_lora{lora_r}", log=lambda _: None)
        distill = TrainConfig(
            **common, method="distill_sft", distill_num_problems=6, distill_steps=2, lora_r=lora_r,
            max_turn_tokens=64, max_total_tokens=512,
        )  # fmt: skip
        run_distill_sft(distill, root / f"sft_lora{lora_r}", log=lambda _: None)
    return root


def test_build_policy_dir_loads_with_its_training_ids(tmp_path: Path, corpus: dict[str, list]) -> None:
    out = build_policy(tmp_path / "p", "tiny", sft_steps=2, problems=BUILD_PROBLEMS, n_train=64, n_heldout=0,
                       batch_size=4, verbose=False)  # fmt: skip
    src = load_problems(BUILD_PROBLEMS)
    trained = build_tokenizer(policy_phrases([src[i] for i in range(64)]))  # what the SFT encoded with
    info = _assert_record(out, "build")
    assert "rebuild_command" in info and info["sft"]["steps"] == 2
    _assert_both_loaders_give(trained, out, corpus)


def test_shipped_base_loads_alike_through_both_loaders(corpus: dict[str, list]) -> None:
    path = SHIPPED_POLICIES["tiny-base"]
    _assert_both_loaders_give(load_tokenizer(path), path, corpus)


@pytest.mark.parametrize("lora_r", [0, 4])
def test_train_final_policy_and_checkpoint_load_with_the_training_ids(
    runs: Path, corpus: dict[str, list], lora_r: int
) -> None:
    trained = load_tokenizer("tiny-base")  # the run trained with the base's tokenizer
    run = runs / f"train_lora{lora_r}"
    final, ckpt = run / "final_policy", run / "checkpoints" / "step_000001"
    for path, kind in ((final, "train"), (ckpt, "checkpoint")):
        info = _assert_record(path, kind)
        assert info["source"] == str(SHIPPED_POLICIES["tiny-base"])
        assert info["base"]["rebuild_command"].startswith("eapo build-policy")  # the base's build record
        _assert_both_loaders_give(trained, path, corpus)
    # The checkpoint's policy is the policy after its step (one step: the final one), LoRA merged.
    final_weights, ckpt_weights = load_file(final / "model.safetensors"), load_file(ckpt / "model.safetensors")
    assert final_weights.keys() == ckpt_weights.keys() and not any("lora" in k for k in ckpt_weights)
    assert all(torch.equal(final_weights[k], ckpt_weights[k]) for k in final_weights)
    base_weights = load_file(SHIPPED_POLICIES["tiny-base"] / "model.safetensors")
    assert any(not torch.equal(base_weights[k], final_weights[k]) for k in final_weights)  # it did train
    assert (ckpt / "model.pt").is_file()  # what a resume loads is still there


@pytest.mark.parametrize("lora_r", [0, 4])
def test_sft_final_policy_loads_with_the_training_ids(runs: Path, corpus: dict[str, list], lora_r: int) -> None:
    final = runs / f"sft_lora{lora_r}" / "final_policy"
    info = _assert_record(final, "sft")
    assert info["details"]["lora_r"] == (lora_r or None)
    _assert_both_loaders_give(load_tokenizer("tiny-base"), final, corpus)
    model, _ = load_policy(final)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_a_tokenizer_the_standard_loader_cannot_reproduce_is_said_loudly(tmp_path: Path) -> None:
    """An older directory (its tokenizer without NFC): load_policy warns; re-writing it records why."""
    legacy = tmp_path / "legacy"
    shutil.copytree(SHIPPED_POLICIES["tiny-base"], legacy)
    tokenizer_json = json.loads((legacy / "tokenizer.json").read_text())
    tokenizer_json["normalizer"] = None
    (legacy / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    with pytest.warns(UserWarning, match="no NFC normalizer"):
        model, tok = load_policy(legacy)
    with pytest.warns(UserWarning, match="other token ids"):
        out = write_policy_dir(tmp_path / "rewritten", model, tok, written_by="train", source=legacy)
    info = json.loads((out / POLICY_INFO_FILE).read_text())
    assert info["tokenizer"]["agrees"] is False and info["tokenizer"]["file_agrees"] is True
    assert "Qwen2Tokenizer" in (out / TOKENIZER_NOTE_FILE).read_text()
    with pytest.warns(UserWarning, match=TOKENIZER_NOTE_FILE):
        _, reloaded = load_policy(out)
    assert reloaded.encode("e\u0301") == tok.encode("e\u0301") != AutoTokenizer.from_pretrained(out).encode("e\u0301")
