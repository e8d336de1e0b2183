"""``EAPOMathEnv``: one math problem per episode; each step is one policy turn (DESIGN §3).

Actions and observations are text. A turn either reasons (observation: a fixed nudge), consults up
to ``max_experts`` experts (observation: the experts block), or answers (episode terminates). The
env only ever parses the action. Reward here is 0 on every step; :class:`wrappers.RewardVerification`
(applied by the registered entry points) turns the answer into the verified reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym

from eapo_env import prompts
from eapo_env.experts import Expert, consult_blocking, make_expert
from eapo_env.problems import Problem, ProblemSource, load_problems
from eapo_env.protocol import parse_action
from eapo_env.spaces import TextSpace
from envs import turns

Source = Literal["prompt", "policy", "expert", "env"]


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
        max_action_chars: int = 16_384,
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
        self.action_space = TextSpace(max_action_chars)
        # Bound on any observation: the prompt, or an experts block of K capped replies.
        prompt_room = max_question_chars + len(prompts.TRAIN_PROMPT) + 64
        experts_room = max_experts * (max_reply_chars * 2 + 64) + 64  # x2: escaping may grow text
        self.observation_space = TextSpace(max(prompt_room, experts_room, 1024))

        self.problem: Problem | None = None
        self.transcript: list[tuple[Source, str]] = []
        self.progress_step: int = 0
        self.expert_latency_s: float = 0.0  # kept off `info` so that info stays deterministic
        self._episode = -1
        self._turn = 0
        self._consults = 0
        self._done = True
        self._started = False

    # ------------------------------------------------------------------ knobs
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
        self.problem = self._choose_problem(options)
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
        info = {
            "problem_id": self.problem.id,
            "turn": 0,
            "turns_left": self.max_turns,
            "consults": 0,
            "acceptance_prob": self._acceptance_prob,
            "max_turns": self.max_turns,
        }
        return prompt, info

    def _choose_problem(self, options: dict[str, Any] | None) -> Problem:
        return turns.choose_problem(self.source, options, self.np_random)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done:
            if not self._started:
                raise RuntimeError("call reset() before step()")
            raise RuntimeError("the episode is over (terminated or truncated); call reset() before step()")
        # The turn semantics live in envs.turns, shared with the vector env (one implementation).
        action, action_truncated = turns.clip_action(action, self.action_space.max_length)
        assert self.problem is not None
        self._turn += 1
        self.transcript.append(("policy", action))
        parsed = parse_action(action, self.max_experts)
        info = turns.base_step_info(self.problem.id, parsed, action_truncated)
        terminated = False
        if parsed.kind == "answer":
            terminated = True
            obs = ""
            info["answer"] = parsed.answer
        elif parsed.kind == "consult":
            self._consults += 1
            obs = self._consult(parsed.queries, info)
        else:
            obs = prompts.NUDGE
            self.transcript.append(("env", obs))
        truncated = turns.is_truncated(terminated, self._turn, self.max_turns)
        info["turn"] = self._turn
        info["turns_left"] = self.max_turns - self._turn
        info["consults"] = self._consults
        if truncated:
            info["answer"] = None
        self._done = terminated or truncated
        return obs, 0.0, terminated, truncated, info

    def _consult(self, queries: tuple[str, ...], info: dict[str, Any]) -> str:
        early, accepted = turns.plan_consult(
            queries,
            max_experts=self.max_experts,
            eval_mode=self.eval_mode,
            acceptance_prob=self._acceptance_prob,
            rng=self.np_random,
        )
        if early is not None:
            if self.eval_mode and queries:
                info["consult_disabled"] = True
            self.transcript.append(("env", early))
            return early
        texts = self.call_experts([q for q, ok in zip(queries, accepted) if ok], info)
        obs, info["accepted"], info["unavailable"] = turns.experts_observation(accepted, texts)
        self.transcript.append(("expert", obs))
        return obs

    def _draw_acceptance(self, n: int) -> list[bool]:
        """Each kept query is accepted independently with probability p (env's own RNG)."""
        return turns.draw_acceptance(self.np_random, self._acceptance_prob, n)

    def call_experts(self, queries: Sequence[str], info: dict[str, Any]) -> list[str | None]:
        """Send accepted queries as one batch; returns reply texts, ``None`` for failed ones."""
        if not queries:
            return []
        assert self.problem is not None
        requests = turns.expert_requests(f"e{self._episode}/{self._turn}", self.problem, queries, [True] * len(queries))
        replies = consult_blocking(self.expert, requests, timeout_s=self.expert_timeout_s)
        stats = turns.ReplyStats()
        texts = turns.read_replies(replies, self.max_reply_chars, stats)
        self.expert_latency_s += stats.latency_s
        info["expert_timeouts"] += stats.timeouts
        info["expert_errors"] += stats.errors
        info["expert_slots"] = stats.slots
        if stats.cut:
            info["replies_cut"] = stats.cut
        return texts

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return "".join(f"[{source}] {text}\n" for source, text in self.transcript)
        return None
