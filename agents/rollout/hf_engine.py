"""The Hugging Face ``generate`` baseline engine (same interface as :class:`RolloutEngine`).

Fair baseline: the same env driving (one vector env, :class:`~agents.rollout.driver.EpisodeDriver`),
token ids are kept (never re-tokenized) and each turn calls ``model.generate`` on the full token
history of every live row (left-padded), stopping rows with a ``StoppingCriteria`` on the stop-tag
ids; then all rows are stepped in one ``submit`` and the engine waits for every reply. What it cannot do — and what our engine does — is keep the KV cache across env steps
(every turn re-prefills the whole history), avoid ``generate``'s per-step overhead, and drop
finished rows from the compute (``generate`` keeps them in the batch until every row stops).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.utils import GenerateDecoderOnlyOutput

from agents.hf_protocols import causal_lm
from agents.rollout.driver import EpisodeDriver
from agents.rollout.sampling import StopCriteria, model_eos_ids
from agents.rollout.types import Trajectory


class _TurnStop(StoppingCriteria):
    """Per-row stop on the stop/EOS ids (and on stop strings that are not single tokens)."""

    def __init__(self, stop: StopCriteria, prompt_len: int) -> None:
        self.stop, self.prompt_len = stop, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        done = self.stop.token_stop(input_ids[:, -1])
        if self.stop.needs_text_check:
            tails = input_ids[:, self.prompt_len :].tolist()
            done |= torch.tensor([self.stop.text_stop(t) for t in tails], device=done.device)
        return done


class HFRolloutEngine:
    """Multi-turn rollouts with ``model.generate`` per turn. Arguments as :class:`RolloutEngine`."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        max_turn_tokens: int = 256,
        max_total_tokens: int = 2048,
        temperature: float = 1.0,
        top_p: float = 1.0,
        device: torch.device | str | None = None,
        encode_prompt: Callable[[str], list[int]] | None = None,
        encode_observation: Callable[[str], list[int]] | None = None,
        seed: int | None = None,
        **_: Any,
    ) -> None:
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self.max_turn_tokens, self.max_total_tokens = int(max_turn_tokens), int(max_total_tokens)
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.encode_prompt = encode_prompt or (lambda s: tokenizer.encode(s, add_special_tokens=True))
        self.encode_observation = encode_observation or (lambda s: tokenizer.encode(s, add_special_tokens=False))
        self.stop = StopCriteria(tokenizer, eos_ids=model_eos_ids(model))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.seed = seed

    @torch.no_grad()
    def rollout(
        self,
        vec_env: Any,
        seeds: Sequence[int | None] | int | None = None,
        options: Sequence[dict | None] | dict | None = None,
        group_ids: Sequence[int] | None = None,
        seed: int | None = None,
    ) -> list[Trajectory]:
        seed = self.seed if seed is None else seed
        if seed is not None:
            torch.manual_seed(seed)  # generate() samples from the global RNG
        driver = EpisodeDriver(vec_env, self.encode_prompt, self.encode_observation, self.stop, self.max_total_tokens)
        trajs = driver.start(seeds, options, group_ids)
        live = driver.live()
        while live:  # lock-step: every live row generates a turn, then all are stepped (one submit)
            turns = self._generate_eval([trajs[i].prompt_ids + trajs[i].token_ids for i in live])
            finished = []
            for i, (ids, lps) in zip(live, turns):
                room = self.max_total_tokens - len(trajs[i].prompt_ids) - len(trajs[i].token_ids)
                finished.append((i, ids[:room], lps[:room]))
            rejoin, _ = driver.finish_turns(finished)
            later, _ = driver.wait_all()
            live = sorted(rejoin + later)
        return trajs

    def _generate_eval(self, histories: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        """``_generate`` in eval mode (no dropout), restoring the caller's train/eval mode."""
        was_training = self.model.training
        self.model.eval()
        try:
            return self._generate(histories)
        finally:
            self.model.train(was_training)

    def _generate(self, histories: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        """One turn for every history (left-padded batch); per row: (turn ids, sampling logprobs)."""
        B, L = len(histories), max(len(h) for h in histories)
        input_ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        attention = torch.zeros(B, L, dtype=torch.long)
        for r, h in enumerate(histories):
            input_ids[r, L - len(h) :] = torch.tensor(h)
            attention[r, L - len(h) :] = 1
        room = self.max_total_tokens - min(len(h) for h in histories)
        sample = self.temperature > 0
        out: GenerateDecoderOnlyOutput = causal_lm(self.model).generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention.to(self.device),
            max_new_tokens=min(self.max_turn_tokens, room),
            do_sample=sample,
            temperature=self.temperature if sample else None,
            top_p=self.top_p if sample else None,
            top_k=0 if sample else None,
            stopping_criteria=StoppingCriteriaList([_TurnStop(self.stop, L)]),
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.stop.eos_ids) or None,
            output_logits=True,
            return_dict_in_generate=True,
        )
        new = out.sequences[:, L:]  # [B, n]
        if out.logits is None:
            raise RuntimeError("generate returned no logits although output_logits=True was passed")
        logits = torch.stack(out.logits, dim=1).float()  # [B, n, V] raw logits
        if sample:
            logits = logits / self.temperature
        lps = torch.log_softmax(logits, dim=-1).gather(-1, new[..., None]).squeeze(-1)
        results = []
        for ids, lp in zip(new.tolist(), lps.tolist()):
            end = self.stop.turn_end(ids)  # the shared stop rule (``generate`` pads rows that stopped early)
            results.append((ids[:end], lp[:end]))
        return results
