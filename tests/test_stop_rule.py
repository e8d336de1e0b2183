"""One stop rule shared by every engine: ``StopCriteria.turn_end`` / ``ends_turn`` decide where a turn ends."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from agents_fixtures import build_tiny_tokenizer  # noqa: E402

from agents.rollout import StopCriteria  # noqa: E402


@pytest.mark.parametrize("tags_as_tokens", [True, False], ids=["tag-tokens", "tag-strings"])
def test_every_engine_ends_a_turn_by_the_one_stop_rule(tags_as_tokens):
    """``StopCriteria.turn_end`` is where a turn ends, and each engine's form of the rule agrees with it
    on the same token streams: ours (batched ids, then the text fallback), hf (its ``StoppingCriteria``
    on prompt + turn) and vLLM (its ``stop_token_ids`` and ``stop`` strings over the decoded turn)."""
    from agents.rollout.hf_engine import _TurnStop

    tok = build_tiny_tokenizer(tags_as_tokens=tags_as_tokens)
    stop = StopCriteria(tok)
    texts = ["so <answer>42</answer> more", "hmm <consult>why?</consult> x", "no stop here at all", "<answer>1"]
    streams = [tok.encode(t, add_special_tokens=False) for t in texts]
    gen = torch.Generator().manual_seed(0)
    streams += [torch.randint(len(tok), (12,), generator=gen).tolist() for _ in range(20)]
    if tok.eos_token_id is not None:
        streams.append(streams[2][:3] + [tok.eos_token_id] + streams[2][3:])

    def first(ids, hit) -> int:
        return next((k + 1 for k in range(len(ids)) if hit(ids[: k + 1])), len(ids))

    hf_stop = _TurnStop(stop, prompt_len=2)
    vllm_ids = set(stop.all_ids)

    def ours_hit(t):
        return bool(stop.token_stop(torch.tensor(t[-1:]))[0]) or stop.text_stop(t)

    def hf_hit(t):
        return bool(hf_stop(torch.tensor([[0, 0, *t]]), torch.zeros(1, 1))[0])

    def vllm_hit(t):
        return t[-1] in vllm_ids or any(s in tok.decode(t, skip_special_tokens=False) for s in stop.string_stops)

    ends = []
    for ids in streams:
        ours, hf, vllm = first(ids, ours_hit), first(ids, hf_hit), first(ids, vllm_hit)
        assert stop.turn_end(ids) == ours == hf == vllm, (tok.decode(ids), stop.turn_end(ids), ours, hf, vllm)
        ends.append(stop.turn_end(ids))
    assert ends[0] < len(streams[0]) and ends[1] < len(streams[1]) and ends[2] == len(streams[2])  # stops found
    assert stop.ends_turn(streams[0][: ends[0]]) and not stop.ends_turn(streams[0][: ends[0] - 1])
