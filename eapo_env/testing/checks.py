"""``check_eapo_env``: the env semantics of DESIGN §3 as one call, on top of Gymnasium's ``check_env``.

Give it what builds your env — a registered id (``"EAPO-Math-v0"``) plus your ``wrappers``, or a
factory — and it checks, each as a hypothesis property over drawn policy turns (see
:data:`PROPERTIES`, in this order):

``gymnasium_check_env``      Gymnasium's ``check_env`` passes on the wrapped env.
``info_contract``            ``info`` keys and types, a fresh dict per call, bool flags, consistent counts.
``determinism``              same seed and turns, deterministic expert: the same obs, rewards, flags,
                             ``info`` and transcripts (global RNGs seeded differently per run).
``finished_episode_raises``  ``step`` after termination or truncation raises.
``eval_mode_never_consults`` evaluation mode never calls an expert.
``acceptance_zero``          p = 0: no expert call, every experts-block entry ``unavailable``.
``rewards_on_answers_only``  finite rewards, 0 on every non-answer turn (unless ``shaping=True``).
``budget_truncates``         the turn budget truncates exactly when spent, with reward 0.
``transcript_provenance``    every transcript segment's source (prompt, policy, expert, env).
``vector_parity``            ``gym.make_vec(id, N, env_wrappers=W)`` ≡ N single envs with ``W`` (ids only).

A failure raises :class:`EAPOEnvCheckError` naming the property, with hypothesis's shrunk (minimal)
counterexample: the script of turns that breaks it.

**Shaping.** A wrapper that pays or charges on non-answer turns (``ConsultPenalty``, a length
penalty) declares it with ``shaping=True``: then ``rewards_on_answers_only`` checks only that rewards
are finite, and ``budget_truncates`` does not require reward 0 on the truncated turn.

**Experts.** The checker passes its own ``expert=`` to every env it builds: a fresh
:class:`~eapo_env.testing.experts.FaultyExpert` (deterministic, counts calls, faults on marked queries),
or ``expert()`` when you give a factory of your own deterministic expert (wrap it in
:class:`~eapo_env.testing.experts.CountingExpert` if it does not count calls).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from eapo_env.testing.episodes import EnvWrapper, apply_wrappers, episode_scripts, parity_scripts
from eapo_env.testing.experts import FaultyExpert
from eapo_env.testing.parity import check_vector_parity
from eapo_env.testing.properties import (
    Target,
    check_acceptance_zero,
    check_budget_truncates,
    check_determinism,
    check_eval_mode_never_consults,
    check_finished_episode_raises,
    check_info_contract,
    check_rewards_on_answers_only,
    check_transcript_provenance,
)

PROPERTIES: tuple[str, ...] = (
    "gymnasium_check_env",
    "info_contract",
    "determinism",
    "finished_episode_raises",
    "eval_mode_never_consults",
    "acceptance_zero",
    "rewards_on_answers_only",
    "budget_truncates",
    "transcript_provenance",
    "vector_parity",
)
_SCRIPTED: dict[str, Callable[[Target, Any], None]] = {
    "info_contract": check_info_contract,
    "determinism": check_determinism,
    "finished_episode_raises": check_finished_episode_raises,
    "eval_mode_never_consults": check_eval_mode_never_consults,
    "acceptance_zero": check_acceptance_zero,
    "rewards_on_answers_only": check_rewards_on_answers_only,
    "budget_truncates": check_budget_truncates,
    "transcript_provenance": check_transcript_provenance,
    "vector_parity": check_vector_parity,
}
#: The attributes of ``env.unwrapped`` the properties read (DESIGN §10).
EAPO_ATTRIBUTES = ("problem", "transcript", "acceptance_prob", "max_turns", "eval_mode", "max_experts")


class EAPOEnvCheckError(AssertionError):
    """A property of the EAPO env contract failed.

    Attributes:
        property_name: which one (a name of :data:`PROPERTIES`).
        counterexample: the minimal drawn script that breaks it (``None`` for ``gymnasium_check_env``).
        detail: what was seen.
    """

    def __init__(self, property_name: str, counterexample: Any, detail: str) -> None:
        self.property_name = property_name
        self.counterexample = counterexample
        self.detail = detail
        super().__init__(f"{property_name}: {detail}\n  counterexample: {counterexample!r}")


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_eapo_env` checked: the properties that passed, those skipped (with why), the
    examples drawn per property, and the warnings Gymnasium's checker gave."""

    env: str
    passed: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    max_examples: int
    warnings: tuple[str, ...]


