"""On-device sampling (temperature, top-p) with the sampling log-probs, and per-turn stop detection.

Pure tensor functions; shapes: ``n`` rows being sampled, ``V`` vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from eapo_env.protocol import STOP_STRINGS

# splitmix64 constants as signed int64 (torch has no uint64 arithmetic)
_GOLDEN, _MIX1, _MIX2 = -7046029254386353131, -4658895280553007687, -7723592293110705685


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic: mask the sign bits out)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def counter_uniforms(key: int, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """[n] float32 uniforms in [0, 1), a pure function of ``(key, rows[i], positions[i])``.

    The splitmix64 finalizer of a counter, computed on the device (int64 arithmetic wraps). Why not a
    ``torch.Generator``: a generator hands out numbers in call order, so a token's draw would depend
    on which other rows happened to be in the batch — and with rows parked on expert latency that is
    timing. Keyed by (episode, position) the rollout is reproducible whatever the batching.

    >>> u = counter_uniforms(7, torch.arange(4), torch.zeros(4, dtype=torch.long))
    >>> bool(((u >= 0) & (u < 1)).all()), torch.equal(u, counter_uniforms(7, torch.arange(4), torch.zeros(4).long()))
    (True, True)
    """
    x = rows.long() * _GOLDEN + positions.long() * _MIX2 + (int(key) & 0x7FFFFFFFFFFFFFFF)
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    x = x ^ _shr(x, 31)
    return _shr(x, 40).float() * (1.0 / (1 << 24))  # top 24 bits: exact in float32


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row.

    Args:
        logits: [n, V] next-token logits (any float dtype; computed in float32).
        temperature: ``<= 0`` means greedy (argmax).
        top_p: nucleus mass in (0, 1]; 1.0 disables the (sorting) filter.
        generator: RNG on ``logits.device`` (reproducible rollouts).
        uniforms: [n] draws in [0, 1) to use instead of ``generator`` (see :func:`counter_uniforms`).

    Returns:
        tokens [n] long, logprobs [n] float32: ``log_softmax(logits / T)[token]`` — the tempered
        distribution the learner recomputes with ``token_logprobs(..., temperature=T)``. The top-p
        renormalisation is deliberately *not* folded in (it is not differentiable through the
        learner's forward; with the default top_p = 1.0 the two agree). Greedy rows report T = 1.
    """
    logits = logits.float()
    if temperature <= 0.0:
        logp = torch.log_softmax(logits, dim=-1)
        tokens = logp.argmax(dim=-1)
        return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
    logp = torch.log_softmax(logits / temperature, dim=-1)
    filtered = logp if top_p >= 1.0 else _top_p_filter(logp, top_p)
    # Inverse-CDF sampling: one uniform per row (not one per vocabulary entry as Gumbel-max or
    # an exponential race), no CPU sync. A zero-probability (filtered) token never has the first
    # cdf value above u, so it is never drawn.
    cdf = filtered.exp().cumsum(dim=-1)  # [n, V]
    if uniforms is None:
        uniforms = torch.rand(cdf.shape[0], device=cdf.device, generator=generator)
    u = uniforms[:, None] * cdf[:, -1:]
    tokens = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def _top_p_filter(logp: torch.Tensor, top_p: float) -> torch.Tensor:
    """[n, V] log-probs with everything outside the top-p nucleus set to -inf (top-1 always kept)."""
    sorted_logp, order = logp.sort(dim=-1, descending=True)
    probs = sorted_logp.exp()
    # mass strictly before each token; a token is kept while that mass is < top_p
    before = probs.cumsum(dim=-1) - probs
    sorted_logp = sorted_logp.masked_fill(before >= top_p, float("-inf"))
    return torch.full_like(logp, float("-inf")).scatter(-1, order, sorted_logp)


class TurnTokenizer(Protocol):
    """What :class:`StopCriteria` calls on a tokenizer (a Hugging Face tokenizer has all three)."""

    @property
    def eos_token_id(self) -> int | None: ...

    def encode(self, text: str, /, *, add_special_tokens: bool) -> list[int]: ...

    def decode(
        self, token_ids: list[int], /, *, skip_special_tokens: bool, clean_up_tokenization_spaces: bool
    ) -> str | list[str]:
        """Ids to text; HF types it for batches too, but a flat id list gives one ``str``."""
        ...


