"""``EAPOTextEnv``: the task-agnostic text env; one problem per episode, each step one policy turn (DESIGN §3).

Actions and observations are text. A turn either reasons (observation: a fixed nudge), consults up
to ``max_experts`` experts (observation: the experts block), or answers (episode terminates). The
env only ever parses the action. What depends on the kind of problem is asked of its *task*
(:class:`eapo_env.tasks.Task`: problems, prompts, scorer, reference expert); ``EAPO-Math-v0`` is the
math task on it (:class:`envs.math_env.EAPOMathEnv`). Reward here is 0 on every step;
:class:`wrappers.RewardVerification` (applied by the registered entry points) scores the answer with
the task's scorer.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any, Literal, cast

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from eapo_env.experts import Expert, ExpertReply, make_expert
from eapo_env.experts.base import normalize_replies
from eapo_env.problems import Problem, ProblemSource
from eapo_env.scoring import MAX_ACTION_CHARS
from eapo_env.spaces import TextSpace
from eapo_env.tasks import Task, resolve_task
from envs import turns
from envs.layers import run_turn
from envs.step import ResetInfo, TurnCounts, TurnOutcome

Source = Literal["prompt", "policy", "expert", "env"]
#: The counts of a turn that neither consulted nor parsed a query (shared: the record is frozen).
NO_COUNTS = TurnCounts()


def eapo_unwrapped(env: gym.Env[Any, Any]) -> EAPOTextEnv:
    """``env.unwrapped``, typed as the EAPO env whose knobs the wrappers drive (no runtime check: an
    env with the same attributes works too)."""
    return cast(EAPOTextEnv, env.unwrapped)


class SharedKwargsSpec(EnvSpec):
    """An ``EnvSpec`` whose deep copy shares the values of its ``kwargs``.

    Every Gymnasium wrapper's ``spec`` deep-copies the env's spec, kwargs included; ours hold live
    objects meant to be shared (an expert with its connection pool or locks, a problem source of
    thousands of problems). A deep copy of those fails (``gym.make`` then asserts) or copies them
    once per env of a vector env.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedKwargsSpec:
        clone = copy.copy(self)
        clone.kwargs = dict(self.kwargs)
        return clone


