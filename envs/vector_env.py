"""``EAPOVectorEnv``: N EAPO envs composed as ``SyncVectorEnv`` composes them, experts batched.

``gym.make_vec("EAPO-Math-v0", num_envs=N, **kwargs)`` returns it (the registered
``vector_entry_point``). It holds N single envs built exactly as ``gym.make("EAPO-Math-v0", **kwargs)``
builds them (default wrappers included), each wrapped in the user's ``env_wrappers``, and steps them
through their own wrapper stacks: every rule (turn semantics, verification, penalty, annealing,
evaluation mode, a user's wrapper) lives in one place, the single env or its wrapper. What the
vector env adds is the batching of experts (DESIGN §7): a step first *prepares* every stepping env
through the front of its wrapper stack (``prepare(action) -> TurnPlan``, see :mod:`envs.layers`),
sends all their expert requests as ONE ``Expert.consult`` call, then completes each env through the
front (``complete(plan, replies) -> TurnOutcome``). An env whose stack cannot be split (a wrapper
overriding ``step`` alone) steps by its blocking ``step``, listed in ``blocking_envs`` (with a warning).

* ``submit(indices, actions)`` / ``collect(pending)``: the non-blocking two halves (the rollout engine
  keeps decoding other rows while a batch is with the experts); ``step`` / ``step_subset`` block.
* Autoreset as Gymnasium's: ``NEXT_STEP`` (default), ``SAME_STEP`` (``final_obs`` / ``final_info``),
  ``DISABLED`` (then ``reset(options={"reset_mask": mask})``). ``submit``/``collect`` never autoreset.
* Observations are a tuple of N ``str``; ``info`` is merged as Gymnasium merges it (arrays + ``_key``
  masks). In ``step`` an action ``None`` means *that env does not step* (its entry is unchanged).
* ``reset(seed=s)`` seeds env i with ``s + i``; ``problem_id`` / ``problem_index`` / ``problem`` in
  ``options`` may be a sequence of N values (one per env, e.g. GRPO groups).

User wrappers: ``gym.make_vec(id, num_envs=N, env_wrappers=[W])`` (Gymnasium's own ``wrappers=`` is
refused for a vector entry point; ``gym.make_vec(id, N, vectorization_mode="sync", wrappers=[W])``
works too, as a plain ``SyncVectorEnv`` whose envs consult one by one).

Example:
    >>> import gymnasium as gym, eapo_env
    >>> vec = gym.make_vec("EAPO-Math-v0", num_envs=4, problems="generated:arithmetic")
    >>> obs, info = vec.reset(seed=0)
    >>> len(obs), info["turn"].tolist()
    (4, [0, 0, 0, 0])
    >>> obs, reward, terminated, truncated, info = vec.step(["<consult><query>hint?</query></consult>"] * 4)
    >>> info["accepted"].tolist(), vec.expert_calls
    ([1, 1, 1, 1], 1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from eapo_env.experts import Expert, ExpertRequest
from eapo_env.experts.base import ConsultCall
from eapo_env.progress import set_progress
from eapo_env.registration import EVAL_ID, TRAIN_ID
from envs.layers import fronts_of
from envs.step import StepResult
from envs.text_env import EAPOTextEnv, Source
from envs.turns import TurnPlan
from envs.vector_info import ConsultSlice, PendingStep, compact_info, merge_infos

EnvWrapper = Callable[[gym.Env[str, str]], gym.Env[str, str]]
#: ``options`` keys that may hold one value per env.
PER_ENV_OPTIONS = ("problem", "problem_id", "problem_index")


class EAPOVectorEnv(VectorEnv):
    """N EAPO envs (as ``gym.make(env_id, **env_kwargs)`` builds them, then ``env_wrappers``), one batched
    expert call per step (see the module docs).

    Args:
        num_envs: N.
        env_id: the registered id each env is made from.
        env_wrappers: wrappers (or ``env -> env`` callables) applied to every env, innermost first.
        autoreset_mode: a :class:`gymnasium.vector.AutoresetMode` (or its value string).
        **env_kwargs: every ``gym.make`` keyword argument. The first env is made with them as given;
            the others share its problem source and expert (built once: thousands of problems, one
            connection pool), so that all their requests can go to the expert as one call.
    """

    def __init__(
        self,
        num_envs: int,
        env_id: str = TRAIN_ID,
        *,
        env_wrappers: Sequence[EnvWrapper] = (),
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **env_kwargs: Any,
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.num_envs = num_envs
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        made = [gym.make(env_id, **env_kwargs)]
        lead = self._base(made[0])
        shared = {**env_kwargs, "problems": lead.source, "expert": lead.expert}
        shared.pop("expert_kwargs", None)
        made += [gym.make(env_id, **shared) for _ in range(num_envs - 1)]
        self.expert: Expert = lead.expert
        self.envs: list[gym.Env[str, str]] = []
        for env in made:
            for wrap in env_wrappers:
                env = wrap(env)
            self.envs.append(env)
        self.bases: list[EAPOTextEnv] = [self._base(env) for env in self.envs]  #: the unwrapped envs
        for i, base in enumerate(self.bases):
            base.request_prefix = f"env{i}/"  # request ids unique within a batched call
        #: Per env, the front of its stack in the two-phase turn (``None``: stepped by its blocking ``step``),
        #: and the envs whose stack cannot be split in two phases (they consult one by one).
        self.fronts, self.blocking_envs = fronts_of(self.envs)
        first = self.envs[0]
        self.metadata = {**first.metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.progress_step = 0
        self.expert_calls = 0  # batched consult calls made
        self._obs: list[str] = [""] * num_envs
        self._autoreset = [False] * num_envs  # NEXT_STEP: reset instead of stepping next time
        self._in_flight: set[int] = set()  # envs submitted and not yet collected

    # ------------------------------------------------------------------ views of the composed envs
    @staticmethod
    def _base(env: gym.Env[str, str]) -> EAPOTextEnv:
        base = env.unwrapped
        if not isinstance(base, EAPOTextEnv):
            raise TypeError(f"EAPOVectorEnv composes EAPOTextEnv envs (any task), got {type(base).__name__}")
        return base

    @property
    def eval_mode(self) -> bool:
        return self.bases[0].eval_mode

    @property
    def problems(self) -> list[Any]:
        """Per env, the current :class:`~eapo_env.problems.Problem` (``None`` before its first reset)."""
        return [base.problem for base in self.bases]

    @property
    def transcripts(self) -> list[list[tuple[Source, str]]]:
        """Per env, ``env.unwrapped.transcript``."""
        return [base.transcript for base in self.bases]

    @property
    def done(self) -> np.ndarray:
        """Per env: its episode ended (or it was never reset)."""
        return np.array([not base.in_episode for base in self.bases], dtype=bool)

    @property
    def acceptance_probs(self) -> np.ndarray:
        return np.array([base.acceptance_prob for base in self.bases])

    @property
    def expert_latency_s(self) -> np.ndarray:
        return np.array([base.expert_latency_s for base in self.bases])

    def set_progress(self, step: int) -> None:
        """The trainer's global step, for every wrapper of every env (DESIGN §6)."""
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        self.progress_step = int(step)
        for env in self.envs:
            set_progress(env, int(step))

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
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        envs = list(range(n))
        if mask is not None:
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,):
                raise TypeError(f"options['reset_mask'] must be a bool numpy array of shape ({n},)")
            if not mask.any():
                raise ValueError("options['reset_mask'] must select at least one env")
            envs = np.flatnonzero(mask).tolist()
        results = self.reset_envs(envs, [seeds[i] for i in envs], options)
        infos = merge_infos([(i, info) for i, (_, info) in zip(envs, results)], n)
        return tuple(self._obs), infos

    def reset_envs(
        self,
        indices: Sequence[int],
        seeds: Sequence[int | None] | None = None,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Reset envs ``indices`` (no autoreset bookkeeping left pending); returns ``(obs, info)`` each.

        ``options``: one dict for all (its ``problem*`` values may be sequences of N, one per env, as in
        :meth:`reset`) or one dict per listed env.
        """
        indices = self._check_indices(indices)
        seeds = [None] * len(indices) if seeds is None else list(seeds)
        if isinstance(options, Sequence):
            per_env = list(options)
        else:
            per_env = [self._env_options(options, i) for i in indices]
        if not len(seeds) == len(per_env) == len(indices):
            raise ValueError("indices, seeds and options must have the same length")
        out = []
        for i, seed, opts in zip(indices, seeds, per_env):
            obs, info = self.envs[i].reset(seed=seed, options=dict(opts) if opts else None)
            self._obs[i] = obs
            self._autoreset[i] = False
            out.append((obs, info))
        return out

    def _env_options(self, options: Mapping[str, Any] | None, env: int) -> dict[str, Any] | None:
        if not options:
            return None
        out = dict(options)
        for key in PER_ENV_OPTIONS:
            value = out.get(key)
            if isinstance(value, Sequence) and not isinstance(value, str):
                out[key] = value[env]
        return out

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> list[int]:
        idx = [int(i) for i in indices]
        if len(set(idx)) != len(idx) or any(not 0 <= i < self.num_envs for i in idx):
            raise ValueError(f"indices must be distinct env indices in [0, {self.num_envs})")
        busy = self._in_flight.intersection(idx)
        if busy:
            raise RuntimeError(f"envs {sorted(busy)[:8]} have a submitted step not yet collected")
        return idx

    # ------------------------------------------------------------------ two-phase step
    def submit(self, indices: Sequence[int], actions: Sequence[str]) -> PendingStep:
        """Step envs ``indices`` without blocking on experts (DESIGN §7).

        Every env prepares its turn; those that need no expert are completed at once
        (``pending.completed``); the requests of the others go out as ONE ``Expert.consult`` call
        on the background event loop (``pending.waiting``). Never autoresets. Several submits (of
        different envs) may be in flight at once.
        """
        idx = self._check_indices(indices)
        actions = list(actions)
        if len(actions) != len(idx):
            raise ValueError(f"{len(idx)} indices but {len(actions)} actions")
        for a in actions:  # checked before any env changes
            if not isinstance(a, str):
                raise TypeError(f"action must be str, got {type(a).__name__}")
        ended = [i for i in idx if not self.bases[i].in_episode]
        if ended:
            raise RuntimeError(f"envs {ended[:8]} are not in an episode; reset them before stepping")
        completed: dict[int, StepResult] = {}
        plans: dict[int, TurnPlan] = {}
        batches: dict[int, tuple[Any, list[ExpertRequest], list[ConsultSlice], float | None]] = {}
        for i, action in zip(idx, actions):
            front = self.fronts[i]
            if front is None:
                completed[i] = StepResult.of(self.envs[i].step(action))
                continue
            plan = front.prepare(action)
            if not plan.requests:
                completed[i] = StepResult.of(front.complete(plan, []).as_step())
                continue
            plans[i] = plan
            _, batch, slices, _ = batches.setdefault(id(plan.expert), (plan.expert, [], [], plan.timeout_s))
            slices.append(ConsultSlice(i, len(batch), len(plan.requests)))
            batch.extend(plan.requests)
        calls = [(ConsultCall(expert, batch, timeout), slices) for expert, batch, slices, timeout in batches.values()]
        self.expert_calls += len(calls)
        waiting = tuple(s.env for _, slices in calls for s in slices)
        self._in_flight.update(waiting)
        return PendingStep(completed, waiting, plans, calls)

    def collect(self, pending: PendingStep) -> dict[int, StepResult]:
        """Wait for ``pending``'s batched call and complete its waiting envs: env index -> result.

        (The envs of ``pending.completed`` are not repeated.) Expert faults never raise here: they are
        ``unavailable`` entries of the observation.
        """
        if pending.collected:
            raise RuntimeError("this PendingStep was already collected")
        pending.collected = True
        self._in_flight.difference_update(pending.waiting)  # first: an exception below frees them too
        results: dict[int, StepResult] = {}
        for call, slices in pending.calls:
            replies = call.result()
            for s in slices:
                front = self.fronts[s.env]
                assert front is not None
                outcome = front.complete(pending.plans[s.env], replies[s.start : s.start + s.count])
                results[s.env] = StepResult.of(outcome.as_step())
        return results

    # ------------------------------------------------------------------ blocking step
    def step(
        self, actions: Sequence[str | None]
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Gymnasium's ``step``; an action ``None`` leaves that env out of this step."""
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        stepping = [(i, a) for i, a in enumerate(actions) if a is not None]
        rewards, terminated, truncated, infos = self._step_envs([i for i, _ in stepping], [a for _, a in stepping])
        return tuple(self._obs), rewards, terminated, truncated, infos

    def step_subset(
        self, indices: Sequence[int], actions: Sequence[str]
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step only envs ``indices`` (distinct); results and ``info`` are compact, aligned with ``indices``."""
        idx = self._check_indices(indices)
        if len(actions) != len(idx):
            raise ValueError(f"{len(idx)} indices but {len(actions)} actions")
        rewards, terminated, truncated, infos = self._step_envs(idx, list(actions))
        obs = tuple(self._obs[i] for i in idx)
        return obs, rewards[idx], terminated[idx], truncated[idx], compact_info(infos, idx)

    def _step_envs(
        self, idx: list[int], actions: list[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step (or autoreset) envs ``idx``: full-size reward/terminated/truncated and ``info``."""
        n = self.num_envs
        rewards, terminated, truncated = [0.0] * n, [False] * n, [False] * n
        mode = self.autoreset_mode
        # NEXT_STEP: an env that ended last step resets now and its action is ignored (as in Gymnasium).
        resets = [i for i in idx if mode is AutoresetMode.NEXT_STEP and self._autoreset[i]]
        resetting = set(resets)
        stepping = [(i, a) for i, a in zip(idx, actions) if i not in resetting]
        reset_infos = {i: info for i, (_, info) in zip(resets, self.reset_envs(resets))} if resets else {}
        pending = self.submit([i for i, _ in stepping], [a for _, a in stepping])
        results = {**pending.completed, **self.collect(pending)}
        entries: list[tuple[int, Mapping[str, Any]]] = []  # in env order, as SyncVectorEnv merges
        for i in idx:
            if i in reset_infos:
                entries.append((i, reset_infos[i]))
                continue
            obs, reward, ended_by_answer, ended_by_budget, info = results[i]
            rewards[i], terminated[i], truncated[i] = reward, ended_by_answer, ended_by_budget
            ended = ended_by_answer or ended_by_budget
            self._obs[i] = obs
            if mode is AutoresetMode.NEXT_STEP:
                self._autoreset[i] = ended
            elif mode is AutoresetMode.SAME_STEP and ended:
                entries.append((i, {"final_obs": obs, "final_info": info}))
                self._obs[i], reset_info = self.envs[i].reset()
                entries.append((i, reset_info))
                continue
            entries.append((i, info))
        infos = merge_infos(entries, n)
        return np.array(rewards), np.array(terminated, dtype=bool), np.array(truncated, dtype=bool), infos

    # ------------------------------------------------------------------ the rest of the VectorEnv API
    def render(self) -> tuple[Any, ...]:
        return tuple(env.render() for env in self.envs)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Per env, the attribute ``name`` found along its wrapper chain (``env.get_wrapper_attr``)."""
        return tuple(env.get_wrapper_attr(name) for env in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        """Set ``name`` on every env (one value, or a sequence of N values), as ``SyncVectorEnv`` does."""
        if not isinstance(values, list | tuple | np.ndarray):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} values, got {len(values)}")
        for env, value in zip(self.envs, values):
            env.set_wrapper_attr(name, value)

    def close_extras(self, **kwargs: Any) -> None:
        """Close every env, then the shared expert (``close``, or ``aclose`` run to completion)."""
        for env in self.envs:
            env.close()
        close = getattr(self.expert, "close", None)
        if callable(close):
            close()
            return
        aclose = getattr(self.expert, "aclose", None)
        if callable(aclose):
            import asyncio

            from eapo_env.experts.base import expert_loop

            timeout = self.bases[0].expert_timeout_s
            asyncio.run_coroutine_threadsafe(aclose(), expert_loop()).result(timeout=timeout)


def make_vector_env(num_envs: int = 1, **kwargs: Any) -> EAPOVectorEnv:
    """``vector_entry_point`` of ``EAPO-Math-v0``: the ``gym.make`` keyword arguments, plus
    ``autoreset_mode`` and ``env_wrappers`` (``gym.make_vec`` forwards its ``**kwargs`` here)."""
    kwargs.pop("max_episode_steps", None)  # Gymnasium adds it when the spec sets one; ours don't
    return EAPOVectorEnv(num_envs, TRAIN_ID, **kwargs)


def make_eval_vector_env(num_envs: int = 1, **kwargs: Any) -> EAPOVectorEnv:
    """``vector_entry_point`` of ``EAPO-Math-Eval-v0``: consultation disabled, evaluation prompt."""
    kwargs.pop("max_episode_steps", None)
    return EAPOVectorEnv(num_envs, EVAL_ID, **kwargs)