def _target(
    env: str | Callable[..., gym.Env[Any, Any]],
    wrappers: Sequence[EnvWrapper],
    env_kwargs: Mapping[str, Any],
    expert: Callable[[], Any] | None,
    shaping: bool,
) -> Target:
    if isinstance(env, gym.Env):
        raise TypeError(
            "check_eapo_env needs to build fresh envs (two runs for determinism, N for a vector env): pass "
            "the env id (check_eapo_env('EAPO-Math-v0', wrappers=[...])) or a factory (**kwargs -> env), not an env"
        )
    if "expert" in env_kwargs:
        raise ValueError(
            "the checker passes its own deterministic expert: give expert=<factory>, not env_kwargs['expert']"
        )
    if isinstance(env, str):
        gym.spec(env)  # a clear error for an unknown id
        env_id: str | None = env

        def build(e: Any) -> gym.Env[Any, Any]:
            return apply_wrappers(gym.make(env, expert=e, **env_kwargs), wrappers)

    elif callable(env):
        env_id = None

        def build(e: Any) -> gym.Env[Any, Any]:
            return apply_wrappers(env(expert=e, **env_kwargs), wrappers)

    else:
        raise TypeError(f"env must be an env id or a factory, got {type(env).__name__}")
    make_expert = expert if expert is not None else FaultyExpert
    probe = build(make_expert())
    base: Any = probe.unwrapped
    missing = [name for name in EAPO_ATTRIBUTES if not hasattr(base, name)]
    if missing:
        raise TypeError(f"{type(base).__name__} is not an EAPO env: env.unwrapped lacks {missing}")
    max_chars = int(getattr(probe.action_space, "max_length", 16_384))
    probe.close()
    return Target(
        build, make_expert, env_id, dict(env_kwargs), tuple(wrappers), shaping, int(base.max_experts), max_chars
    )


class _SpecHidden(gym.Wrapper[Any, Any, Any, Any]):
    """Hides ``env.spec`` from ``check_env``, for a stack whose spec cannot rebuild it."""

    @property
    def spec(self) -> Any:  # type: ignore[override]
        return None


def _checkable(env: gym.Env[Any, Any]) -> tuple[gym.Env[Any, Any], str | None]:
    """``env`` as ``check_env`` can take it. ``check_env`` rebuilds the env from ``env.spec``; a wrapper
    applied after ``gym.make`` that does not inherit Gymnasium's ``RecordConstructorArgs`` (most user
    wrappers) leaves a spec that cannot rebuild it. Then the spec is hidden (Gymnasium's spec-based
    checks are skipped) and a warning says so."""
    spec = env.spec
    if spec is None:
        return env, None
    try:
        spec.make().close()
    except Exception as exc:
        return _SpecHidden(env), f"gymnasium's spec-based checks skipped: env.spec cannot rebuild the env ({exc})"
    return env, None


def _run_gymnasium_check(target: Target) -> tuple[str, ...]:
    env, _ = target.fresh()
    checked, note = _checkable(env)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_env(checked, skip_render_check=True)
        except Exception as exc:
            raise EAPOEnvCheckError("gymnasium_check_env", None, f"{type(exc).__name__}: {exc}") from exc
        finally:
            env.close()
    seen = [str(w.message) for w in caught if "different from the unwrapped version" not in str(w.message)]
    return (*([note] if note else []), *seen)


