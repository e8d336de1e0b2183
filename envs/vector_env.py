"""``EAPOVectorEnv``: N EAPO math envs stepped in-process, all consults of a step in ONE expert call.

``gym.make_vec("EAPO-Math-v0", num_envs=N, **kwargs)`` returns it (the registered
``vector_entry_point``); it behaves as N independent ``gym.make("EAPO-Math-v0", **kwargs)`` envs
seeded ``seed + i`` — same observations, rewards, flags, ``info`` (verified reward, verdict,
annealed knobs, consult penalty) — but keeps its state as arrays and resolves every turn through
the same functions as the single env (:mod:`envs.turns`), so there is no per-env Python env object.
What it does per step rather than per env: one pass over the stepped envs, one expert call, one
check of the whole reply batch, the step's answers verified together
(:func:`eapo_env.verify.verify_many`), ``info`` built column by column (:mod:`envs.vector_info`).

API decisions (DESIGN §7):

* Spaces: ``single_observation_space`` / ``single_action_space`` are the single env's ``TextSpace``;
  the batched spaces are ``gymnasium.spaces.Tuple`` of N of them (what Gymnasium's ``batch_space``
  makes for a custom space, so ``SyncVectorEnv`` over the single env has the same spaces).
* Observations are a ``tuple`` of N ``str``; actions any sequence of N ``str``.
* Subset stepping: an action ``None`` means *that env does not step* (its observation is returned
  unchanged, reward 0, both flags False, every ``info`` mask False; a pending autoreset stays
  pending). :meth:`step_subset` steps the listed envs only and returns compact arrays.
* ``info`` is a dict of numpy arrays with ``_key`` masks, exactly as Gymnasium's vector envs build
  it (numbers: int64/float64/bool arrays; anything else: object arrays).
* Autoreset: ``autoreset_mode=`` ``NEXT_STEP`` (default), ``SAME_STEP`` (``final_obs`` /
  ``final_info`` in ``info``) or ``DISABLED`` (then ``reset(options={"reset_mask": mask})``).
* ``reset(seed=s)`` seeds env i with ``s + i``; ``seed=[...]`` one per env. ``options`` apply to
  every env as in Gymnasium; additionally ``problem_id`` / ``problem_index`` / ``problem`` may be a
  sequence of N values (one per env, e.g. GRPO groups).
* ``transcripts[i]`` is env i's transcript (``env.unwrapped.transcript`` of a single env).
* ``set_progress(step)`` reaches every sub-env's schedules (acceptance, turn budget, penalty).

Example:
    >>> import gymnasium as gym, eapo_env
    >>> vec = gym.make_vec("EAPO-Math-v0", num_envs=4, problems="generated:arithmetic")
    >>> obs, info = vec.reset(seed=0)
    >>> len(obs), info["turn"].tolist()
    (4, [0, 0, 0, 0])
    >>> actions = ["<consult><query>hint?</query></consult>"] * 4
    >>> obs, reward, terminated, truncated, info = vec.step(actions)
    >>> info["accepted"].tolist(), all("<experts>" in o for o in obs)
    ([1, 1, 1, 1], True)
"""

from __future__ import annotations

import gc
import itertools
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from eapo_env import prompts
from eapo_env.experts import Expert, ExpertRequest, consult_blocking, make_expert
from eapo_env.problems import Problem, ProblemSource, load_problems
from eapo_env.protocol import REASON, ParsedAction, parse_action
from eapo_env.spaces import TextSpace
from eapo_env.verify import math_gold, verify_many, verify_problem
from envs import turns
from envs.vector_info import InfoBuilder, StepColumns

Verifier = Callable[[str, Problem], Any]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector for one batched call.

    A step of N envs allocates ~10 small, acyclic objects per env (tuples, strings, replies); with
    thousands of envs the collector would otherwise run ~100 times per step and each older-generation
    pass walks every live transcript — measured at 40-50 % of a 4096-env step. Nothing allocated here
    forms a cycle, and the collector resumes (with its counts intact) as soon as the call returns.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_NO_PENALTY = (None, 0, 0.0, "0", "const:0", "const:0.0")
