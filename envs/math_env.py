"""``EAPOMathEnv``: one math problem per episode; each step is one policy turn (DESIGN §3).

Actions and observations are text. A turn either reasons (observation: a fixed nudge), consults up
to ``max_experts`` experts (observation: the experts block), or answers (episode terminates). The
env only ever parses the action. Reward here is 0 on every step; :class:`wrappers.RewardVerification`
(applied by the registered entry points) turns the answer into the verified reward.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils import seeding

from eapo_env import prompts
from eapo_env.experts import Expert, ExpertReply, ExpertRequest, consult_blocking, make_expert
from eapo_env.experts.base import normalize_replies
from eapo_env.problems import Problem, ProblemSource, load_problems
from eapo_env.scoring import MAX_ACTION_CHARS
from eapo_env.spaces import TextSpace
from envs import turns
from envs.step import ResetInfo

Source = Literal["prompt", "policy", "expert", "env"]


def eapo_unwrapped(env: gym.Env[Any, Any]) -> EAPOMathEnv:
    """``env.unwrapped``, typed as the EAPO env whose knobs the wrappers drive (no runtime check: an
    env with the same attributes works too)."""
    return cast(EAPOMathEnv, env.unwrapped)


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


class EAPOMathEnv(gym.Env[str, str]):
    """The text environment behind ``EAPO-Math-v0`` and ``EAPO-Math-Eval-v0``.

    Args:
        problems: a problem spec (``"generated"``, ``"generated:<family>"``, a .jsonl/.parquet/.csv
            path), a list of :class:`Problem`, or a problem source.
        expert: an expert name (see :func:`eapo_env.experts.make_expert`) or an ``Expert`` object.
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
        >>> env = EAPOMathEnv(problems="generated:arithmetic", expert="reference")
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step("<consult><query>How?</query></consult>")
        >>> info["accepted"], "<experts>" in obs
        (1, True)
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        problems: str | Sequence[Problem] | ProblemSource = "generated",
        expert: str | Expert = "reference",
        *,
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
        self.source: ProblemSource = load_problems(problems)
        self.expert: Expert = make_expert(expert, **(expert_kwargs or {}))
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
        prompt_room = max_question_chars + len(prompts.TRAIN_PROMPT) + 64
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
        self._prepared: tuple[turns.TurnPlan, Mapping[str, Any] | None] | None = None  # plan, RNG state before
        self._supplied: list[ExpertReply] | None = None
        self._pending_seed: int | None = None  # reset(seed=s) whose generator is not built yet

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

    # Gymnasium's reset(seed=s) builds a new generator (a SeedSequence + PCG64: a fifth of a training
    # reset's CPU); most episodes never draw from it (the trainer pins problems; p(t) is 0 or 1 for
    # most of a run), so it is built from s on first use. Same generator, same stream as Gymnasium's.
    @property
    def np_random(self) -> np.random.Generator:
        """The env's generator (Gymnasium's ``np_random``), built on first use after ``reset(seed=...)``."""
        if self._pending_seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(self._pending_seed)
            self._pending_seed = None
        return cast(np.random.Generator, gym.Env.np_random.fget(self))  # type: ignore[attr-defined]

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        self._pending_seed = None
        gym.Env.np_random.fset(self, value)  # type: ignore[attr-defined]

    @property
    def np_random_seed(self) -> int:
        """The seed of :attr:`np_random` (Gymnasium's ``np_random_seed``; -1 for a generator set by hand)."""
        if self._pending_seed is not None:
            return self._pending_seed
        return cast(int, gym.Env.np_random_seed.fget(self))  # type: ignore[attr-defined]

    def _seed(self, seed: int | None) -> None:
        """What ``gym.Env.reset(seed=seed)`` does, the generator itself deferred to first use."""
        if seed is None:
            return
        if not (isinstance(seed, int) and seed >= 0):
            seeding.np_random(seed)  # raises Gymnasium's own error for a bad seed
        self._np_random, self._pending_seed = None, seed

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
        self.discard_prepared()  # before seeding: it may restore the RNG state of before the plan
        self._seed(seed)
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
        prompt = prompts.render_prompt(
            self.problem.question, eval_mode=self.eval_mode, max_experts=self.max_experts, max_turns=self.max_turns
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
        """One turn (DESIGN §3). Completes a plan made by :meth:`prepare_step` for this same action
        (with the replies given to :meth:`supply_replies`, else one blocking expert call); otherwise
        plans the turn now. Both paths run the same two phases."""
        self._check_can_step()
        plan = self._take_prepared(action)
        if plan is None:
            plan = self._plan(action, lambda: self.np_random)
            replies = None
        else:
            replies, self._supplied = self._supplied, None
        if replies is None:
            replies = consult_blocking(self.expert, plan.requests, timeout_s=self.expert_timeout_s)
        return self._complete(plan, replies)

    # ------------------------------------------------------------------ two-phase step (DESIGN §7)
    def prepare_step(self, action: str) -> list[ExpertRequest]:
        """Phase 1 of ``step(action)``: parse, clip, draw acceptance (from ``np_random``); never blocks.

        Returns the expert requests of this turn (empty when it needs no expert). The next
        ``step(action)`` with the same action, through any wrapper stack, completes this plan.

        Example:
            >>> env = EAPOMathEnv(problems="generated:arithmetic")
            >>> _ = env.reset(seed=0)
            >>> requests = env.prepare_step("<consult><query>How?</query></consult>")
            >>> env.supply_replies(env.expert.consult_sync(requests))
            >>> env.step("<consult><query>How?</query></consult>")[4]["accepted"]
            1
        """
        self._check_can_step()
        self.discard_prepared()
        # Only acceptance draws (a consult with 0 < p < 1) move the RNG during a turn: the state before
        # the first draw is saved, to be restored if the plan is discarded.
        saved: Mapping[str, Any] | None = None

        def rng() -> np.random.Generator:
            nonlocal saved
            if saved is None:
                saved = self.np_random.bit_generator.state
            return self.np_random

        plan = self._plan(action, rng)
        self._prepared = (plan, saved)
        return list(plan.requests)

    def supply_replies(self, replies: Sequence[ExpertReply]) -> None:
        """Phase 2 input: one reply per request :meth:`prepare_step` returned, same order.

        A wrong count or a reply that is not an ``ExpertReply`` becomes ``error`` replies (the entries
        read ``unavailable``), as for any backend fault.
        """
        if self._prepared is None:
            raise RuntimeError("supply_replies() needs a prepare_step() first")
        self._supplied = normalize_replies(list(replies), len(self._prepared[0].requests))

    def discard_prepared(self) -> None:
        """Forget a prepared step and restore the RNG to its state before :meth:`prepare_step`."""
        if self._prepared is not None and self._prepared[1] is not None:
            self.np_random.bit_generator.state = self._prepared[1]
        self._prepared = None
        self._supplied = None

    def _take_prepared(self, action: str) -> turns.TurnPlan | None:
        """The prepared plan if it is for ``action`` under the current knobs; else undo it (``None``)."""
        if self._prepared is None:
            return None
        plan = self._prepared[0]
        if isinstance(action, str) and plan.action == action and plan.knobs == self._knobs():
            self._prepared = None
            return plan
        self.discard_prepared()  # an action-rewriting wrapper (or a knob changed): plan afresh
        return None

    def _check_can_step(self) -> None:
        if self._done:
            if not self._started:
                raise RuntimeError("call reset() before step()")
            raise RuntimeError("the episode is over (terminated or truncated); call reset() before step()")

    def _knobs(self) -> turns.TurnKnobs:
        return turns.TurnKnobs(self.max_experts, self._acceptance_prob, self.eval_mode, self.max_action_chars)

    def _plan(self, action: str, rng: Callable[[], np.random.Generator]) -> turns.TurnPlan:
        assert self.problem is not None
        prefix = f"{self.request_prefix}e{self._episode}/{self._turn + 1}"
        return turns.plan_turn(action, self._knobs(), self.problem, prefix, rng)

    def _complete(
        self, plan: turns.TurnPlan, replies: Sequence[ExpertReply]
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Phase 2: resolve the turn from the plan and the replies to its requests."""
        assert self.problem is not None
        self._turn += 1
        self.transcript.append(("policy", plan.text))
        info = turns.step_info(plan, self.problem.id)
        terminated = plan.parsed.kind == "answer"
        obs = ""
        if terminated:
            info["answer"] = plan.parsed.answer
        else:
            self._consults += plan.parsed.kind == "consult"
            obs = self._turn_observation(plan, replies, info)
        truncated = turns.is_truncated(terminated, self._turn, self.max_turns)
        info["turn"] = self._turn
        info["turns_left"] = self.max_turns - self._turn
        info["consults"] = self._consults
        if truncated:
            info["answer"] = None
        self._done = terminated or truncated
        return obs, 0.0, terminated, truncated, info

    def _turn_observation(self, plan: turns.TurnPlan, replies: Sequence[ExpertReply], info: dict[str, Any]) -> str:
        """The observation of a reasoning or consulting turn (transcript and ``info`` updated)."""
        if plan.early_observation is not None:
            if plan.parsed.kind == "consult" and plan.parsed.queries and plan.knobs.eval_mode:
                info["consult_disabled"] = True
            self.transcript.append(("env", plan.early_observation))
            return plan.early_observation
        obs, counts = turns.consult_observation(plan, replies, self.max_reply_chars)
        self.expert_latency_s += counts.latency_s
        info["accepted"] = counts.accepted
        info["unavailable"] = counts.unavailable
        info["expert_timeouts"] = counts.timeouts
        info["expert_errors"] = counts.errors
        if plan.requests:
            info["expert_slots"] = counts.slots
        if counts.cut:
            info["replies_cut"] = counts.cut
        self.transcript.append(("expert", obs))
        return obs

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return "".join(f"[{source}] {text}\n" for source, text in self.transcript)
        return None
