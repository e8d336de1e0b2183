"""Throwaway tiny policy pieces and a fake text env for the rollout/loss tests and the benchmark.

Independent of ``agents.policy`` on purpose (it is written in parallel): a ByteLevel BPE trained
in-process with the protocol tags as single added tokens, and a tiny random ``Qwen2ForCausalLM``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from eapo_env import prompts
from eapo_env.protocol import PROTOCOL_TAGS, STOP_STRINGS, parse_action

EOS = "<|endoftext|>"

_CORPUS = [
    prompts.TRAIN_PROMPT.format(question="What is 17 + 25?", max_experts=3, max_turns=4),
    prompts.NUDGE,
    prompts.render_experts_block(["17 + 25 = 42, so the answer is 42.", None]),
    "Let me think step by step. 3 * 4 = 12 and 12 + 5 = 17. <answer>17</answer>",
    "<think>I am not sure.</think><consult><query>What is 6*7?</query><query>Check 9-2</query></consult>",
    "The quick brown fox jumps over the lazy dog 0123456789 + - * / = ( ) ? ! . , ;",
]


def build_tiny_tokenizer(vocab_size: int = 400, tags_as_tokens: bool = True) -> PreTrainedTokenizerFast:
    """ByteLevel BPE trained on a few protocol texts; tags are single added special tokens
    (``tags_as_tokens=False``: tags split into ordinary tokens, to exercise the text-stop path)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = [EOS, *PROTOCOL_TAGS] if tags_as_tokens else [EOS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    stop_prob: float = 0.05,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
) -> Qwen2ForCausalLM:
    """A random tiny Qwen2 (hidden 64, 2 layers, GQA 4/2 heads). ``stop_prob`` adds an lm-head bias
    on the stop tags and EOS so turns end at varied lengths (an untrained model almost never emits
    them); both our engine and HF's forward call ``lm_head``, so the bias is part of the model."""
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        initializer_range=0.2,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(cfg)
    head = torch.nn.Linear(hidden, len(tokenizer), bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        if stop_prob > 0:
            ids = [tokenizer.convert_tokens_to_ids(s) for s in (*STOP_STRINGS, EOS)]
            ids = [i for i in ids if i is not None and i != tokenizer.unk_token_id]
            head.bias[ids] = math.log(stop_prob * len(tokenizer) / len(ids))
    model.lm_head = head
    return model.eval()


class FakeTextEnv:
    """A minimal text env with the ``EAPO-Math-v0`` interface.

    ``mode="protocol"``: parses each turn with the real action parser: answer → terminated (reward 1
    when it equals ``"42"``), consult → an experts block, reasoning → the nudge; ``max_turns`` spent →
    truncated. ``mode="scripted"``: every turn before the last consults (experts block observation),
    turn ``max_turns`` terminates with reward 1 — a fixed 3-turn shape for benchmarks.
    """

    def __init__(self, mode: str = "protocol", max_turns: int = 3, reply: str = "6 * 7 = 42.") -> None:
        self.mode, self.max_turns, self.reply = mode, max_turns, reply
        self.actions: list[str] = []
        self.observations: list[str] = []
        self.turn = 0

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[str, dict[str, Any]]:
        self.turn, self.actions, self.observations, self.consults = 0, [], [], 0
        s = 0 if seed is None else int(seed)
        question = f"What is {s} + {7 * s % 13}?" + " Explain." * (s % 4)  # varied prompt lengths
        prompt = prompts.render_prompt(question, eval_mode=False, max_experts=3, max_turns=self.max_turns)
        return prompt, {"problem_id": f"p{s}"}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if not isinstance(action, str):
            raise TypeError("action must be str")
        self.actions.append(action)
        self.turn += 1
        parsed = parse_action(action, max_queries=3)
        info: dict[str, Any] = {"turn": self.turn}
        if self.mode == "scripted":
            if self.turn >= self.max_turns:
                return "", 1.0, True, False, info | {"consults": self.consults, "correct": True}
            self.consults += 1
            obs = prompts.render_experts_block([self.reply, None])
        elif parsed.kind == "answer":
            ok = parsed.answer == "42"
            return "", float(ok), True, False, info | {"consults": self.consults, "correct": ok}
        elif parsed.kind == "consult" and parsed.queries:
            self.consults += 1
            obs = prompts.render_experts_block([self.reply] * len(parsed.queries))
        else:
            obs = prompts.NUDGE
        info["consults"] = self.consults
        truncated = self.turn >= self.max_turns
        if truncated:
            info["correct"] = False  # the env's documented episode-end key (no answer given)
        self.observations.append(obs)
        return obs, 0.0, False, truncated, info


@torch.no_grad()
def reference_greedy_rollout(
    model, tokenizer, env, seed: int, max_turn_tokens: int, max_total_tokens: int
) -> list[int]:
    """No-cache reference: greedy, full forward over the whole sequence for every token.
    Returns ``token_ids`` after the prompt (same stop/budget rules as the engine)."""
    stops = {tokenizer.convert_tokens_to_ids(s) for s in STOP_STRINGS} | {tokenizer.eos_token_id}
    prompt, _ = env.reset(seed=seed)
    seq = tokenizer.encode(prompt, add_special_tokens=True)
    out: list[int] = []
    while True:
        turn: list[int] = []
        while True:
            logits = model(torch.tensor([seq])).logits[0, -1]
            nxt = int(logits.argmax())
            seq.append(nxt)
            turn.append(nxt)
            if nxt in stops or len(turn) >= max_turn_tokens or len(seq) >= max_total_tokens:
                break
        out += turn
        if len(seq) >= max_total_tokens and turn[-1] not in stops:
            return out
        ids = turn[:-1] if turn[-1] == tokenizer.eos_token_id else turn
        obs, _, term, trunc, _ = env.step(tokenizer.decode(ids, skip_special_tokens=False))
        if term or trunc:
            return out
        obs_ids = tokenizer.encode(obs, add_special_tokens=False)
        if len(seq) + len(obs_ids) >= max_total_tokens:
            return out
        seq += obs_ids
        out += obs_ids


def train_consulting_model(
    tokenizer: PreTrainedTokenizerFast,
    steps: int = 80,
    seed: int = 0,
    problems: Any = "generated:arithmetic:1",
    n_prompts: int = 2,
) -> Qwen2ForCausalLM:
    """The tiny model overfit (seconds) to a two-turn script on ``EAPO-Math-v0`` prompts: after the
    prompt ``<consult><query>why?</query></consult>``, half the time after a detour of a few words
    (so sampled rows finish their first turn at different steps); ``<answer>42</answer>`` after an
    experts block (whatever the replies say). A real model whose turns consult, for the tests of
    rows parked on experts and of expert faults during rollouts. It sees the prompts of the first
    ``n_prompts`` of ``problems``."""
    import gymnasium as gym

    import eapo_env  # noqa: F401  (registers the ids)

    model = build_tiny_model(tokenizer, stop_prob=0.0, seed=seed)
    env = gym.make("EAPO-Math-v0", problems=problems, max_turns=3)
    consults = [
        tokenizer.encode(text + "<consult><query>why?</query></consult>", add_special_tokens=False)
        for text in ("", "Hmm, wait. ")
    ]
    answer = tokenizer.encode("<answer>42</answer>", add_special_tokens=False)
    rows: list[tuple[list[int], list[int]]] = []
    for s in range(n_prompts):
        prompt = tokenizer.encode(env.reset(seed=s, options={"problem_index": s})[0], add_special_tokens=True)
        for reply, consult in zip(("echo: why? The answer is \\boxed{42}.", None, "x " * (s + 1), "7"), consults * 2):
            obs = tokenizer.encode(prompts.render_experts_block([reply]), add_special_tokens=False)
            rows.append(
                (
                    prompt + consult + obs + answer,
                    [0] * len(prompt) + [1] * len(consult) + [0] * len(obs) + [1] * len(answer),
                )
            )
    from agents.sft import fit_examples, masked_example

    examples = [masked_example(ids, mask) for ids, mask in rows]
    return fit_examples(model, examples, tokenizer.pad_token_id, steps).eval()