_score, _status = operator.attrgetter("score"), operator.attrgetter("status")  # of a Verdict
_problem_id = operator.attrgetter("id")


class EAPOVectorEnv(VectorEnv):
    """N EAPO math envs with array state and one batched expert call per step (see module docs).

    Args:
        num_envs: N.
        autoreset_mode: a :class:`gymnasium.vector.AutoresetMode` (or its value string).
        verifier: ``(prediction, problem) -> Verdict``; default the math verifier that
            ``RewardVerification`` uses.
        acceptance_schedule, turn_schedule, consult_penalty, eval_max_turns: as the wrappers
            ``AcceptanceAnnealing``, ``TurnBudget``, ``ConsultPenalty``, ``EvalMode``.
        Everything else: as :class:`envs.math_env.EAPOMathEnv`.
    """

    def __init__(
        self,
        num_envs: int,
        problems: str | Sequence[Problem] | ProblemSource = "generated",
        expert: str | Expert = "reference",
        *,
        expert_kwargs: dict[str, Any] | None = None,
        max_experts: int = 3,
        max_turns: int = 8,
        acceptance_prob: float = 1.0,
        eval_mode: bool = False,
        max_action_chars: int = 16_384,
        max_reply_chars: int = 8_192,
        max_question_chars: int = 16_384,
        expert_timeout_s: float = 120.0,
        render_mode: str | None = None,
        verifier: Verifier | None = None,
        acceptance_schedule: Any = None,
        turn_schedule: Any = None,
        consult_penalty: Any = 0.0,
        eval_max_turns: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    ) -> None:
        from eapo_env.schedules import as_schedule  # the coercion the wrappers use: identical semantics

        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        turns.check_env_args(max_experts, max_turns, render_mode)
        if not 0.0 <= float(acceptance_prob) <= 1.0:
            raise ValueError(f"acceptance_prob must lie in [0, 1], got {acceptance_prob}")
        self.num_envs = num_envs
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {"render_modes": ["ansi"], "render_fps": 4, "autoreset_mode": self.autoreset_mode}
        self.render_mode = render_mode
        self.source: ProblemSource = load_problems(problems)
        self.expert: Expert = make_expert(expert, **(expert_kwargs or {}))
        self.max_experts = max_experts
        self.eval_mode = bool(eval_mode)
        self.max_reply_chars = max_reply_chars
        self.max_question_chars = max_question_chars
        self.expert_timeout_s = expert_timeout_s
        self.verifier: Verifier = verify_problem if verifier is None else verifier
        self.acceptance_schedule = None if acceptance_schedule is None else as_schedule(acceptance_schedule)
        self.turn_schedule = None if turn_schedule is None else as_schedule(turn_schedule)
        self.consult_penalty = None if consult_penalty in _NO_PENALTY else as_schedule(consult_penalty)
        self.eval_max_turns = eval_max_turns

        self.single_action_space = TextSpace(max_action_chars)
        prompt_room = max_question_chars + len(prompts.TRAIN_PROMPT) + 64
        experts_room = max_experts * (max_reply_chars * 2 + 64) + 64
        self.single_observation_space = TextSpace(max(prompt_room, experts_room, 1024))
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

        n = num_envs
        self.progress_step = 0
        self._external_step: int | None = None  # schedules' clock once set_progress was called
        self._penalty_step = 0
        self._rngs: list[np.random.Generator | None] = [None] * n
        # Each env's rng.bit_generator.random_raw, bound once: a reset draws its problem without
        # touching the Generator object (thousands of resets per step).
        self._raw_draws: list[Callable[[], int] | None] = [None] * n
        self._rng_seeds: list[int | None] = [None] * n
        self.problems: list[Problem | None] = [None] * n
        self._golds: list[str | None] = [None] * n  # math_gold of each env's problem, set at reset
        self._pids = np.full(n, None, dtype=object)
        # Per env, the transcript flattened: [source, text, source, text, ...]. Appending two str
        # allocates no (source, text) tuple per event, which at thousands of envs per step is what
        # keeps the cycle collector busy; :attr:`transcripts` pairs them up on demand.
        self._segments: list[list[str]] = [[] for _ in range(n)]
        self._obs: list[str] = [""] * n
        self.acceptance_probs = np.full(n, float(acceptance_prob))
        self.max_turns = np.full(n, eval_max_turns if eval_max_turns is not None else max_turns, dtype=np.int64)
        self.turns = np.zeros(n, dtype=np.int64)
        self.consults = np.zeros(n, dtype=np.int64)
        self.episodes = np.full(n, -1, dtype=np.int64)  # index of the current episode, per env
        self.done = np.ones(n, dtype=bool)
        self.started = np.zeros(n, dtype=bool)
        self.expert_latency_s = np.zeros(n)
        self.expert_calls = 0  # batched calls made (one per step that consulted)
        self._autoreset = np.zeros(n, dtype=bool)  # NEXT_STEP: reset instead of stepping next time
        self._all = np.arange(n)

    # ------------------------------------------------------------------ knobs and progress
    @property
    def in_episode(self) -> np.ndarray:
        """Per env: True between a reset and the end of that episode."""
        return self.started & ~self.done

    @property
    def transcripts(self) -> list[list[tuple[str, str]]]:
        """Per env, ``[(source, text), ...]``: what ``env.unwrapped.transcript`` is for a single env."""
        return [list(zip(seg[::2], seg[1::2])) for seg in self._segments]

    def set_progress(self, step: int) -> None:
        """The trainer's global step, for every sub-env: knobs of envs between episodes change now."""
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        step = int(step)
        self.progress_step = step
        self._penalty_step = step
        self._external_step = step
        idle = np.flatnonzero(~self.in_episode)
        if idle.size:
            self._write_knobs(idle.tolist(), count=False)

    def _write_knobs(self, envs: list[int], *, count: bool) -> None:
        """What the annealing wrappers do on reset (count=True) and on set_progress (count=False)."""
        acc, trn, ext = self.acceptance_schedule, self.turn_schedule, self._external_step
        if acc is not None or trn is not None:
            cache: dict[int, tuple[float, int]] = {}
            for e in envs:
                clock = int(self.episodes[e]) + 1 if ext is None else ext
                if clock not in cache:
                    p = min(1.0, max(0.0, float(acc(clock)))) if acc is not None else -1.0
                    t = max(1, int(round(float(trn(clock))))) if trn is not None else -1
                    cache[clock] = (p, t)
                p, t = cache[clock]
                if acc is not None:
                    self.acceptance_probs[e] = p
                if trn is not None:
                    self.max_turns[e] = t
        if count and self.eval_max_turns is not None:
            self.max_turns[envs] = self.eval_max_turns  # EvalMode is outermost: it wins at reset

    # ------------------------------------------------------------------ reset
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, int | np.integer):
            super().reset(seed=int(seed))
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"seed list has length {len(seeds)}, expected num_envs={n}")
        options = dict(options) if options else {}
        mask = options.pop("reset_mask", None)
        if mask is not None:
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,):
                raise TypeError(f"options['reset_mask'] must be a bool numpy array of shape ({n},)")
            if not mask.any():
                raise ValueError("options['reset_mask'] must select at least one env")
            envs = np.flatnonzero(mask).tolist()
        else:
            envs = list(range(n))
        self._autoreset[envs] = False
        builder = InfoBuilder(n)
        with _gc_paused():
            self._reset_envs(envs, [seeds[e] for e in envs], options, builder)
        return tuple(self._obs), builder.infos

    def _reset_envs(
        self, envs: list[int], seeds: Sequence[int | None], options: dict[str, Any], builder: InfoBuilder
    ) -> None:
        self._write_knobs(envs, count=True)
        idx = np.asarray(envs, dtype=np.intp)
        source, size, max_q = self.source, len(self.source), self.max_question_chars
        rngs, problems, obs, segs, golds = self._rngs, self.problems, self._obs, self._segments, self._golds
        parts: dict[int, tuple[str, str]] = {}  # turn budget -> prompt around the question
        raw_draws = self._raw_draws
        for e, seed, budget in zip(envs, seeds, self.max_turns[idx].tolist()):
            raw_draw = raw_draws[e]
            if seed is not None or raw_draw is None:
                rng, self._rng_seeds[e] = seeding.np_random(seed)
                rngs[e] = rng
                raw_draw = raw_draws[e] = rng.bit_generator.random_raw
            if options:
                problem = turns.choose_problem(source, options, rngs[e], e)
            else:  # turns.draw_index (choose_problem's own draw), inline on the bound random_raw
                problem = source[(raw_draw() * size) >> 64]
            question = problem.question
            if len(question) > max_q:
                raise ValueError(
                    f"problem {problem.id!r} has {len(question)} characters; raise max_question_chars (now {max_q})"
                )
            problems[e] = problem
            golds[e] = math_gold(problem)  # read now, while the problem is in cache
            head_tail = parts.get(budget)
            if head_tail is None:
                head_tail = parts[budget] = prompts.prompt_parts(self.eval_mode, self.max_experts, budget)
            head, tail = head_tail  # concatenation, not formatting
            prompt = obs[e] = head + question + tail
            segs[e] = ["prompt", prompt]
        self._pids[idx] = list(map(_problem_id, map(problems.__getitem__, envs)))
        self.episodes[idx] += 1
        self.turns[idx] = 0
        self.consults[idx] = 0
        self.done[idx] = False
        self.started[idx] = True
        zeros = np.zeros(len(envs), dtype=np.int64)
        builder.put("problem_id", idx, self._pids[idx])
        builder.put("turn", idx, zeros)
        builder.put("turns_left", idx, self.max_turns[idx])
        builder.put("consults", idx, zeros)
        builder.put("acceptance_prob", idx, self.acceptance_probs[idx])
        builder.put("max_turns", idx, self.max_turns[idx])

    # ------------------------------------------------------------------ step
    def step(
        self, actions: Sequence[str | None]
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env whose action is not ``None`` (see the module docs for the return values)."""
        n = self.num_envs
        if isinstance(actions, str) or len(actions) != n:
            raise ValueError(f"expected a sequence of {n} actions (str, or None to skip an env)")
        if None in actions:  # one C-level scan; subset stepping is the rare case
            envs = [i for i, a in enumerate(actions) if a is not None]
            acts = [a for a in actions if a is not None]
        else:
            envs, acts = self._all, list(actions)
        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        builder = InfoBuilder(n)
        if len(acts):
            idx = np.asarray(envs, dtype=np.intp)
            with _gc_paused():
                r, te, tr = self._step_envs(idx, acts, builder)
            rewards[idx], terminated[idx], truncated[idx] = r, te, tr
        return tuple(self._obs), rewards, terminated, truncated, builder.infos

    def step_subset(
        self, indices: Sequence[int], actions: Sequence[str]
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step only envs ``indices`` (distinct); results are compact, aligned with ``indices``.

        ``info`` arrays (and their masks) are compact too: entry ``j`` belongs to env ``indices[j]``.
        """
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)
        if len(actions) != len(idx):
            raise ValueError(f"{len(idx)} indices but {len(actions)} actions")
        if len(np.unique(idx)) != len(idx) or (len(idx) and (idx.min() < 0 or idx.max() >= self.num_envs)):
            raise ValueError(f"indices must be distinct env indices in [0, {self.num_envs})")
        builder = InfoBuilder(self.num_envs)
        with _gc_paused():
            r, te, tr = self._step_envs(idx, list(actions), builder)
        obs = tuple(self._obs[e] for e in idx.tolist())
        return obs, r, te, tr, builder.compact(idx)

    def _step_envs(
        self, idx: np.ndarray, actions: list[str], builder: InfoBuilder
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step (or autoreset) envs ``idx``; fill ``builder``; compact reward/terminated/truncated."""
        if not self.started[idx].all():
            raise RuntimeError("call reset() before step()")
        k = len(idx)
        rewards = np.zeros(k)
        terminated = np.zeros(k, dtype=bool)
        truncated = np.zeros(k, dtype=bool)
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            pending = self._autoreset[idx]
            if pending.any():  # these envs reset now; their actions are ignored (as in Gymnasium)
                ridx = idx[pending]
                self._autoreset[ridx] = False
                self._reset_envs(ridx.tolist(), [None] * len(ridx), {}, builder)
                keep = ~pending
                idx = idx[keep]
                actions = list(itertools.compress(actions, keep.tolist()))
                if not len(idx):
                    return rewards, terminated, truncated
                r, te, tr = self._step_envs(idx, actions, builder)
                rewards[keep], terminated[keep], truncated[keep] = r, te, tr
                return rewards, terminated, truncated
        elif self.done[idx].any():
            bad = idx[self.done[idx]].tolist()[:8]
            raise RuntimeError(
                f"envs {bad} ended their episode; reset them (options={{'reset_mask': ...}}) before step()"
            )
        cols = self._resolve_turns(idx, actions, rewards, terminated, truncated)
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            self._autoreset[idx] = terminated | truncated
            cols.emit(builder, idx, None)
        elif self.autoreset_mode is AutoresetMode.DISABLED:
            cols.emit(builder, idx, None)
        else:  # SAME_STEP: final obs/info kept, then reset in the same call
            ended = terminated | truncated
            cols.emit(builder, idx, ~ended)
            if ended.any():
                eidx = idx[ended]
                final = InfoBuilder(self.num_envs)
                cols.emit(final, idx, ended)
                final_obs = np.full(self.num_envs, None, dtype=object)
                for e in eidx.tolist():
                    final_obs[e] = self._obs[e]
                builder.put("final_obs", eidx, final_obs[eidx], array=final_obs)
                builder.put_dict("final_info", eidx, final.infos)
                self._reset_envs(eidx.tolist(), [None] * len(eidx), {}, builder)
        return rewards, terminated, truncated

    def _resolve_turns(
        self, idx: np.ndarray, actions: list[str], rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray
    ) -> StepColumns:
        """One turn for each env of ``idx`` (the single env's ``step``, batched); returns info columns.

        One pass over the envs parses each action and does all that needs no expert: the nudge,
        the verdict of an answer (``RewardVerification``), the acceptance draws and requests of a
        consult. Then ONE batched expert call, then one pass over the consulting envs writes their
        experts blocks. (One pass rather than one per phase: at thousands of envs every pass over
        their state is a round of cache misses.)
        """
        k = len(idx)
        max_chars = self.single_action_space.max_length
        cut = np.zeros(k, dtype=bool)
        # Checked before any env changes (one bad action leaves the whole batch unstepped).
        if set(map(type, actions)) != {str} and not all(isinstance(a, str) for a in actions):
            bad = next(a for a in actions if not isinstance(a, str))
            raise TypeError(f"action must be str, got {type(bad).__name__}")
        if max(map(len, actions)) > max_chars:
            clipped = [turns.clip_action(a, max_chars) for a in actions]
            actions = [a for a, _ in clipped]
            cut[:] = [c for _, c in clipped]
        kmax, eval_mode = self.max_experts, self.eval_mode
        envs = idx.tolist()
        self.turns[idx] += 1
        # Python lists for the loop: numpy scalar reads (and their str()) are slow.
        probs, episodes, turn_now = (a[idx].tolist() for a in (self.acceptance_probs, self.episodes, self.turns))
        obs, segs, rngs, problems = self._obs, self._segments, self._rngs, self.problems
        nudge, verifier, make_requests = prompts.NUDGE, self.verifier, turns.expert_requests
        cols = StepColumns(k, self._pids[idx], cut)
        kinds = bytearray(k)  # per stepped env: 0 reason, 1 consult, 2 answer (info "action" codes)
        answers: list[str] = []
        consult_parsed: list[ParsedAction] = []
        requests: list[ExpertRequest] = []
        waiting: list[tuple[int, int, list[bool] | None, int, int]] = []  # (j, env, accepted, start, count)
        for j, e, a in zip(range(k), envs, actions):
            p = parse_action(a, kmax)
            if p is REASON:  # parse_action's one reasoning-turn value
                obs[e] = nudge
                segs[e] += ("policy", a, "env", nudge)
                continue
            segs[e] += ("policy", a)
            if p.kind == "answer":
                obs[e] = ""
                kinds[j] = 2
                answers.append(p.answer)
                continue
            kinds[j] = 1
            consult_parsed.append(p)
            queries = p.queries
            if queries and not eval_mode and probs[j] >= 1.0:  # plan_consult's answer, without the call
                accepted = None
            else:
                early, accepted = turns.plan_consult(
                    queries, max_experts=kmax, eval_mode=eval_mode, acceptance_prob=probs[j], rng=rngs[e]
                )
                if early is not None:
                    obs[e] = early
                    segs[e] += ("env", early)
                    if eval_mode and queries:
                        cols.disabled.append(j)
                    continue
            start = len(requests)
            requests += make_requests(f"env{e}/e{episodes[j]}/{turn_now[j]}", problems[e], queries, accepted)
            waiting.append((j, e, accepted, start, len(requests) - start))
        codes = np.frombuffer(kinds, dtype=np.uint8)
        consult_pos = np.flatnonzero(codes == 1)
        answer_pos = np.flatnonzero(codes == 2)
        if len(consult_pos):
            self.consults[idx[consult_pos]] += 1
            self._call_experts(requests, waiting, cols)
        if len(answer_pos):  # RewardVerification's semantics, for every answer of the step at once
            answering = idx[answer_pos].tolist()
            golds = list(map(self._golds.__getitem__, answering)) if self.verifier is verify_problem else None
            if golds is not None and None not in golds:  # the default verifier, math answers only
                verdicts = verify_many(answers, golds)
            else:
                verdicts = [verifier(a, problems[e]) for a, e in zip(answers, answering)]
            rewards[answer_pos] = np.fromiter(map(_score, verdicts), np.float64, len(verdicts))
            terminated[answer_pos] = True
            cols.verdicts = (answer_pos, list(map(_status, verdicts)), answers)
        turn = self.turns[idx]
        max_turns = self.max_turns[idx]
        truncated[:] = ~terminated & (turn >= max_turns)
        self.done[idx] = terminated | truncated
        cols.finish(codes, consult_pos, consult_parsed, turn, max_turns - turn, self.consults[idx], terminated, truncated)
        if self.consult_penalty is not None and len(consult_pos):  # ConsultPenalty's semantics
            cost = float(self.consult_penalty(self._penalty_step))
            rewards[cols.add_penalty(cost)] -= cost
        return cols

    def _call_experts(self, requests: list[ExpertRequest], waiting: list, cols: StepColumns) -> None:
        """ONE batched expert call for every accepted query of the step, then the experts blocks."""
        if not requests:
            for j, e, accepted, _, _ in waiting:  # every query rejected: no expert was called
                text, n_acc, n_unav = turns.experts_observation(accepted, [])
                self._obs[e] = text
                self._segments[e] += ("expert", text)
                cols.consulted.append((j, n_acc, n_unav, None, 0, 0, 0))
            return
        self.expert_calls += 1
        replies = consult_blocking(self.expert, requests, timeout_s=self.expert_timeout_s)
        self._read_replies(replies, waiting, cols)

    def _read_replies(self, replies: list, waiting: list, cols: StepColumns) -> None:
        """Write each consulting env's experts block; record counts, slots, failures, latency.

        The batch is checked once: when every reply is ``ok`` and within ``max_reply_chars`` (the
        usual case), each env only slices the shared text/slot lists, with no per-env counting.
        """
        obs, segs, consulted = self._obs, self._segments, cols.consulted
        render, max_chars = turns.experts_observation, self.max_reply_chars
        fields = tuple(zip(*replies))  # ExpertReply's fields, one column each, in one C-level pass
        texts, statuses, latencies, slots = fields[0], fields[1], fields[2], fields[4]
        if any(latencies):
            owners = np.repeat([w[1] for w in waiting], [w[4] for w in waiting])
            np.add.at(self.expert_latency_s, owners, latencies)
        if statuses.count("ok") == len(replies) and max(map(len, texts)) <= max_chars:
            block = prompts.render_experts_block
            for j, e, accepted, start, count in waiting:
                end = start + count
                if accepted is None:  # every query accepted and answered: nothing to merge
                    text, n_acc, n_unav = block(texts[start:end]), count, 0
                else:
                    text, n_acc, n_unav = render(accepted, texts[start:end])
                obs[e] = text
                segs[e] += ("expert", text)
                consulted.append((j, n_acc, n_unav, slots[start:end] if count else None, 0, 0, 0))
            return
        for j, e, accepted, start, count in waiting:
            stats = turns.ReplyStats()
            text, n_acc, n_unav = render(accepted, turns.read_replies(replies[start : start + count], max_chars, stats))
            obs[e] = text
            segs[e] += ("expert", text)
            consulted.append((j, n_acc, n_unav, stats.slots if count else None, stats.timeouts, stats.errors, stats.cut))

    # ------------------------------------------------------------------ the rest of the VectorEnv API
    def render(self) -> tuple[str | None, ...]:
        if self.render_mode != "ansi":
            return tuple(None for _ in range(self.num_envs))
        return tuple("".join(f"[{s}] {t}\n" for s, t in tr) for tr in self.transcripts)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Per-env values of ``name``: ``acceptance_prob``, ``max_turns``, ``problem``, ``transcript``,
        ``np_random``, ``np_random_seed``, or any attribute of this object (repeated N times)."""
        per_env = {
            "acceptance_prob": lambda: self.acceptance_probs.tolist(),
            "max_turns": lambda: self.max_turns.tolist(),
            "problem": lambda: list(self.problems),
            "transcript": lambda: list(self.transcripts),
            "np_random": lambda: list(self._rngs),
            "np_random_seed": lambda: list(self._rng_seeds),
            "in_episode": lambda: self.in_episode.tolist(),
        }
        if name in per_env:
            return tuple(per_env[name]())
        return tuple(getattr(self, name) for _ in range(self.num_envs))

    def set_attr(self, name: str, values: Any) -> None:
        """Set ``acceptance_prob`` or ``max_turns`` per env (a scalar or N values)."""
        if name == "acceptance_prob":
            values = np.broadcast_to(np.asarray(values, dtype=float), (self.num_envs,))
            if ((values < 0) | (values > 1)).any():
                raise ValueError("acceptance_prob must lie in [0, 1]")
            self.acceptance_probs[:] = values
        elif name == "max_turns":
            self.max_turns[:] = np.broadcast_to(np.asarray(values, dtype=np.int64), (self.num_envs,))
        else:
            raise AttributeError(f"EAPOVectorEnv.set_attr supports acceptance_prob and max_turns, not {name!r}")

    def close_extras(self, **kwargs: Any) -> None:
        """Close the expert (``close``, or ``aclose`` run to completion) if it has one."""
        close = getattr(self.expert, "close", None)
        if callable(close):
            close()
            return
        aclose = getattr(self.expert, "aclose", None)
        if callable(aclose):
            import asyncio

            from eapo_env.experts.base import expert_loop

            asyncio.run_coroutine_threadsafe(aclose(), expert_loop()).result(timeout=self.expert_timeout_s)


def make_vector_env(num_envs: int = 1, **kwargs: Any) -> EAPOVectorEnv:
    """``vector_entry_point`` of ``EAPO-Math-v0``: the same keyword arguments as ``gym.make``, plus
    ``autoreset_mode``. (``gym.make_vec`` forwards its ``**kwargs`` here; ``vector_kwargs`` is refused
    by Gymnasium for entry-point vector envs.)
    """
    kwargs.pop("max_episode_steps", None)  # Gymnasium adds it when the spec sets one; ours don't
    return EAPOVectorEnv(num_envs, **kwargs)


def make_eval_vector_env(num_envs: int = 1, **kwargs: Any) -> EAPOVectorEnv:
    """``vector_entry_point`` of ``EAPO-Math-Eval-v0``: consultation disabled, evaluation prompt."""
    kwargs.pop("max_episode_steps", None)
    kwargs["eval_mode"] = True
    return EAPOVectorEnv(num_envs, **kwargs)
