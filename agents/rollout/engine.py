"""Our batched multi-turn rollout engine (the default; DESIGN §7).

N envs are stepped together turn by turn. For every live sequence a turn is generated in one batch;
each row stops at ``</consult>``, ``</answer>``, EOS, the per-turn token cap or the trajectory token
budget. The turn texts go to the envs, the observations are tokenized once and prefilled on top of
the kept KV cache, and generation continues: only new tokens are ever run through the model.

Design (why it is fast on a tiny model, where per-op overhead dominates):

* A minimal forward of Llama-family decoders (Qwen2, Llama, Mistral, Qwen3) that calls the HF
  model's own submodules (so the numerics are the model's) over a **static per-row KV cache**
  ``kv[layer, k|v, row, kv_head, slot, head_dim]``. Row i holds its tokens in slots
  ``0 .. length[i]-1`` with true positions (no left padding, no position gaps), so a re-score of
  the trajectory by the plain HF forward sees exactly the same positions.
* Ragged writes: every forward takes ``tokens [n, m]`` and per-row ``start`` slots; padding
  positions write to a dump slot (the cache's last one) that no real query ever attends to.
* **Compaction by swapping**: the rows being computed are always the prefix ``[0, n)`` of the
  cache, so the model runs on contiguous views. A row that finishes its turn (or episode) is swapped
  with the last still-running row: the cost is proportional to the rows that finished, not to the
  batch, and the batch the model sees shrinks as sequences finish.
* CPU: the slot axis grows by doubling as needed. CUDA (untested on the CPU CI): the cache is
  preallocated at the full budget and the decode step is captured as CUDA graphs per batch-size
  bucket (:class:`CudaGraphDecoder`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from agents.rollout.sampling import StopCriteria, model_eos_ids, sample_tokens
from agents.rollout.types import Trajectory, start_episodes, step_env

SUPPORTED_MODEL_TYPES = ("qwen2", "llama", "mistral", "qwen3")


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (HF's rotate-half convention). x [n, h, m, D], cos/sin [n, 1, m, D]."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _sdpa(q, k, v, mask, scale: float, gqa: bool) -> torch.Tensor:
    """SDPA with grouped K/V heads; torch < 2.5 has no ``enable_gqa`` and gets repeated heads."""
    if gqa and not _HAS_GQA:
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        gqa = False
    kw = {"enable_gqa": True} if gqa else {}
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, **kw)


_HAS_GQA = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)


class StaticCacheDecoder:
    """Forward of a Llama-family HF causal LM over a static per-row KV cache.

    Args:
        model: a ``*ForCausalLM`` whose ``config.model_type`` is in :data:`SUPPORTED_MODEL_TYPES`.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        cfg = model.config
        if cfg.model_type not in SUPPORTED_MODEL_TYPES:
            raise NotImplementedError(
                f"our engine implements {SUPPORTED_MODEL_TYPES}, not {cfg.model_type!r}; use engine='hf'"
            )
        self.model = model
        self.layers = list(model.model.layers)
        if any(getattr(layer.self_attn, "sliding_window", None) for layer in self.layers):
            raise NotImplementedError("sliding-window attention is not implemented; use engine='hf'")
        attn = self.layers[0].self_attn
        self.head_dim, self.n_kv, self.scaling = int(attn.head_dim), int(cfg.num_key_value_heads), float(attn.scaling)
        self.gqa = cfg.num_attention_heads != cfg.num_key_value_heads
        weight = model.model.embed_tokens.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.kv: torch.Tensor | None = None  # [layers, 2, rows, kv_heads, capacity, head_dim]
        self.cos = self.sin = self.slots = None  # [capacity, D], [capacity, D], [capacity]

    @property
    def capacity(self) -> int:
        return 0 if self.kv is None else int(self.kv.shape[4])

    @property
    def dump(self) -> int:
        """The slot that padding positions write to; never attended by a real query."""
        return self.capacity - 1

    def allocate(self, rows: int, capacity: int) -> None:
        shape = (len(self.layers), 2, rows, self.n_kv, capacity, self.head_dim)
        self.kv = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self._tables(capacity)

    def ensure_capacity(self, needed: int, limit: int) -> None:
        """Grow the slot axis (doubling, at most ``limit``) so ``needed`` slots + dump fit (CPU)."""
        if needed + 1 <= self.capacity or self.capacity >= limit:
            return
        new = min(max(needed + 1, 2 * self.capacity), limit)
        kv = torch.zeros((*self.kv.shape[:4], new, self.head_dim), dtype=self.dtype, device=self.device)
        kv[..., : self.capacity - 1, :] = self.kv[..., : self.capacity - 1, :]
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
                q, k = attn.q_norm(q), attn.k_norm(k)
            q = _rope(q.transpose(1, 2), cos, sin)
            k = _rope(k.transpose(1, 2), cos, sin)
            # write first, then attend: query j of a row sees its own and earlier new tokens
            self.kv[i, 0][rows, :, write] = k.transpose(1, 2).to(self.dtype)
            self.kv[i, 1][rows, :, write] = v.to(self.dtype)
            kc, vc = self.kv[i, 0, row0 : row0 + n, :, :span], self.kv[i, 1, row0 : row0 + n, :, :span]
            o = _sdpa(q, kc, vc, mask, self.scaling, self.gqa)
            x = x + attn.o_proj(o.transpose(1, 2).reshape(n, m, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        x = x[:, -1] if last is None else x[torch.arange(n, device=x.device), last]
        return self.model.lm_head(self.model.model.norm(x))

    def move_rows(self, dst: torch.Tensor, src: torch.Tensor, span: int, swap: bool) -> None:
        """Copy cache rows ``src`` into ``dst`` (first ``span`` slots); ``swap`` keeps ``dst`` too."""
        moved = self.kv[:, :, src, :, :span]
        if swap:
            self.kv[:, :, src, :, :span] = self.kv[:, :, dst, :, :span]
        self.kv[:, :, dst, :, :span] = moved


class CudaGraphDecoder:
    """Decode step (m = 1) replayed from CUDA graphs, one per power-of-two batch bucket.

    Untested on the CPU CI. Needs the cache preallocated at its final capacity (graphs capture
    its address). Rows ``n..bucket-1`` are padding: their K/V goes to the dump slot only, so the
    waiting rows that live there are never touched.
    """

    def __init__(self, dec: StaticCacheDecoder) -> None:
        self.dec = dec
        rows = dec.kv.shape[2]
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


class RolloutEngine:
    """Batched multi-turn rollouts with a kept KV cache.

    Args:
        model: a Llama-family HF causal LM (eval mode is set).
        tokenizer: its tokenizer; stop tags should be single (added) tokens for the fast path.
        max_turn_tokens: per-turn cap on policy tokens.
        max_total_tokens: per-trajectory budget (prompt + response); reaching it truncates the
            episode (``truncated = overlong = True``).
        temperature: ``<= 0`` means greedy. top_p: nucleus mass (1.0 = off).
        device: defaults to the model's device.
        encode_prompt / encode_observation: ``str -> list[int]``; default ``tokenizer.encode``
            (prompt with special tokens, observations without). Pass the policy's own helpers
            (e.g. a chat template) so SFT and rollouts agree.
        prefill_chunk_tokens: cap on rows x padded length of one prefill call (memory bound).
        cuda_graphs: capture the decode step on CUDA (ignored elsewhere).
        seed: seeds the sampling generator (``rollout(seed=...)`` re-seeds per call).

    Example:
        >>> engine = RolloutEngine(model, tok, max_turn_tokens=64)              # doctest: +SKIP
        >>> trajs = engine.rollout([env_a, env_b], seeds=[0, 1], group_ids=[0, 0])  # doctest: +SKIP
    """

    def __init__(
        self, model: torch.nn.Module, tokenizer: Any, max_turn_tokens: int = 256, max_total_tokens: int = 2048,
        temperature: float = 1.0, top_p: float = 1.0, device: torch.device | str | None = None,
        encode_prompt: Callable[[str], list[int]] | None = None,
        encode_observation: Callable[[str], list[int]] | None = None,
        prefill_chunk_tokens: int = 32768, cuda_graphs: bool = True, seed: int | None = None,
    ) -> None:
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device)  # no .eval(): this forward has no dropout to switch off
        self.tokenizer = tokenizer
        self.max_turn_tokens, self.max_total_tokens = int(max_turn_tokens), int(max_total_tokens)
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.encode_prompt = encode_prompt or (lambda s: tokenizer.encode(s, add_special_tokens=True))
        self.encode_observation = encode_observation or (lambda s: tokenizer.encode(s, add_special_tokens=False))
        self.prefill_chunk_tokens = int(prefill_chunk_tokens)
        self.use_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        self.stop = StopCriteria(tokenizer, eos_ids=model_eos_ids(model))
        self.dec = StaticCacheDecoder(self.model)
        self.generator = torch.Generator(device=self.device)
        if seed is not None:
            self.generator.manual_seed(seed)

    # ------------------------------------------------------------------ public
    @torch.no_grad()
    def rollout(
        self,
        envs: Sequence[Any],
        seeds: Sequence[int | None] | int | None = None,
        options: Sequence[dict | None] | dict | None = None,
        group_ids: Sequence[int] | None = None,
        seed: int | None = None,
    ) -> list[Trajectory]:
        """Run one episode per env to its end (trajectories in env order). ``seeds``/``options``
        go to ``env.reset`` (see :func:`start_episodes`); ``seed`` re-seeds the sampler."""
        if seed is not None:
            self.generator.manual_seed(seed)
        trajs = start_episodes(envs, self.encode_prompt, seeds, options, group_ids)
        N, budget = len(trajs), self.max_total_tokens
        live = [i for i, t in enumerate(trajs) if len(t.prompt_ids) < budget]
        for t in trajs:
            t.truncated = t.overlong = len(t.prompt_ids) >= budget
        if not live:
            return trajs
        dev = self.device
        # slot state; the rows being computed are always the prefix [0, n) of the slot axis
        n_alive = len(live)
        slot_traj = torch.tensor(live, dtype=torch.long, device=dev)  # slot -> trajectory index
        length = torch.zeros(n_alive, dtype=torch.long, device=dev)  # cached tokens per slot
        cur = torch.zeros(n_alive, dtype=torch.long, device=dev)  # last sampled token (not cached)
        self._state = [slot_traj, length, cur]
        pending: dict[int, list[int]] = {i: trajs[i].prompt_ids for i in live}  # traj -> to prefill
        limit = budget + 1  # + the dump slot
        cap = limit if self.use_graphs else min(limit, max(len(p) for p in pending.values()) + self.max_turn_tokens + 1)
        self.dec.allocate(n_alive, cap)
        graph = CudaGraphDecoder(self.dec) if self.use_graphs else None
        tok_buf = torch.zeros(N, self.max_turn_tokens, dtype=torch.long, device=dev)  # this turn's
        lp_buf = torch.zeros(N, self.max_turn_tokens, dtype=torch.float32, device=dev)  # tokens, by traj
        while n_alive:
            # 1) prefill what each live row has not cached yet (prompt, or stop token + observation)
            order, starts = slot_traj[:n_alive].tolist(), length[:n_alive].tolist()
            span0 = max(s + len(pending[t]) for s, t in zip(starts, order))
            self.dec.ensure_capacity(span0 + self.max_turn_tokens, limit)
            logits = self._prefill([pending[t] for t in order], starts)
            length[:n_alive] += torch.tensor([len(pending[t]) for t in order], device=dev)
            # 2) decode the turn; rows leave the computed prefix as they stop
            n, step = n_alive, 0
            turn_len = torch.zeros(N, dtype=torch.long, device=dev)
            while n:
                tok, lp = sample_tokens(logits, self.temperature, self.top_p, self.generator)
                rows = slot_traj[:n]
                tok_buf[rows, step], lp_buf[rows, step], cur[:n] = tok, lp, tok
                done = self.stop.token_stop(tok) | (length[:n] + 1 >= budget)
                if step + 1 >= self.max_turn_tokens:
                    done[:] = True
                elif self.stop.needs_text_check:
                    done |= self._text_stops(tok_buf, rows, step, done)
                if bool(done.any()):
                    turn_len[rows[done]] = step + 1
                    n = self._compact(n, done, swap=True, span=span0 + step)
                if not n:
                    break
                if graph is not None:
                    logits = graph(cur[:n, None], length[:n])
                else:
                    logits = self.dec.forward(cur[:n, None], length[:n], None, span0 + step + 1)
                length[:n] += 1
                step += 1
            # 3) step the envs with the decoded turns; tokenize each observation once
            ended = self._step_envs(envs, trajs, order, tok_buf, lp_buf, turn_len, pending)
            if ended:
                drop = torch.tensor([t in ended for t in slot_traj[:n_alive].tolist()], device=dev)
                n_alive = self._compact(n_alive, drop, swap=False, span=self.dec.capacity)
        self._state = []
        return trajs

    # ------------------------------------------------------------------ internals
    def _prefill(self, seqs: list[list[int]], starts: list[int]) -> torch.Tensor:
        """Prefill ragged ``seqs`` for slots ``0..len(seqs)-1`` in row chunks; [n, V] last logits."""
        out, i, dev = [], 0, self.device
        while i < len(seqs):
            m, j = 0, i
            while j < len(seqs) and (j == i or max(m, len(seqs[j])) * (j - i + 1) <= self.prefill_chunk_tokens):
                m = max(m, len(seqs[j]))
                j += 1
            tokens = torch.zeros(j - i, m, dtype=torch.long)
            for r, s in enumerate(seqs[i:j]):
                tokens[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            n_real = torch.tensor([len(s) for s in seqs[i:j]], device=dev)
            start = torch.tensor(starts[i:j], device=dev)
            span = max(a + len(s) for a, s in zip(starts[i:j], seqs[i:j]))
            out.append(self.dec.forward(tokens.to(dev), start, n_real, span, row0=i))
            i = j
        return torch.cat(out)

    def _compact(self, n: int, drop: torch.Tensor, swap: bool, span: int) -> int:
        """Move the rows of ``[0, n)`` flagged by ``drop`` [n] behind the kept ones; returns the
        new n. Only rows that must move are touched (holes in front <- kept rows from the back)."""
        keep_idx, drop_idx = (~drop).nonzero().squeeze(-1), drop.nonzero().squeeze(-1)
        n2 = int(keep_idx.numel())
        holes, donors = drop_idx[drop_idx < n2], keep_idx[keep_idx >= n2]
        if holes.numel():
            self.dec.move_rows(holes, donors, min(span + 1, self.dec.capacity), swap=swap)
            for s in self._state:
                s[holes], s[donors] = s[donors].clone(), s[holes].clone()
        return n2

    def _text_stops(self, tok_buf: torch.Tensor, rows: torch.Tensor, step: int, done: torch.Tensor) -> torch.Tensor:
        """Fallback for stop strings that are not single tokens: decode each running row's tail."""
        tails = tok_buf[rows, : step + 1].tolist()
        hits = [(not d) and self.stop.text_stop(ids) for d, ids in zip(done.tolist(), tails)]
        return torch.tensor(hits, dtype=torch.bool, device=done.device)

    def _step_envs(self, envs, trajs, order, tok_buf, lp_buf, turn_len, pending) -> set[int]:
        """Record each live row's turn, step its env, queue its observation; returns ended trajs."""
        ended: set[int] = set()
        lens, all_ids, all_lps = turn_len.tolist(), tok_buf.tolist(), lp_buf.tolist()  # one copy each
        budget = self.max_total_tokens
        for t in order:
            ids = all_ids[t][: lens[t]]
            traj = trajs[t]
            traj.add_policy(ids, all_lps[t][: lens[t]])
            traj.num_turns += 1
            total = len(traj.prompt_ids) + len(traj.token_ids)
            natural = ids[-1] in self.stop.all_ids or (self.stop.needs_text_check and self.stop.text_stop(ids))
            if total >= budget and not natural:  # cut by the token budget mid-turn
                traj.truncated = traj.overlong = True
                ended.add(t)
                continue
            text = self.stop.turn_text(ids)
            obs_ids = step_env(traj, envs[t], text, self.encode_observation, budget)
            if obs_ids is None:
                ended.add(t)
                continue
            pending[t] = [ids[-1], *obs_ids]  # the stop token was sampled but never run
        return ended