class StopCriteria:
    """When does a policy turn end: a stop tag (``</consult>``, ``</answer>``) or EOS.

    Stop tags that are single tokens of the tokenizer (ours: added tokens) are detected by id on the
    device; others fall back to checking the decoded tail of the turn for the string.

    Args:
        tokenizer: a Hugging Face tokenizer.
        stop_strings: the turn-closing strings (default: the protocol's).
        eos_ids: extra end-of-sequence ids (the tokenizer's ``eos_token_id`` is always included).
    """

    def __init__(
        self,
        tokenizer: TurnTokenizer,
        stop_strings: Sequence[str] = STOP_STRINGS,
        eos_ids: Sequence[int] = (),
    ) -> None:
        self.tokenizer = tokenizer
        stop_ids: list[int] = []
        self.string_stops: list[str] = []
        for s in stop_strings:
            ids = tokenizer.encode(s, add_special_tokens=False)
            if len(ids) == 1:
                stop_ids.append(ids[0])
            else:
                self.string_stops.append(s)
        eos = set(int(e) for e in eos_ids)
        if tokenizer.eos_token_id is not None:
            eos.add(int(tokenizer.eos_token_id))
        self.eos_ids: frozenset[int] = frozenset(eos)
        self.stop_ids: frozenset[int] = frozenset(stop_ids)
        self.all_ids = sorted(self.eos_ids | self.stop_ids)
        # enough tokens to contain the longest string stop (a token holds at least one character)
        self._tail = max((len(s) for s in self.string_stops), default=0) + 1
        self._ids_cache: dict[torch.device, torch.Tensor] = {}

    def ids_tensor(self, device: torch.device) -> torch.Tensor:
        """[k] long: every stop/EOS id, on ``device``."""
        t = self._ids_cache.get(device)
        if t is None:
            t = torch.tensor(self.all_ids or [-1], dtype=torch.long, device=device)
            self._ids_cache[device] = t
        return t

    def token_stop(self, tokens: torch.Tensor) -> torch.Tensor:
        """[n] bool: the just-sampled token ends the turn (stop tag id or EOS)."""
        return torch.isin(tokens, self.ids_tensor(tokens.device))

    @property
    def needs_text_check(self) -> bool:
        return bool(self.string_stops)

    def text_stop(self, turn_ids: Sequence[int]) -> bool:
        """The decoded tail of the turn contains a multi-token stop string (fallback path)."""
        tail = self._decode(list(turn_ids[-self._tail :]))
        return any(s in tail for s in self.string_stops)

    def ends_turn(self, turn_ids: Sequence[int]) -> bool:
        """The one stop rule: the turn so far ends at its last token (a stop/EOS id, or a stop string
        completed by it). Ours applies it batched (:meth:`token_stop`, then :meth:`text_stop`), the hf
        engine and the episode driver per row, vLLM is given its ids and strings and checked by it."""
        return bool(turn_ids) and (turn_ids[-1] in self.all_ids or (self.needs_text_check and self.text_stop(turn_ids)))

    def turn_end(self, ids: Sequence[int]) -> int:
        """How many of ``ids`` (a generated continuation) are the turn: up to the first token that
        :meth:`ends_turn`, or all of them when none does (cut by a token cap)."""
        return next((k + 1 for k in range(len(ids)) if self.ends_turn(ids[: k + 1])), len(ids))

    def turn_text(self, turn_ids: Sequence[int]) -> str:
        """The text handed to the env: the turn decoded with its tags, a trailing EOS left out."""
        ids = list(turn_ids)
        if ids and ids[-1] in self.eos_ids:
            ids = ids[:-1]
        return self._decode(ids)

    def _decode(self, ids: list[int]) -> str:
        """``ids`` decoded with their tags and spacing kept."""
        text = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if not isinstance(text, str):
            raise TypeError(f"the tokenizer decoded one id sequence into {type(text).__name__}, not str")
        return text


def model_eos_ids(model: torch.nn.Module) -> list[int]:
    """EOS ids from the model's generation config (int or list), if any."""
    gc = getattr(model, "generation_config", None)
    eos = getattr(gc, "eos_token_id", None) if gc is not None else None
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]
