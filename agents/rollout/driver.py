"""Driving the vector env for the rollout engines (DESIGN §7): one place for the env side of a rollout.

All episodes of a rollout live in one vector env with the two-phase consult API
(``reset_envs`` / ``submit`` / ``collect``, see ``envs.vector_env``). An engine hands finished turns
to :class:`EpisodeDriver`, which books them into the trajectories, submits every turn of the batch
as ONE ``submit`` (so one batched expert call), and gives back the rows that may decode again —
at once for steps that needed no expert, later (from :meth:`EpisodeDriver.poll` /
:meth:`EpisodeDriver.wait`) for rows parked on an expert call.

:class:`PerEnvVector` puts a plain list of single envs behind the same API, stepping each env with
its own blocking ``env.step`` (one expert call per env, one env after another: the path training
took before the vector env). Tests use it for scripted envs; the consult benchmark as the old path.

Example:
    >>> driver = EpisodeDriver(vec, encode_prompt, encode_obs, stop, budget=1024)   # doctest: +SKIP
    >>> trajs = driver.start(seeds=[0, 1], options=None, group_ids=[0, 0])          # doctest: +SKIP
    >>> rejoin, ended = driver.finish_turns([(0, ids, logprobs)])                   # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from agents.rollout.sampling import StopCriteria
from agents.rollout.types import Trajectory
from envs.step import StepResult


class PendingStep(Protocol):
    """What ``submit`` returns (``envs.vector_env``): steps done at once, and those waiting on experts."""

    completed: dict[int, StepResult]
    waiting: tuple[int, ...]

    def ready(self) -> bool: ...


class TwoPhaseVectorEnv(Protocol):
    """The part of the vector env API the engines use."""

    num_envs: int

    def reset_envs(
        self, indices: Sequence[int], seeds: Sequence[int | None], options: Sequence[dict | None]
    ) -> list[tuple[str, dict[str, Any]]]: ...

    def submit(self, indices: Sequence[int], actions: Sequence[str]) -> PendingStep: ...

    def collect(self, pending: PendingStep) -> dict[int, StepResult]: ...


class _Finished:
    """A pending step that completed inside ``submit`` (nothing waits)."""

    waiting: tuple[int, ...] = ()

    def __init__(self, completed: dict[int, StepResult]) -> None:
        self.completed = completed

    def ready(self) -> bool:
        return True


class PerEnvVector:
    """A list of single envs behind the two-phase API; each step is the env's own blocking ``step``.

    >>> vec = PerEnvVector([gym.make("EAPO-Math-v0") for _ in range(2)])   # doctest: +SKIP
    >>> vec.submit([0, 1], ["<answer>1</answer>"] * 2).completed.keys()     # doctest: +SKIP
    dict_keys([0, 1])
    """

    def __init__(self, envs: Sequence[Any]) -> None:
        self.envs = list(envs)
        self.num_envs = len(self.envs)

    def reset_envs(
        self, indices: Sequence[int], seeds: Sequence[int | None], options: Sequence[dict | None]
    ) -> list[tuple[str, dict[str, Any]]]:
        return [self.envs[i].reset(seed=s, options=o) for i, s, o in zip(indices, seeds, options)]

    def submit(self, indices: Sequence[int], actions: Sequence[str]) -> _Finished:
        return _Finished({i: StepResult.of(self.envs[i].step(a)) for i, a in zip(indices, actions)})

    def collect(self, pending: PendingStep) -> dict[int, StepResult]:
        return {}

    def set_progress(self, step: int) -> None:
        from eapo_env import set_progress

        for env in self.envs:
            set_progress(env, step)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def as_vector_env(envs: Any) -> TwoPhaseVectorEnv:
    """A vector env is used as is; a list/tuple of single envs goes behind :class:`PerEnvVector`."""
    return PerEnvVector(envs) if isinstance(envs, (list, tuple)) else envs


def _per_env(values: Any, n: int, name: str) -> list[Any]:
    if values is None or isinstance(values, (int, dict)):
        return [values if not isinstance(values, int) else values + i for i in range(n)]
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} must have one entry per env ({n}), got {len(values)}")
    return values


class EpisodeDriver:
    """Books turns into trajectories and steps the vector env, one ``submit`` per group of turns.

    Args:
        vec: the vector env (or a list of single envs, see :func:`as_vector_env`).
        encode_prompt / encode_observation: ``str -> list[int]``, each text tokenized once.
        stop: the engine's :class:`StopCriteria` (turn text, natural stops).
        budget: per-trajectory token budget (prompt + response).

    Attributes:
        env_seconds: wall time spent inside the vector env's calls (reset, submit, collect) on the
            caller's thread (the expert client runs on the experts' own loop thread and is not in it).
            On a busy machine it includes time the thread waited for a core.
        env_cpu_seconds: CPU time of the caller's thread inside those calls: what the env + verifier
            cost, whatever else the machine runs (``time.thread_time``).
        submits: ``submit`` calls made (each is at most one batched expert call).
    """

    def __init__(
        self,
        vec: Any,
        encode_prompt: Callable[[str], list[int]],
        encode_observation: Callable[[str], list[int]],
        stop: StopCriteria,
        budget: int,
    ) -> None:
        self.vec = as_vector_env(vec)
        self.encode_prompt, self.encode_observation = encode_prompt, encode_observation
        self.stop, self.budget = stop, int(budget)
        self.trajs: list[Trajectory] = []
        self.pending: list[PendingStep] = []
        self.env_seconds = 0.0
        self.env_cpu_seconds = 0.0
        self.submits = 0

    def start(self, seeds: Any = None, options: Any = None, group_ids: Sequence[int] | None = None) -> list[Trajectory]:
        """Reset envs ``0..n-1`` (n = the vector env's size) and open one trajectory each.

        ``seeds``: one per env, or an int (env i gets ``seeds + i``), or None; ``options``: one dict
        per env, or one for all, or None; ``group_ids``: one per env (default: env i is group i).
        Episodes whose prompt already fills the budget are marked truncated + overlong.
        """
        n = self.vec.num_envs
        seeds, options = _per_env(seeds, n, "seeds"), _per_env(options, n, "options")
        groups = list(range(n)) if group_ids is None else _per_env(group_ids, n, "group_ids")
        t0, c0 = time.perf_counter(), time.thread_time()
        resets = self.vec.reset_envs(list(range(n)), seeds, options)
        self._count(t0, c0)
        self.trajs = []
        for (prompt, info), gid in zip(resets, groups):
            info = dict(info)
            traj = Trajectory(
                prompt_ids=list(self.encode_prompt(prompt)),
                group_id=int(gid),
                problem_id=info.get("problem_id"),
                reset_info=info,
            )
            traj.truncated = traj.overlong = len(traj.prompt_ids) >= self.budget
            self.trajs.append(traj)
        return self.trajs

    def live(self) -> list[int]:
        """Episodes that can generate (their prompt fits the budget)."""
        return [i for i, t in enumerate(self.trajs) if not t.overlong]

    @property
    def waiting(self) -> bool:
        """Some submitted steps still wait on their expert call."""
        return bool(self.pending)

    def finish_turns(self, turns: Sequence[tuple[int, Sequence[int], Sequence[float]]]) -> tuple[list[int], list[int]]:
        """Book one policy turn per row ``(episode, token ids, sampling log-probs)`` and submit them.

        Returns ``(rejoin, ended)``: episodes whose step completed at once and go on (their
        observation is already appended), and episodes that ended (by the env, or cut by the token
        budget). The other submitted episodes are parked until :meth:`poll` / :meth:`wait`.
        """
        ended: list[int] = []
        indices, actions = [], []
        for i, ids, lps in turns:
            traj = self.trajs[i]
            traj.add_policy(ids, lps)
            traj.num_turns += 1
            natural = self.stop.ends_turn(ids)  # the one stop rule every engine shares
            if len(traj.prompt_ids) + len(traj.token_ids) >= self.budget and not natural:
                traj.truncated = traj.overlong = True  # cut by the token budget mid-turn
                ended.append(i)
            else:
                indices.append(i)
                actions.append(self.stop.turn_text(ids))
        if not indices:
            return [], ended
        t0, c0 = time.perf_counter(), time.thread_time()
        pending = self.vec.submit(indices, actions)
        self._count(t0, c0)
        self.submits += 1
        if pending.waiting:
            self.pending.append(pending)
        rejoin, over = self._book(pending.completed)
        return rejoin, ended + over

    def poll(self) -> tuple[list[int], list[int]]:
        """Collect every submitted step whose expert call returned; ``(rejoin, ended)`` as above."""
        rejoin: list[int] = []
        ended: list[int] = []
        for pending in [p for p in self.pending if p.ready()]:
            r, e = self._collect(pending)
            rejoin += r
            ended += e
        return rejoin, ended

    def wait(self, poll_s: float = 0.0005) -> tuple[list[int], list[int]]:
        """Block until at least one submitted step is ready (nothing else can run), then :meth:`poll`."""
        while self.pending and not any(p.ready() for p in self.pending):
            time.sleep(poll_s)
        return self.poll()

    def wait_all(self) -> tuple[list[int], list[int]]:
        """Collect every submitted step (blocking): the lock-step engines' end of a turn."""
        rejoin: list[int] = []
        ended: list[int] = []
        while self.pending:
            r, e = self._collect(self.pending[0])
            rejoin += r
            ended += e
        return rejoin, ended

    def drain(self) -> None:
        """Complete every submitted step without booking it (after a failure: nothing stays in flight)."""
        while self.pending:
            self.vec.collect(self.pending.pop())

    def _count(self, wall0: float, cpu0: float) -> None:
        self.env_seconds += time.perf_counter() - wall0
        self.env_cpu_seconds += time.thread_time() - cpu0

    def _collect(self, pending: PendingStep) -> tuple[list[int], list[int]]:
        self.pending.remove(pending)
        t0, c0 = time.perf_counter(), time.thread_time()
        results = self.vec.collect(pending)
        self._count(t0, c0)
        return self._book({i: r for i, r in results.items() if i not in pending.completed})

    def _book(self, results: dict[int, StepResult]) -> tuple[list[int], list[int]]:
        """Record env steps; append each going-on episode's observation tokens (loss mask 0)."""
        rejoin: list[int] = []
        ended: list[int] = []
        for i, result in results.items():
            traj, info = self.trajs[i], result.info
            traj.infos.append(info)
            traj.reward += result.reward
            traj.terminated, traj.truncated = result.terminated, result.truncated
            traj.consults = info["consults"]
            if result.terminated or result.truncated:
                traj.correct = info["correct"]
                ended.append(i)
                continue
            obs_ids = self.encode_observation(result.observation)
            if len(traj.prompt_ids) + len(traj.token_ids) + len(obs_ids) >= self.budget:
                traj.truncated = traj.overlong = True  # no room left for a single policy token
                ended.append(i)
                continue
            traj.add_observation(obs_ids)
            rejoin.append(i)
        return rejoin, ended
