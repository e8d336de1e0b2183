"""The model side of our engine: a Llama-family forward over a static per-row KV cache.

* A minimal forward of Llama-family decoders (Qwen2, Llama, Mistral, Qwen3) that calls the HF
  model's own submodules (so the numerics are the model's) over a **static per-row KV cache**
  ``kv[layer, k|v, row, kv_head, slot, head_dim]``. Row i holds its tokens in slots
  ``0 .. length[i]-1`` with true positions (no left padding, no position gaps), so a re-score of
  the trajectory by the plain HF forward sees exactly the same positions.
* Ragged writes: every forward takes ``tokens [n, m]`` and per-row ``start`` slots; padding
  positions write to a dump slot (the cache's last one) that no real query ever attends to.
* CPU: the slot axis grows by doubling as needed. CUDA: the cache is preallocated at the full
  budget and the decode step is captured as CUDA graphs per batch-size bucket
  (:class:`CudaGraphDecoder`; exercised by ``scripts/gpu_check.sh``, not by the CPU CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, cast

import torch
import torch.nn.functional as F

SUPPORTED_MODEL_TYPES = ("qwen2", "llama", "mistral", "qwen3")

TensorMap = Callable[[torch.Tensor], torch.Tensor]


class _LlamaConfig(Protocol):
    model_type: str
    num_attention_heads: int
    num_key_value_heads: int


class _LlamaAttention(Protocol):
    """The parts of an HF Llama-family attention block this forward calls."""

    head_dim: int
    scaling: float
    q_proj: TensorMap
    k_proj: TensorMap
    v_proj: TensorMap
    o_proj: TensorMap


class _QKNormAttention(_LlamaAttention, Protocol):
    """Qwen3's attention: per-head RMSNorm of queries and keys before rope."""

    q_norm: TensorMap
    k_norm: TensorMap


class _LlamaLayer(Protocol):
    self_attn: _LlamaAttention
    input_layernorm: TensorMap
    post_attention_layernorm: TensorMap
    mlp: TensorMap


class _LlamaBackbone(Protocol):
    layers: Iterable[_LlamaLayer]
    embed_tokens: torch.nn.Embedding
    rotary_emb: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    norm: TensorMap


class LlamaFamilyLM(Protocol):
    """What :class:`StaticCacheDecoder` reads off a ``*ForCausalLM``: the HF submodule layout shared
    by Qwen2, Llama, Mistral and Qwen3. torch types every submodule attribute ``Tensor | Module``
    (``Module.__getattr__``); this names the interface the forward relies on instead."""

    config: _LlamaConfig
    model: _LlamaBackbone
    lm_head: TensorMap


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (HF's rotate-half convention). x [n, h, m, D], cos/sin [n, 1, m, D]."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float, gqa: bool
) -> torch.Tensor:
    """SDPA with grouped K/V heads; torch < 2.5 has no ``enable_gqa`` and gets repeated heads."""
    if gqa and not _HAS_GQA:
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        gqa = False
    kw: dict[str, bool] = {"enable_gqa": True} if gqa else {}
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, **kw)


_HAS_GQA = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)