def _run_property(
    name: str, strategy: st.SearchStrategy[Any], target: Target, max_examples: int, seed: int | None
) -> None:
    """Run one property under hypothesis; a failure becomes an :class:`EAPOEnvCheckError` with the
    shrunk example (hypothesis replays the minimal failing example last, so the last one seen is it)."""
    check = _SCRIPTED[name]
    seen: list[Any] = []

    def prop(example: Any) -> None:
        seen[:] = [example]
        check(target, example)

    test = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )(given(strategy)(prop))
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    try:
        test()
    except Exception as exc:
        detail = str(exc) if isinstance(exc, AssertionError) else f"the env raised {type(exc).__name__}: {exc}"
        raise EAPOEnvCheckError(name, seen[-1] if seen else None, detail) from exc


def check_eapo_env(
    env: str | Callable[..., gym.Env[Any, Any]],
    *,
    wrappers: Sequence[EnvWrapper] = (),
    env_kwargs: Mapping[str, Any] | None = None,
    expert: Callable[[], Any] | None = None,
    shaping: bool = False,
    skip: Collection[str] = (),
    max_examples: int = 25,
    max_turns: int = 12,
    num_envs: int = 3,
    seed: int | None = 0,
) -> CheckReport:
    """Check the EAPO env contract (DESIGN §3, §7) of ``env`` with ``wrappers``; see the module docs.

    Args:
        env: a registered id (``"EAPO-Math-v0"``, ``"EAPO-QA-Eval-v0"``, ...), or a factory called as
            ``env(expert=..., **env_kwargs)`` that returns a fresh EAPO env (no ``vector_parity`` then).
        wrappers: your wrappers (or ``env -> env`` callables), innermost first, applied to every env
            built (and passed to ``gym.make_vec`` as ``env_wrappers``).
        env_kwargs: keyword arguments for ``gym.make`` / the factory (``problems``, ``max_turns``, ...).
        expert: a factory of the deterministic expert to consult (default: ``FaultyExpert``); it must
            count its calls (``call_count``; see ``CountingExpert``).
        shaping: the wrappers pay rewards on non-answer turns (see the module docs).
        skip: names of :data:`PROPERTIES` not to check.
        max_examples: drawn scripts per property (each builds 1-3 fresh envs; a vector one for parity).
        max_turns: the most policy turns one drawn script holds.
        num_envs: the most envs of the vector env in ``vector_parity`` (at least 2 are drawn).
        seed: hypothesis's seed (reproducible runs); ``None``: a random one.

    Returns:
        A :class:`CheckReport`.

    Raises:
        EAPOEnvCheckError: a property failed (``property_name``, ``counterexample``, ``detail``).
        TypeError, ValueError: ``env`` cannot be built as an EAPO env, or bad arguments.

    Example:
        >>> import eapo_env
        >>> report = check_eapo_env("EAPO-Math-v0", env_kwargs={"problems": "generated:arithmetic"}, max_examples=3)
        >>> report.passed[:3]
        ('gymnasium_check_env', 'info_contract', 'determinism')
    """
    unknown = set(skip) - set(PROPERTIES)
    if unknown:
        raise ValueError(f"unknown properties {sorted(unknown)}; known: {PROPERTIES}")
    target = _target(env, wrappers, dict(env_kwargs or {}), expert, shaping)
    scripts = episode_scripts(target.max_experts, target.max_action_chars, max_turns)
    strategies: dict[str, st.SearchStrategy[Any]] = {name: scripts for name in _SCRIPTED}
    strategies["acceptance_zero"] = scripts.map(lambda s: replace(s, acceptance_prob=0.0))
    strategies["vector_parity"] = parity_scripts(max(2, num_envs), target.max_experts, target.max_action_chars)
    passed: list[str] = []
    skipped: list[tuple[str, str]] = [(name, "skip=") for name in PROPERTIES if name in skip]
    gym_warnings: tuple[str, ...] = ()
    for name in PROPERTIES:
        if name in skip:
            continue
        if name == "vector_parity" and target.env_id is None:
            skipped.append((name, "a factory was given: gym.make_vec needs a registered id"))
            continue
        if name == "gymnasium_check_env":
            gym_warnings = _run_gymnasium_check(target)
        else:
            _run_property(name, strategies[name], target, max_examples, seed)
        passed.append(name)
    label = target.env_id or str(getattr(env, "__name__", repr(env)))
    return CheckReport(label, tuple(passed), tuple(skipped), max_examples, gym_warnings)
