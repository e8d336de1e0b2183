"""Held-out evaluation with consultation off (DESIGN §1, §8).

Per problem, ``k`` samples are rolled out through ``EAPO-Math-Eval-v0`` vector envs (evaluation
prompt; a consult is answered "consultation disabled", no expert is ever called). Reported:

* ``score_mean`` — the paper's "Pass@k" (e.g. Pass@32): the **mean of the k scores** of each
  problem, averaged over problems. ``accuracy`` is the same number.
* ``score_variance`` — the per-problem variance of the k scores (population variance, ddof = 0:
  ``m(1 - m)`` for 0/1 scores), averaged over problems.
* ``pass_at`` — the unbiased pass@k estimator of Chen et al. (2021),
  ``1 - C(n - c, k) / C(n, k)`` per problem (n samples, c correct), averaged, for each requested k.
* ``ci95`` — a 95% percentile-bootstrap CI of ``score_mean`` over problems (2000 resamples,
  seeded), and ``ci95_normal`` — the normal approximation ``mean ± 1.96 s / sqrt(P)``.
* ``consult_attempt_rate`` — share of episodes where the policy tried to consult (refused by
  construction: ``expert_call_rate`` is 0), ``response_tokens`` / ``policy_tokens`` per episode.

A per-problem table is written to ``<out>/eval_problems.csv`` and the summary to ``eval.json``.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.eval_config import EvalConfig, eval_env_id
from agents.stats import ci95_bootstrap, ci95_normal

EVAL_JSON = "eval.json"
EVAL_CSV = "eval_problems.csv"


# ------------------------------------------------------------------------------ pure statistics


def pass_at_k_unbiased(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem: ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021).

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k / i)`` (numerically stable). ``k > n`` is an error.

    >>> pass_at_k_unbiased(10, 0, 1), pass_at_k_unbiased(10, 10, 5), round(pass_at_k_unbiased(4, 1, 2), 4)
    (0.0, 1.0, 0.5)
    """
    if not (0 <= c <= n) or n < 1:
        raise ValueError(f"need 0 <= c <= n and n >= 1, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def default_pass_ks(k: int) -> tuple[int, ...]:
    """The pass@k values reported for ``k`` samples when none are asked for: 1, the powers of 2 below
    ``k``, and ``k`` itself.

    >>> default_pass_ks(8), default_pass_ks(32), default_pass_ks(12), default_pass_ks(1)
    ((1, 2, 4, 8), (1, 2, 4, 8, 16, 32), (1, 2, 4, 8, 12), (1,))
    """
    if k < 1:
        raise ValueError(f"k (samples per problem) must be >= 1, got {k}")
    return tuple(sorted({1, k} | {2**i for i in range(1, k.bit_length()) if 2**i < k}))


def check_pass_ks(pass_ks: Sequence[int], k: int) -> tuple[int, ...]:
    """``pass_ks`` sorted and deduplicated, or a ``ValueError`` naming every value outside ``[1, k]``.

    A pass@j needs at least j samples per problem; a value it cannot estimate is an error here, so
    it is never silently missing from the results.

    >>> check_pass_ks([8, 1, 8], 8)
    (1, 8)
    >>> check_pass_ks([1, 8, 32], 8)
    Traceback (most recent call last):
    ...
    ValueError: pass@k needs k <= the samples per problem (8); cannot estimate pass@32
    """
    bad = sorted({int(j) for j in pass_ks if not 1 <= int(j) <= k})
    if bad:
        what = ", ".join(f"pass@{j}" for j in bad)
        raise ValueError(f"pass@k needs k <= the samples per problem ({k}); cannot estimate {what}")
    return tuple(sorted({int(j) for j in pass_ks}))


def score_stats(scores: Sequence[Sequence[float]]) -> dict[str, float]:
    """Mean of per-problem mean scores and mean of per-problem (ddof 0) variances.

    >>> score_stats([[1, 0, 1, 0], [1, 1, 1, 1]])
    {'score_mean': 0.75, 'score_variance': 0.125, 'num_problems': 2}
    """
    if not scores or any(len(s) == 0 for s in scores):
        raise ValueError("every problem needs at least one score")
    means = [float(np.mean(s)) for s in scores]
    variances = [float(np.var(s)) for s in scores]
    return {
        "score_mean": float(np.mean(means)),
        "score_variance": float(np.mean(variances)),
        "num_problems": len(scores),
    }


# ------------------------------------------------------------------------------ result


@dataclass
class ProblemRow:
    """One held-out problem's line of the CSV."""

    problem_id: str
    n: int
    correct: int
    mean_score: float
    variance: float
    pass_at: dict[str, float]
    response_tokens: float
    policy_tokens: float
    consult_attempts: float
    answered: float


@dataclass
class EvalResult:
    k: int
    num_problems: int
    score_mean: float
    score_variance: float
    ci95: tuple[float, float]
    ci95_normal: tuple[float, float]
    pass_at: dict[str, float]
    consult_attempt_rate: float
    expert_call_rate: float
    response_tokens: float
    policy_tokens: float
    answered_rate: float
    seconds: float
    problems: list[ProblemRow] = field(default_factory=list, repr=False)
    env_id: str = ""
    """The evaluation env id the episodes ran on (``EAPO-Math-Eval-v0`` unless a task's id was given)."""

    @property
    def accuracy(self) -> float:
        return self.score_mean

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (without the per-problem rows)."""
        d = asdict(self)
        d.pop("problems")
        d["accuracy"] = self.score_mean
        d["ci95"] = list(self.ci95)
        d["ci95_normal"] = list(self.ci95_normal)
        return d

    def describe(self) -> str:
        lo, hi = self.ci95
        passes = ", ".join(f"pass@{k} {v:.3f}" for k, v in self.pass_at.items())
        return (
            f"Pass@{self.k} (mean score) {self.score_mean:.3f} [95% CI {lo:.3f}-{hi:.3f}] over {self.num_problems} "
            f"problems x {self.k} samples; per-problem variance {self.score_variance:.3f}; {passes}; "
            f"consult attempts {self.consult_attempt_rate:.2f}/episode share (experts called: 0); "
            f"{self.policy_tokens:.1f} policy tokens/episode; {self.seconds:.1f}s"
        )

    def write(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / EVAL_JSON).write_text(json.dumps(self.summary(), indent=2) + "\n")
        write_problem_csv(self.problems, out / EVAL_CSV)


def write_problem_csv(rows: Sequence[ProblemRow], path: str | Path) -> None:
    ks = sorted({k for r in rows for k in r.pass_at}, key=int)
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "problem_id",
                "n",
                "correct",
                "mean_score",
                "variance",
                *[f"pass@{k}" for k in ks],
                "response_tokens",
                "policy_tokens",
                "consult_attempts",
                "answered",
            ]
        )
        for r in rows:
            w.writerow(
                [
                    r.problem_id,
                    r.n,
                    r.correct,
                    f"{r.mean_score:.6g}",
                    f"{r.variance:.6g}",
                    *[f"{r.pass_at[k]:.6g}" for k in ks],
                    f"{r.response_tokens:.6g}",
                    f"{r.policy_tokens:.6g}",
                    f"{r.consult_attempts:.6g}",
                    f"{r.answered:.6g}",
                ]
            )


def summarize(
    problem_ids: Sequence[str],
    episodes: Sequence[Sequence[dict[str, Any]]],
    k: int,
    pass_ks: Sequence[int] = (1,),
    seconds: float = 0.0,
) -> EvalResult:
    """Aggregate per-episode records (``score``, ``correct``, ``response_tokens``, ``policy_tokens``,
    ``consult_attempts``, ``answered``, ``expert_calls``) grouped by problem into an :class:`EvalResult`."""
    pass_ks = check_pass_ks(pass_ks, min((len(eps) for eps in episodes), default=k))
    rows: list[ProblemRow] = []
    for pid, eps in zip(problem_ids, episodes):
        scores = [float(e["score"]) for e in eps]
        n, c = len(eps), sum(bool(e["correct"]) for e in eps)
        rows.append(
            ProblemRow(
                problem_id=str(pid),
                n=n,
                correct=c,
                mean_score=float(np.mean(scores)),
                variance=float(np.var(scores)),
                pass_at={str(j): pass_at_k_unbiased(n, c, j) for j in pass_ks if j <= n},
                response_tokens=float(np.mean([e["response_tokens"] for e in eps])),
                policy_tokens=float(np.mean([e["policy_tokens"] for e in eps])),
                consult_attempts=float(np.mean([e["consult_attempts"] > 0 for e in eps])),
                answered=float(np.mean([bool(e["answered"]) for e in eps])),
            )
        )
    stats = score_stats([[float(e["score"]) for e in eps] for eps in episodes])
    means = [r.mean_score for r in rows]
    all_eps = [e for eps in episodes for e in eps]
    return EvalResult(
        k=k,
        num_problems=len(rows),
        score_mean=stats["score_mean"],
        score_variance=stats["score_variance"],
        ci95=ci95_bootstrap(means),
        ci95_normal=ci95_normal(means),
        pass_at={
            str(j): float(np.mean([r.pass_at[str(j)] for r in rows]))
            for j in pass_ks
            if all(str(j) in r.pass_at for r in rows)
        },
        consult_attempt_rate=float(np.mean([e["consult_attempts"] > 0 for e in all_eps])),
        expert_call_rate=float(np.mean([e.get("expert_calls", 0) > 0 for e in all_eps])),
        response_tokens=float(np.mean([e["response_tokens"] for e in all_eps])),
        policy_tokens=float(np.mean([e["policy_tokens"] for e in all_eps])),
        answered_rate=float(np.mean([bool(e["answered"]) for e in all_eps])),
        seconds=seconds,
        problems=rows,
    )


# ------------------------------------------------------------------------------ running it


def heldout_problems(spec: Any, num_problems: int, seed: int = 1, env_id: str = "") -> list[Any]:
    """The first ``num_problems`` problems of ``spec``: ``load_problems(spec, seed=seed)``, or, when
    ``env_id`` names a task's env (its spec's ``kwargs["task"]``, e.g. ``EAPO-QA-Eval-v0``), that task's
    ``problems(spec)`` (there ``seed`` is not used: a task's spec carries its own, ``generated@<seed>``)."""
    import gymnasium as gym

    from eapo_env.problems import load_problems
    from eapo_env.tasks import resolve_task

    task = gym.spec(eval_env_id(env_id)).kwargs.get("task")
    source = load_problems(spec, seed=seed) if task in (None, "math") else resolve_task(task).problems(spec)
    return [source[i] for i in range(min(num_problems, len(source)))]


def evaluate(
    model: Any, tokenizer: Any, problems: Any, settings: EvalConfig | None = None, out_dir: str | Path | None = None
) -> EvalResult:
    """Evaluate a policy with consultation off: ``settings.k`` samples for each held-out problem.

    Args:
        model, tokenizer: the policy (``agents.policy.load_policy``).
        problems: a spec (the first ``settings.num_problems`` of ``load_problems(spec, seed=problems_seed)``)
            or a list of :class:`~eapo_env.problems.Problem` (used as given).
        settings: the evaluation knobs (:class:`~agents.eval_config.EvalConfig`; its defaults when ``None``).
            A ``pass_ks`` k outside ``[1, k]`` is a ``ValueError`` before any rollout
            (:func:`default_pass_ks` gives the CLI's default).
        out_dir: when given, ``eval.json`` and ``eval_problems.csv`` are written there.
    """
    import functools

    import torch

    from agents.device import pick_device
    from agents.policy.tokenizer import encode_prompt, encode_segment
    from agents.rollout import make_engine

    t0 = time.perf_counter()
    s = settings if settings is not None else EvalConfig()
    pass_ks = check_pass_ks(s.pass_ks, s.k)  # before any rollout: a bad request fails in a second, not after
    if isinstance(problems, (list, tuple)) and problems and not isinstance(problems[0], (str, dict)):
        plist = list(problems)
    else:
        plist = heldout_problems(problems, s.num_problems, s.problems_seed, s.env_id)
    device = pick_device(s.device) if s.device is not None else next(model.parameters()).device
    prompt_ids, obs_ids = functools.partial(encode_prompt, tokenizer), functools.partial(encode_segment, tokenizer)
    sampling = dict(temperature=s.temperature, top_p=s.top_p, max_turn_tokens=s.max_turn_tokens, seed=s.seed)
    budget = dict(max_total_tokens=s.max_total_tokens, device=device)
    eng = make_engine(
        s.engine, model, tokenizer, encode_prompt=prompt_ids, encode_observation=obs_ids, **sampling, **budget
    )
    was_training = model.training
    model.eval()
    env_kwargs = dict(problems=plist, max_turns=s.max_turns, eval_max_turns=s.max_turns, max_experts=s.max_experts)
    env_id = eval_env_id(s.env_id)
    with torch.no_grad():
        episodes = _roll_out(eng, plist, s.k, s.batch_episodes, s.seed, env_kwargs, env_id)
    model.train(was_training)
    result = summarize([p.id for p in plist], episodes, s.k, pass_ks, seconds=time.perf_counter() - t0)
    result.env_id = env_id
    if out_dir is not None:
        result.write(out_dir)
    return result


def _roll_out(
    eng: Any, plist: list[Any], k: int, batch_episodes: int, seed: int, env_kwargs: dict[str, Any], env_id: str
) -> list[list[dict[str, Any]]]:
    """``k`` episodes of every problem through ``env_id`` vector envs of ``batch_episodes``
    envs (one more for a smaller last chunk); per problem, its episode records."""
    import gymnasium as gym

    jobs = [(i, j) for i in range(len(plist)) for j in range(k)]
    n_envs = min(batch_episodes, len(jobs))
    vecs: dict[int, Any] = {}  # chunk size -> vector env
    episodes: list[list[dict[str, Any]]] = [[] for _ in plist]
    rng = np.random.default_rng([seed, 0xE7A1])
    for start in range(0, len(jobs), n_envs):
        chunk = jobs[start : start + n_envs]
        if len(chunk) not in vecs:
            vecs[len(chunk)] = gym.make_vec(env_id, num_envs=len(chunk), **env_kwargs)
        trajs = eng.rollout(
            vecs[len(chunk)],
            seeds=rng.integers(2**31 - 1, size=len(chunk)).tolist(),
            options=[{"problem": plist[i]} for i, _ in chunk],
            group_ids=[i for i, _ in chunk],
            seed=int(rng.integers(2**62)),
        )
        for (i, _), t in zip(chunk, trajs):
            episodes[i].append(_episode_record(t))
    for vec in vecs.values():
        vec.close()
    return episodes


def _episode_record(t: Any) -> dict[str, Any]:
    """One evaluation episode's record for :func:`summarize`, read from the typed step infos."""
    return {
        "score": float(t.reward),
        "correct": t.correct,
        "response_tokens": len(t.token_ids),
        "policy_tokens": t.num_policy_tokens,
        "consult_attempts": sum(info["action"] == "consult" for info in t.infos),
        "expert_calls": sum(info["accepted"] for info in t.infos),
        "answered": t.terminated,
    }


def evaluate_policy_dir(
    policy: str | Path, problems: Any, settings: EvalConfig | None = None, out_dir: str | Path | None = None
) -> EvalResult:
    """Load a policy directory on ``settings.device`` (``cpu`` when ``None``) and :func:`evaluate` it."""
    from agents.policy import load_policy

    settings = settings if settings is not None else EvalConfig()
    model, tokenizer = load_policy(policy, device=settings.device or "cpu")
    return evaluate(model, tokenizer, problems, settings.replace(device=None), out_dir=out_dir)


def evaluate_config(
    model: Any, tokenizer: Any, config: Any, out_dir: str | Path | None = None, problems: Any = None
) -> EvalResult:
    """:func:`evaluate` with a :class:`~agents.config.TrainConfig`'s evaluation settings (``config.evaluation()``)."""
    return evaluate(
        model, tokenizer, config.eval_problems if problems is None else problems, config.evaluation(), out_dir
    )