class StaticCacheDecoder:
    """Forward of a Llama-family HF causal LM over a static per-row KV cache.

    Args:
        model: a ``*ForCausalLM`` whose ``config.model_type`` is in :data:`SUPPORTED_MODEL_TYPES`.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        lm = cast(LlamaFamilyLM, model)
        cfg = lm.config
        if cfg.model_type not in SUPPORTED_MODEL_TYPES:
            raise NotImplementedError(
                f"our engine implements {SUPPORTED_MODEL_TYPES}, not {cfg.model_type!r}; use engine='hf'"
            )
        self.model = lm
        self.layers = list(lm.model.layers)
        if any(getattr(layer.self_attn, "sliding_window", None) for layer in self.layers):
            raise NotImplementedError("sliding-window attention is not implemented; use engine='hf'")
        attn = self.layers[0].self_attn
        self.head_dim, self.n_kv, self.scaling = int(attn.head_dim), int(cfg.num_key_value_heads), float(attn.scaling)
        self.gqa = cfg.num_attention_heads != cfg.num_key_value_heads
        weight = lm.model.embed_tokens.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.kv: torch.Tensor | None = None  # [layers, 2, rows, kv_heads, capacity, head_dim]
        # rope tables and slot indices, [capacity, D], [capacity, D], [capacity]; filled by allocate()
        self.cos = self.sin = torch.empty(0, self.head_dim, dtype=self.dtype, device=self.device)
        self.slots = torch.empty(0, dtype=torch.long, device=self.device)

    @property
    def capacity(self) -> int:
        return 0 if self.kv is None else int(self.kv.shape[4])

    def cache(self) -> torch.Tensor:
        """The KV cache; an error before :meth:`allocate` made one."""
        if self.kv is None:
            raise RuntimeError("StaticCacheDecoder: allocate() the cache before using it")
        return self.kv

    @property
    def dump(self) -> int:
        """The slot that padding positions write to; never attended by a real query."""
        return self.capacity - 1

    def allocate(self, rows: int, capacity: int) -> bool:
        """A cache of ``rows`` x ``capacity`` slots. An existing one of that shape is reused (stale
        slots are never attended: every row is prefilled before it is read), which keeps CUDA graphs
        captured on it valid across rollouts. Returns whether a new cache was made."""
        shape = (len(self.layers), 2, rows, self.n_kv, capacity, self.head_dim)
        if self.kv is not None and tuple(self.kv.shape) == shape:
            return False
        self.kv = None  # free the old cache before the new one is made
        self.kv = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self._tables(capacity)
        return True

    def ensure_capacity(self, needed: int, limit: int) -> None:
        """Grow the slot axis (doubling, at most ``limit``) so ``needed`` slots + dump fit (CPU)."""
        if needed + 1 <= self.capacity or self.capacity >= limit:
            return
        new = min(max(needed + 1, 2 * self.capacity), limit)
        old = self.cache()
        kv = torch.zeros((*old.shape[:4], new, self.head_dim), dtype=self.dtype, device=self.device)
        kv[..., : self.capacity - 1, :] = old[..., : self.capacity - 1, :]
        self.kv = kv
        self._tables(new)

    def _tables(self, capacity: int) -> None:
        pos = torch.arange(capacity, device=self.device)
        probe = torch.zeros(1, dtype=self.dtype, device=self.device)
        cos, sin = self.model.model.rotary_emb(probe, pos[None])  # the model's own rope (scaling incl.)
        self.cos, self.sin, self.slots = cos[0], sin[0], pos

    @torch.no_grad()
    def forward(
        self, tokens: torch.Tensor, start: torch.Tensor, n_real: torch.Tensor | None, span: int, row0: int = 0
    ) -> torch.Tensor:
        """Run ``tokens`` for cache rows ``row0 .. row0+n-1``, writing their K/V, and return the
        logits of each row's last real token.

        Args:
            tokens: [n, m] long; row i's real tokens are ``tokens[i, :n_real[i]]`` (right-padded).
            start: [n] long: slot (= position) of ``tokens[i, 0]`` (the row's cached length).
            n_real: [n] long, or None when every row has m real tokens (decode: m = 1).
            span: slots to attend, ``>= max(start + n_real)`` (a static bound keeps CUDA graphs valid).
            row0: first cache row (prefill in row chunks).

        Returns:
            [n, V] logits.
        """
        n, m = tokens.shape
        kv = self.cache()
        offs = torch.arange(m, device=tokens.device)
        qpos = start[:, None] + offs  # [n, m] absolute positions
        if n_real is None:
            write, last = qpos, None
        else:
            write = torch.where(offs[None] < n_real[:, None], qpos, self.dump)
            last = n_real - 1
        qpos = qpos.clamp(max=self.capacity - 1)
        cos, sin = self.cos[qpos][:, None], self.sin[qpos][:, None]  # [n, 1, m, D]
        mask = self.slots[:span][None, None, None, :] <= qpos[:, None, :, None]  # [n, 1, m, span]
        rows = torch.arange(row0, row0 + n, device=tokens.device)[:, None].expand(n, m)
        x = self.model.model.embed_tokens(tokens)
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(n, m, -1, self.head_dim)
            k = attn.k_proj(h).view(n, m, -1, self.head_dim)
            v = attn.v_proj(h).view(n, m, -1, self.head_dim)
            if hasattr(attn, "q_norm"):  # Qwen3
                qk_norm = cast(_QKNormAttention, attn)
                q, k = qk_norm.q_norm(q), qk_norm.k_norm(k)
            q = _rope(q.transpose(1, 2), cos, sin)
            k = _rope(k.transpose(1, 2), cos, sin)
            # write first, then attend: query j of a row sees its own and earlier new tokens
            kv[i, 0][rows, :, write] = k.transpose(1, 2).to(self.dtype)
            kv[i, 1][rows, :, write] = v.to(self.dtype)
            kc, vc = kv[i, 0, row0 : row0 + n, :, :span], kv[i, 1, row0 : row0 + n, :, :span]
            o = _sdpa(q, kc, vc, mask, self.scaling, self.gqa)
            x = x + attn.o_proj(o.transpose(1, 2).reshape(n, m, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        x = x[:, -1] if last is None else x[torch.arange(n, device=x.device), last]
        return self.model.lm_head(self.model.model.norm(x))

    def move_rows(self, dst: torch.Tensor, src: torch.Tensor, span: int, swap: bool) -> None:
        """Copy cache rows ``src`` into ``dst`` (first ``span`` slots); ``swap`` keeps ``dst`` too."""
        kv = self.cache()
        moved = kv[:, :, src, :, :span]
        if swap:
            kv[:, :, src, :, :span] = kv[:, :, dst, :, :span]
        kv[:, :, dst, :, :span] = moved


class CudaGraphDecoder:
    """Decode step (m = 1) replayed from CUDA graphs, one per power-of-two batch bucket.

    Untested on the CPU CI. Needs the cache preallocated at its final capacity (graphs capture
    its address). Rows ``n..bucket-1`` are padding: their K/V goes to the dump slot only, so the
    waiting rows that live there are never touched.
    """

    def __init__(self, dec: StaticCacheDecoder) -> None:
        self.dec = dec
        rows = dec.cache().shape[2]
        self.tok = torch.zeros(rows, 1, dtype=torch.long, device=dec.device)
        self.start = torch.zeros(rows, dtype=torch.long, device=dec.device)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = torch.cuda.graph_pool_handle()

    def __call__(self, tok: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        n, rows = tok.shape[0], self.tok.shape[0]
        b = min(max(8, 1 << (n - 1).bit_length()), rows)
        self.tok[:n] = tok
        self.tok[n:b] = 0
        self.start[:n] = start
        self.start[n:b] = self.dec.dump
        if b not in self.graphs:
            self.graphs[b] = self._capture(b)
        graph, out = self.graphs[b]
        graph.replay()
        return out[:n]

    def _capture(self, b: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        span = self.dec.capacity
        run = lambda: self.dec.forward(self.tok[:b], self.start[:b], None, span)  # noqa: E731
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up rewrites the same K/V the real step writes
            run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = run()
        return graph, out