class EAPOTextEnv(gym.Env[str, str]):
    """The task-agnostic text environment (``EAPO-Math-v0`` is the math task on it).

    Args:
        problems: the task's problem spec (math: ``"generated"``, ``"generated:<family>"``, a
            .jsonl/.parquet/.csv path), a list of :class:`Problem`, or a problem source; ``None``:
            the task's default.
        expert: an expert name (see :func:`eapo_env.experts.make_expert`; ``"reference"`` is the
            task's reference expert) or an ``Expert`` object.
        task: the :class:`~eapo_env.tasks.Task`, or its name in :data:`eapo_env.tasks.TASKS`
            (``"qa"``, ``"choice"``, ``"code"``; default: the math task).
        expert_kwargs: keyword arguments for ``make_expert`` when ``expert`` is a name.
        max_experts: K, the most queries one consult may send; extra queries are dropped.
        max_turns: the turn budget; the episode is truncated when it is spent without an answer.
        acceptance_prob: p, the probability that each kept query is sent and its reply written.
        eval_mode: consultation disabled (no expert is ever called) and the evaluation prompt.
        max_action_chars: longer actions are cut to this length (``info["action_truncated"]``).
        max_reply_chars: longer expert replies are cut (``info["replies_cut"]``) so every
            observation stays inside the observation space.
        expert_timeout_s: deadline for one consult's batch; pending replies become ``timeout``.

    Example:
        >>> env = EAPOTextEnv(problems="generated:arithmetic", expert="reference")
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step("<consult><query>How?</query></consult>")
        >>> info["accepted"], "<experts>" in obs
        (1, True)
        >>> plan = env.prepare("<answer>0</answer>")       # the same turn in two phases (DESIGN §7)
        >>> env.complete(plan, []).terminated
        True
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        problems: str | Sequence[Problem] | ProblemSource | None = None,
        expert: str | Expert = "reference",
        *,
        task: Task | str | None = None,
        expert_kwargs: dict[str, Any] | None = None,
        max_experts: int = 3,
        max_turns: int = 8,
        acceptance_prob: float = 1.0,
        eval_mode: bool = False,
        max_action_chars: int = MAX_ACTION_CHARS,
        max_reply_chars: int = 8_192,
        max_question_chars: int = 16_384,
        expert_timeout_s: float = 120.0,
        render_mode: str | None = None,
    ) -> None:
        turns.check_env_args(max_experts, max_turns, render_mode)
        self.task: Task = resolve_task(task)
        self.source: ProblemSource = self.task.problems(problems)
        if isinstance(expert, str) and expert == "reference" and not expert_kwargs:
            self.expert: Expert = self.task.reference_expert()
        else:
            self.expert = make_expert(expert, **(expert_kwargs or {}))
        self.max_experts = max_experts
        self.max_turns = max_turns
        self.acceptance_prob = acceptance_prob
        self.eval_mode = bool(eval_mode)
        self.max_reply_chars = max_reply_chars
        self.max_question_chars = max_question_chars
        self.expert_timeout_s = expert_timeout_s
        self.render_mode = render_mode
        self.max_action_chars = max_action_chars
        self.action_space = TextSpace(max_action_chars)
        # Bound on any observation: the prompt, or an experts block of K capped replies.
        blank = Problem("", "", "")
        texts = [
            self.task.prompt(blank, eval_mode=e, max_experts=max_experts, max_turns=max_turns) for e in (False, True)
        ]
        prompt_room = max_question_chars + max(map(len, texts)) + 64
        experts_room = max_experts * (max_reply_chars * 2 + 64) + 64  # x2: escaping may grow text
        self.observation_space = TextSpace(max(prompt_room, experts_room, 1024))

        self._spec: EnvSpec | None = None
        self.problem: Problem | None = None
        self.transcript: list[tuple[Source, str]] = []
        self.progress_step: int = 0
        self.expert_latency_s: float = 0.0  # kept off `info` so that info stays deterministic
        self._episode = -1
        self._turn = 0
        self._consults = 0
        self._done = True
        self._started = False
        #: Prefix of this env's request ids (a vector env sets ``"env<i>/"`` so ids are unique in its batch).
        self.request_prefix = ""

    # ------------------------------------------------------------------ knobs
    @property
    def spec(self) -> EnvSpec | None:
        """The env's spec (set by ``gym.make``); its deep copies share live kwargs (see :class:`SharedKwargsSpec`)."""
        return self._spec

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        if value is not None and not isinstance(value, SharedKwargsSpec):
            value = SharedKwargsSpec(**{f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init})
        self._spec = value

    @property
    def acceptance_prob(self) -> float:
        """p: probability that a kept query is sent to an expert and its reply written."""
        return self._acceptance_prob

    @acceptance_prob.setter
    def acceptance_prob(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"acceptance_prob must lie in [0, 1], got {value}")
        self._acceptance_prob = value

    @property
    def in_episode(self) -> bool:
        """True between a reset and the end of that episode (annealing wrappers wait for False)."""
        return not self._done

    def set_progress(self, step: int) -> None:
        """Record the global training step (the wrappers that hold schedules act on it)."""
        self.progress_step = int(step)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        problem = turns.pinned_problem(self.source, options)
        if problem is None:
            problem = self.source[turns.draw_index(self.np_random, len(self.source))]
        self.problem = problem
        if len(self.problem.question) > self.max_question_chars:
            raise ValueError(
                f"problem {self.problem.id!r} has {len(self.problem.question)} characters; "
                f"raise max_question_chars (now {self.max_question_chars})"
            )
        self._episode += 1
        self._turn = 0
        self._consults = 0
        self._done = False
        self._started = True
        prompt = self.task.prompt(
            self.problem, eval_mode=self.eval_mode, max_experts=self.max_experts, max_turns=self.max_turns
        )
        self.transcript = [("prompt", prompt)]
        info: ResetInfo = {
            "problem_id": self.problem.id,
            "turn": 0,
            "turns_left": self.max_turns,
            "consults": 0,
            "acceptance_prob": self._acceptance_prob,
            "max_turns": self.max_turns,
        }
        return prompt, dict(info)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """One turn (DESIGN §3): :meth:`prepare`, one blocking expert call, :meth:`complete`."""
        return run_turn(self, action)

    # ------------------------------------------------------------------ two-phase turn (DESIGN §7)
    def prepare(self, action: str) -> turns.TurnPlan:
        """Phase 1: parse, clip, draw acceptance (from ``np_random``); never blocks, changes no state
        but the generator. The plan holds the turn's expert requests (``plan.requests``)."""
        self._check_can_step()
        assert self.problem is not None
        knobs = turns.TurnKnobs(self.max_experts, self._acceptance_prob, self.eval_mode, self.max_action_chars)
        key = turns.TurnKey(id(self), self._episode, self._turn + 1)
        return turns.plan_turn(
            action,
            knobs,
            self.problem,
            key,
            lambda: self.np_random,
            request_prefix=self.request_prefix,
            expert=self.expert,
            timeout_s=self.expert_timeout_s,
        )

    def complete(self, plan: turns.TurnPlan, replies: Sequence[ExpertReply]) -> TurnOutcome:
        """Phase 2: resolve ``plan``'s turn with one reply per request (a wrong count, or a reply that
        is not an ``ExpertReply``, becomes ``error`` replies: ``unavailable`` entries)."""
        self._check_can_step()
        assert self.problem is not None
        if plan.key != (id(self), self._episode, self._turn + 1):
            raise ValueError(f"plan {plan.key} is not for this env's next turn (a stale or foreign plan)")
        if plan.requests or replies:
            replies = normalize_replies(list(replies), len(plan.requests))
        self._turn += 1
        self.transcript.append(("policy", plan.text))
        parsed = plan.parsed
        terminated = parsed.kind == "answer"
        obs, counts, latency = "", None, 0.0
        if not terminated:
            self._consults += parsed.kind == "consult"
            obs, counts, latency = self._turn_observation(plan, replies)
        if counts is None:  # no experts block: only the parse's counts (none at all but for a consult)
            counts = (
                NO_COUNTS
                if parsed.kind != "consult"
                else TurnCounts(len(parsed.queries), 0, 0, parsed.dropped_queries, parsed.blank_queries)
            )
        truncated = turns.is_truncated(terminated, self._turn, self.max_turns)
        self._done = terminated or truncated
        self.expert_latency_s += latency
        return TurnOutcome(
            observation=obs,
            problem_id=self.problem.id,
            kind=parsed.kind,
            terminated=terminated,
            truncated=truncated,
            answer=parsed.answer if terminated else None,
            counts=counts,
            format_error=bool(parsed.format_error),
            action_truncated=plan.truncated,
            consult_disabled=parsed.kind == "consult" and bool(parsed.queries) and plan.knobs.eval_mode,
            turn=self._turn,
            turns_left=self.max_turns - self._turn,
            consults=self._consults,
            latency_s=latency,
        )

    def _check_can_step(self) -> None:
        if self._done:
            if not self._started:
                raise RuntimeError("call reset() before step()")
            raise RuntimeError("the episode is over (terminated or truncated); call reset() before step()")

    def _turn_observation(
        self, plan: turns.TurnPlan, replies: Sequence[ExpertReply]
    ) -> tuple[str, TurnCounts | None, float]:
        """The observation of a reasoning or consulting turn (transcript updated), the counts of a
        consult that reached the experts block (``None`` otherwise), its latency."""
        if plan.early_observation is not None:
            self.transcript.append(("env", plan.early_observation))
            return plan.early_observation, None, 0.0
        parsed = plan.parsed
        obs, reply = turns.consult_observation(plan, replies, self.max_reply_chars)
        counts = TurnCounts(
            queries=len(parsed.queries),
            accepted=reply.accepted,
            unavailable=reply.unavailable,
            dropped_queries=parsed.dropped_queries,
            blank_queries=parsed.blank_queries,
            expert_timeouts=reply.timeouts,
            expert_errors=reply.errors,
            replies_cut=reply.cut,
            expert_slots=reply.slots if plan.requests else None,
        )
        self.transcript.append(("expert", obs))
        return obs, counts, reply.latency_s

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return "".join(f"[{source}] {text}\n" for source, text in self.transcript)
        return None
