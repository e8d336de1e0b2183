"""The ``policy`` expert: replicas of a policy directory answer the consults (self-collaboration).

It lives in the learner, not in :mod:`eapo_env.experts`, because it loads the policy exactly as
training does (:func:`agents.policy.load_policy`, :func:`agents.policy.encode_prompt`), and the core
never imports the learner (DESIGN §2, layers point one way). ``make_expert("policy", ...)`` finds it
through the ``eapo.experts`` entry point that ``setup.cfg`` declares (``policy =
agents.policy.expert:PolicyExpert``); without the ``agents`` extra (torch, transformers) that lookup
fails with an error naming the extra.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agents.hf_protocols import causal_lm
from agents.policy.model import load_policy
from agents.policy.tokenizer import encode_prompt, tag_token_ids
from eapo_env import prompts
from eapo_env.experts.base import ExpertRequest
from eapo_env.experts.local import LocalExpert, stable_seed
from eapo_env.protocol import STOP_STRINGS, parse_action

__all__ = ["PolicyExpert", "reply_from_turn"]


class PolicyExpert(LocalExpert):
    r"""Replicas of a policy directory as the experts: the paper's self-collaboration and homogeneous pool.

    Each request is answered by sampling one turn of the policy on the problem's **evaluation prompt**,
    encoded exactly as the policy sees it in training and evaluation (``agents.policy``: its own
    tokenizer rule and chat template), i.e. what the policy would say alone. The query is ignored by
    default (``prompt="problem"``, as the ``reference`` expert ignores it: a tiny policy only knows
    its training prompt); ``prompt="query"`` puts the query in the problem's place instead. The turn is
    returned in the reference expert's shape, ``<reasoning>\nThe answer is \boxed{<answer>}.``, so a
    policy reads a replica's reply as it reads any expert's; a turn with no answer is returned as text.

    One ``generate`` call per consult batch (rows left-padded; ``batch_size`` caps rows per call).
    Sampling is seeded from ``(seed, request ids)`` inside ``torch.random.fork_rng``: the same batch
    gets the same replies, and the caller's global torch RNG is untouched. The model is a frozen copy
    loaded from ``policy_dir`` (the paper's replicas are the base model, not the policy in training).

    Args:
        policy_dir: a directory written by ``eapo build-policy`` / ``eapo train`` (any HF causal LM
            loadable by ``agents.policy.load_policy``).
        max_new_tokens: reply length cap (tokens). temperature: 0 is greedy; > 0 samples with ``top_p``.
        device: torch device. batch_size: rows per ``generate`` call. seed: sampling seed.
        prompt: ``"problem"`` or ``"query"`` (see above).

    Example:
        >>> expert = make_expert("policy", policy_dir="runs/policy", seed=0)          # doctest: +SKIP
        >>> consult_blocking(expert, [ExpertRequest("r0", problem, "Solve it.")])[0].text  # doctest: +SKIP
        '17 + 8 = 25, 25 - 4 = 21.\nThe answer is \\boxed{21}.'
    """

    name = "policy"

    def __init__(
        self,
        policy_dir: str,
        max_new_tokens: int = 96,
        temperature: float = 1.0,
        top_p: float = 1.0,
        device: str = "cpu",
        batch_size: int = 512,
        seed: int = 0,
        prompt: str = "problem",
    ) -> None:
        super().__init__("", "", seed)
        if prompt not in ("problem", "query"):
            raise ValueError(f"prompt must be 'problem' or 'query', got {prompt!r}")
        if not policy_dir:
            raise ValueError("the 'policy' expert needs policy_dir (a policy directory)")
        # Through load_policy on purpose: a policy's tokenizer must load exactly as it was trained
        # (AutoTokenizer can swap a saved pre-tokenizer), and that rule lives there.
        self.model, self.tokenizer = load_policy(policy_dir, device=device)
        self.model.requires_grad_(False)
        self.policy_dir, self.prompt = str(policy_dir), prompt
        self.max_new_tokens, self.temperature, self.top_p = int(max_new_tokens), float(temperature), float(top_p)
        self.batch_size = max(1, int(batch_size))
        self.stop_ids = [*tag_token_ids(self.tokenizer, STOP_STRINGS), self.tokenizer.eos_token_id]
        self.name = f"policy({self.policy_dir})"

    def prompt_ids(self, request: ExpertRequest) -> list[int]:
        """Token ids of the replica's prompt: the evaluation prompt of the problem (or of the query)."""
        question = request.problem.question if self.prompt == "problem" else request.query
        prompt = prompts.render_prompt(question, eval_mode=True, max_experts=1, max_turns=1)
        return encode_prompt(self.tokenizer, prompt)

    def _generate(self, requests: Sequence[ExpertRequest]) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for lo in range(0, len(requests), self.batch_size):
            out += self._generate_chunk(requests[lo : lo + self.batch_size])
        return out

    def _generate_chunk(self, chunk: Sequence[ExpertRequest]) -> list[tuple[str, int]]:
        tok, device = self.tokenizer, next(self.model.parameters()).device
        encoded = [self.prompt_ids(r) for r in chunk]
        width, pad = max(map(len, encoded)), tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device)
        sample = self.temperature > 0
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(stable_seed(self.seed, *(r.request_id for r in chunk)))
            gen: torch.Tensor = causal_lm(self.model).generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=self.max_new_tokens,
                do_sample=sample,
                temperature=self.temperature if sample else None,
                top_p=self.top_p if sample else None,
                top_k=None,
                eos_token_id=self.stop_ids,
                pad_token_id=pad,
            )
        out = []
        for row in gen[:, width:].tolist():
            n = next((i + 1 for i, t in enumerate(row) if t in self.stop_ids), len(row))
            text = tok.decode(row[:n], skip_special_tokens=True)
            if not isinstance(text, str):  # HF types decode for batches too; one id list gives a str
                raise TypeError(f"the tokenizer decoded one id sequence into {type(text).__name__}, not str")
            out.append((reply_from_turn(text), n))
        return out


def reply_from_turn(turn: str) -> str:
    r"""A policy turn as an expert reply: the reasoning before any block, then the boxed answer.

    Example:
        >>> reply_from_turn("3 + 4 = 7. <answer>7</answer>")
        '3 + 4 = 7.\nThe answer is \\boxed{7}.'
        >>> reply_from_turn("I am not sure <consult><query>help</query></consult>")
        'I am not sure'
    """
    parsed = parse_action(turn, 1)
    if parsed.kind == "reason":  # no complete block: the text as it is
        return turn.strip()
    opener = "<answer>" if parsed.kind == "answer" else "<consult>"
    reasoning = turn[: max(0, turn.find(opener))].strip()
    if parsed.kind == "consult":
        return reasoning
    return f"{reasoning}\nThe answer is \\boxed{{{(parsed.answer or '').strip()}}}.".lstrip("\n")
