"""Our batched multi-turn rollout engine (the default; DESIGN §7).

All episodes of a rollout live in one vector env. The engine decodes every row that has a turn to
generate, one token per step, and each row stops at ``</consult>``, ``</answer>``, EOS, the per-turn
token cap or the trajectory token budget. The rows that stopped at a step are handed to the env
together (one ``submit``: one batched expert call). Rows whose step needed no expert re-join at once;
rows waiting on experts are **parked** (their KV cache stays where it is) while the engine keeps
decoding the others, and re-join when their call returned. The engine blocks only when no row can
decode. A re-joining row prefills only its new tokens (the stop token it sampled, then the
observation) on top of its kept cache.

Row layout (why it is cheap): the KV cache's row axis has three zones, ``[0, n)`` decoding,
``[n, alive)`` parked, ``[alive, rows)`` ended. The model always runs on the contiguous prefix
``[0, n)``. Rows change zone by **swapping** with a row at the zone's edge, so the cost is
proportional to the rows that moved, not to the batch (:class:`_Slots`).

Sampling draws come from :func:`~agents.rollout.sampling.counter_uniforms` keyed by (rollout key,
episode, position): which rows share a step depends on expert timing, the draws do not.

The model side (static per-row KV cache, CUDA graphs) is in :mod:`agents.rollout.decoder`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agents.rollout.decoder import CudaGraphDecoder, StaticCacheDecoder
from agents.rollout.driver import EpisodeDriver
from agents.rollout.sampling import StopCriteria, counter_uniforms, model_eos_ids, sample_tokens
from agents.rollout.types import Trajectory


@dataclass
class RolloutStats:
    """What the last rollout did (benchmarks read it)."""

    decode_steps: int = 0  # forward calls of one token per decoding row
    prefills: int = 0  # re-join groups prefilled (the first prompt prefill included)
    submits: int = 0  # vector-env submits (each at most one batched expert call)
    env_seconds: float = 0.0  # wall time inside the vector env's calls on this thread
    env_cpu_seconds: float = 0.0  # CPU time of this thread inside those calls
    blocked_seconds: float = 0.0  # wall time with no row able to decode (all parked on experts)
    overlapped_steps: int = 0  # decode steps run while some rows were parked on an expert call


class _Slots:
    """Which episode lives in which KV-cache row, and the per-row decode state.

    Zones of the row axis: ``[0, n)`` decoding, ``[n, alive)`` parked, ``[alive, rows)`` ended.
    ``episode`` / ``row_of`` are Python mirrors of ``episode_t`` (the rows move only at turn ends,
    when the host reads the finished rows anyway).
    """

    def __init__(self, dec: StaticCacheDecoder, episodes: list[int], device: torch.device) -> None:
        rows = len(episodes)
        self.dec = dec
        self.episode = list(episodes)
        self.row_of = {e: r for r, e in enumerate(episodes)}
        self.episode_t = torch.tensor(episodes, dtype=torch.long, device=device)
        self.length = torch.zeros(rows, dtype=torch.long, device=device)  # cached tokens per row
        self.cur = torch.zeros(rows, dtype=torch.long, device=device)  # last sampled token (not cached)
        self.turn_pos = torch.zeros(rows, dtype=torch.long, device=device)  # tokens sampled this turn
        self.n, self.alive = 0, rows
        self.max_len = 0  # upper bound of every alive row's cached length

    def swap(self, a: list[int], b: list[int]) -> None:
        """Swap rows ``a[i] <-> b[i]`` (cache and state)."""
        if not a:
            return
        ta = torch.tensor(a, device=self.length.device)
        tb = torch.tensor(b, device=self.length.device)
        self.dec.move_rows(ta, tb, min(self.max_len + 2, self.dec.capacity), swap=True)
        for s in (self.episode_t, self.length, self.cur, self.turn_pos):
            s[ta], s[tb] = s[tb].clone(), s[ta].clone()
        for x, y in zip(a, b):
            ex, ey = self.episode[x], self.episode[y]
            self.episode[x], self.episode[y] = ey, ex
            self.row_of[ex], self.row_of[ey] = y, x

    def to_back(self, rows: list[int], lo: int, hi: int) -> int:
        """Move ``rows`` (inside ``[lo, hi)``) to the end of that zone; returns the new end ``hi - k``."""
        new_hi, moving = hi - len(rows), set(rows)
        self.swap([r for r in rows if r < new_hi], [r for r in range(new_hi, hi) if r not in moving])
        return new_hi

    def to_front(self, rows: list[int], lo: int, hi: int) -> int:
        """Move ``rows`` (inside ``[lo, hi)``) to the start of that zone; returns ``lo + k``."""
        new_lo, moving = lo + len(rows), set(rows)
        self.swap([r for r in rows if r >= new_lo], [r for r in range(lo, new_lo) if r not in moving])
        return new_lo


class RolloutEngine:
    """Batched multi-turn rollouts over a vector env, with a kept KV cache and parked rows.

    Args:
        model: a Llama-family HF causal LM (Qwen2, Llama, Mistral, Qwen3).
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
        seed: seeds the key of the sampling draws (``rollout(seed=...)`` sets it per call).

    Example:
        >>> vec = gym.make_vec("EAPO-Math-v0", num_envs=2)                       # doctest: +SKIP
        >>> engine = RolloutEngine(model, tok, max_turn_tokens=64)              # doctest: +SKIP
        >>> trajs = engine.rollout(vec, seeds=[0, 1], group_ids=[0, 0])         # doctest: +SKIP
    """

    #: ``rollout(draw_ids=...)`` keys each episode's sampling draws by its id in the step, so a shard
    #: of the step (a Ray worker, a torchrun rank) samples what the whole-step rollout would.
    draws_keyed_by_id = True

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
        prefill_chunk_tokens: int = 32768,
        cuda_graphs: bool = True,
        seed: int | None = None,
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
        self.graph: CudaGraphDecoder | None = None
        self.generator = torch.Generator()  # draws one sampling key per rollout without a seed
        if seed is not None:
            self.generator.manual_seed(seed)
        self.stats = RolloutStats()

    # ------------------------------------------------------------------ public
    @torch.no_grad()
    def rollout(
        self,
        vec_env: Any,
        seeds: Sequence[int | None] | int | None = None,
        options: Sequence[dict | None] | dict | None = None,
        group_ids: Sequence[int] | None = None,
        seed: int | None = None,
        draw_ids: Sequence[int] | None = None,
    ) -> list[Trajectory]:
        """Run one episode per env of ``vec_env`` to its end (trajectories in env order).

        ``vec_env``: a vector env with ``reset_envs`` / ``submit`` / ``collect`` (or a list of single
        envs, each stepped on its own). ``seeds`` / ``options`` / ``group_ids``: per env, see
        :meth:`EpisodeDriver.start`. ``seed`` keys this rollout's sampling draws. ``draw_ids``: per
        env, the episode id its draws are keyed by (default: the env's index). A rollout worker that
        runs a shard of a step passes the episodes' indices in the whole step, so it samples the
        tokens the unsharded rollout would (:mod:`agents.rollout.ray_workers`).
        """
        key = seed if seed is not None else int(torch.randint(2**62, (1,), generator=self.generator))
        driver = EpisodeDriver(vec_env, self.encode_prompt, self.encode_observation, self.stop, self.max_total_tokens)
        trajs = driver.start(seeds, options, group_ids)
        live = driver.live()
        self.stats = RolloutStats()
        if live:
            try:
                _Run(self, driver, live, key, draw_ids).loop()
            except Exception:
                driver.drain()  # leave no step in flight: the vector env stays usable
                raise
        self.stats.submits, self.stats.env_seconds = driver.submits, driver.env_seconds
        self.stats.env_cpu_seconds = driver.env_cpu_seconds
        return trajs


class _Run:
    """One rollout's decode loop (see the module docs)."""

    def __init__(
        self, engine: RolloutEngine, driver: EpisodeDriver, live: list[int], key: int, draw_ids: Sequence[int] | None
    ) -> None:
        self.e, self.driver, self.key = engine, driver, key
        self.budget, self.cap = engine.max_total_tokens, engine.max_turn_tokens
        self.limit = self.budget + 1  # + the dump slot
        dev, dec = engine.device, engine.dec
        longest = max(len(driver.trajs[i].prompt_ids) for i in live)
        capacity = self.limit if engine.use_graphs else min(self.limit, longest + self.cap + 1)
        if dec.allocate(len(live), capacity) or engine.graph is None:
            engine.graph = CudaGraphDecoder(dec) if engine.use_graphs else None
        self.slots = _Slots(dec, live, dev)
        self.cached = {i: 0 for i in live}  # episode -> tokens in its cache row
        n_eps = len(driver.trajs)
        if draw_ids is not None and len(draw_ids) != n_eps:
            raise ValueError(f"draw_ids must have one entry per env ({n_eps}), got {len(draw_ids)}")
        ids = range(n_eps) if draw_ids is None else draw_ids
        self.draw_id = torch.tensor(list(ids), dtype=torch.long, device=dev)  # episode -> key of its draws
        self.tok_buf = torch.zeros(n_eps, self.cap, dtype=torch.long, device=dev)  # this turn's tokens,
        self.lp_buf = torch.zeros(n_eps, self.cap, dtype=torch.float32, device=dev)  # by episode

    def loop(self) -> None:
        queue: list[int] = list(self.slots.episode)  # episodes whose new tokens must be prefilled
        logits: torch.Tensor | None = None  # [n, V] next-token logits of the decoding rows
        stats = self.e.stats
        while True:
            rejoin, ended = self.driver.poll() if self.driver.waiting else ([], [])
            self._end(ended)
            queue += rejoin
            if queue:
                logits = self._join(queue, logits)
                queue = []
            if self.slots.n == 0:
                if not self.driver.waiting:
                    return
                t0 = time.perf_counter()
                rejoin, ended = self.driver.wait()
                stats.blocked_seconds += time.perf_counter() - t0
                self._end(ended)
                queue += rejoin
                continue
            assert logits is not None
            stats.overlapped_steps += self.driver.waiting
            logits, rejoin = self._step(logits)
            queue += rejoin

    def _join(self, episodes: list[int], logits: torch.Tensor | None) -> torch.Tensor:
        """Bring parked ``episodes`` into the decoding zone and prefill their new tokens."""
        s, trajs = self.slots, self.driver.trajs
        s.to_front([s.row_of[i] for i in episodes], s.n, s.alive)
        episodes = s.episode[s.n : s.n + len(episodes)]  # row order after the move
        starts = [self.cached[i] for i in episodes]
        seqs = []
        for i, start in zip(episodes, starts):
            t = trajs[i]
            p = len(t.prompt_ids)
            seqs.append((t.prompt_ids + t.token_ids)[start:] if start < p else t.token_ids[start - p :])
        ends = [a + len(q) for a, q in zip(starts, seqs)]
        s.max_len = max(s.max_len, *ends)
        self.e.dec.ensure_capacity(s.max_len + 1, self.limit)
        new = self._prefill(seqs, starts, s.n)
        k = len(episodes)
        s.length[s.n : s.n + k] = torch.tensor(ends, device=s.length.device)
        s.turn_pos[s.n : s.n + k] = 0
        s.n += k
        self.e.stats.prefills += 1
        return new if logits is None else torch.cat([logits, new])

    def _step(self, logits: torch.Tensor) -> tuple[torch.Tensor | None, list[int]]:
        """Sample one token per decoding row; hand the rows that stopped to the env; forward the rest."""
        s, e, n = self.slots, self.e, self.slots.n
        rows = s.episode_t[:n]
        u = counter_uniforms(self.key, self.draw_id[rows], s.length[:n]) if e.temperature > 0 else None
        tok, lp = sample_tokens(logits, e.temperature, e.top_p, uniforms=u)
        pos = s.turn_pos[:n]
        self.tok_buf[rows, pos], self.lp_buf[rows, pos], s.cur[:n] = tok, lp, tok
        pos += 1
        done = e.stop.token_stop(tok) | (s.length[:n] + 1 >= self.budget) | (pos >= self.cap)
        if e.stop.needs_text_check:
            done |= self._text_stops(rows, pos, done)
        finished = done.nonzero().squeeze(-1).tolist()  # the step's one host sync
        rejoin: list[int] = []
        if finished:
            rejoin = self._finish(finished)
        n = s.n
        if n == 0:
            return None, rejoin
        e.dec.ensure_capacity(s.max_len + 1, self.limit)
        if e.graph is not None:
            logits = e.graph(s.cur[:n, None], s.length[:n])
        else:
            logits = e.dec.forward(s.cur[:n, None], s.length[:n], None, s.max_len + 1)
        s.length[:n] += 1
        s.max_len += 1
        e.stats.decode_steps += 1
        return logits, rejoin

    def _finish(self, rows: list[int]) -> list[int]:
        """Park the rows that ended their turn, book and submit the turns; returns episodes to re-join."""
        s = self.slots
        episodes = [s.episode[r] for r in rows]
        idx = torch.tensor(rows, device=s.length.device)
        lens, cached = s.turn_pos[idx].tolist(), s.length[idx].tolist()
        width = max(lens)
        ep_t = s.episode_t[idx]
        ids, lps = self.tok_buf[ep_t, :width].tolist(), self.lp_buf[ep_t, :width].tolist()
        s.n = s.to_back(rows, 0, s.n)
        for i, c in zip(episodes, cached):
            self.cached[i] = c  # the stop token was sampled but never run: it is prefilled on re-join
        turns = [(i, ids[k][: lens[k]], lps[k][: lens[k]]) for k, i in enumerate(episodes)]
        rejoin, ended = self.driver.finish_turns(turns)
        self._end(ended)
        return rejoin

    def _end(self, episodes: list[int]) -> None:
        """Ended episodes (all parked) leave the alive zone."""
        if episodes:
            s = self.slots
            s.alive = s.to_back([s.row_of[i] for i in episodes], s.n, s.alive)

    def _prefill(self, seqs: list[list[int]], starts: list[int], row0: int) -> torch.Tensor:
        """Prefill ragged ``seqs`` into rows ``row0..`` in row chunks; [k, V] logits of each last token."""
        out, i, dev = [], 0, self.e.device
        while i < len(seqs):
            m, j = 0, i
            while j < len(seqs) and (j == i or max(m, len(seqs[j])) * (j - i + 1) <= self.e.prefill_chunk_tokens):
                m = max(m, len(seqs[j]))
                j += 1
            tokens = torch.zeros(j - i, m, dtype=torch.long)
            for r, q in enumerate(seqs[i:j]):
                tokens[r, : len(q)] = torch.tensor(q, dtype=torch.long)
            n_real = torch.tensor([len(q) for q in seqs[i:j]], device=dev)
            start = torch.tensor(starts[i:j], device=dev)
            span = max(a + len(q) for a, q in zip(starts[i:j], seqs[i:j]))
            out.append(self.e.dec.forward(tokens.to(dev), start, n_real, span, row0=row0 + i))
            i = j
        return torch.cat(out)

    def _text_stops(self, rows: torch.Tensor, pos: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Fallback for stop strings that are not single tokens: decode each running row's turn tail."""
        lens, flags = pos.tolist(), done.tolist()
        tails = self.tok_buf[rows, : max(lens)].tolist()
        hits = [(not d) and self.e.stop.text_stop(t[:k]) for d, t, k in zip(flags, tails, lens)]
        return torch.tensor(hits, dtype=torch.bool, device=done.device)
