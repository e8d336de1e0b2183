"""The methods compared in the paper, runnable from one :class:`~agents.config.TrainConfig` (DESIGN §8).

``config.method`` picks one:

* ``base`` — evaluate the policy as is (held-out, consultation off).
* ``self_explore`` — self-exploratory RL: the same learner, consultation off (the run trains on
  ``EAPO-Math-Eval-v0``: evaluation prompt, consults refused, no expert called).
* ``eapo`` — RL with consultation, p(t) and the turn budget annealed.
* ``distill_sft`` — distillation SFT on expert trajectories: the expert answers each training
  question, replies whose extracted answer verifies correct (rejection sampling) become
  ``[evaluation prompt, expert solution + <answer>]`` traces, :func:`agents.sft.sft_train`
  trains on them (LoRA when ``lora_r`` > 0), then the result is evaluated.
* ``expert_workflow`` — offline, evaluation-time: each held-out question is shown together with
  ``max_experts`` replies of the expert to it (K replicas, one experts block in the prompt); the
  policy answers alone. No training. With ``expert = "policy"`` this is the paper's
  **self-collaboration** workflow: the replicas are the policy itself (``agents/configs/self_collab.toml``).

``expert = "policy"`` with no ``policy_dir`` in ``expert_kwargs`` means "replicas of this run's
starting policy" (:func:`with_policy_expert`): the homogeneous pool of Table 3 and the replicas of
self-collaboration are frozen copies of the base, as in the paper.

Every runner writes ``<out>/result.json`` and returns the same dict: ``method``, ``eval`` (the
:meth:`~agents.evaluation.EvalResult.summary` of the final policy, when evaluated), ``policy_dir``,
``seconds``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.config import TrainConfig
from agents.eval_config import EvalConfig
from agents.methods import register, runner

RESULT_FILE = "result.json"
Log = Callable[[str], None]
Result = dict[str, Any]


def _finish(out: Path, result: dict[str, Any]) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT_FILE).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def _evaluate_dir(config: TrainConfig, policy_dir: Path, out: Path, problems: Any = None) -> dict[str, Any]:
    import torch

    from agents.device import pick_device
    from agents.evaluation import evaluate_config
    from agents.policy import load_policy

    if config.threads:
        torch.set_num_threads(config.threads)
    model, tokenizer = load_policy(policy_dir, device=pick_device(config.device))  # auto: CUDA when present
    return evaluate_config(model, tokenizer, config, out_dir=out, problems=problems).summary()


@register("base")
def run_base(config: TrainConfig, out_dir: str | Path, log: Log = print, **_: Any) -> Result:
    from agents.trainer import resolve_policy

    t0 = time.perf_counter()
    out = Path(out_dir)
    policy = resolve_policy(config, out, log)
    ev = _evaluate_dir(config, policy, out / "eval")
    return _finish(out, {"method": "base", "policy_dir": str(policy), "eval": ev, "seconds": time.perf_counter() - t0})


@register("eapo", "self_explore")
def run_rl(config: TrainConfig, out_dir: str | Path, resume: bool = False, log: Log = print, **_: Any) -> Result:
    """``eapo`` and ``self_explore``: :func:`agents.trainer.train`, then the held-out evaluation."""
    from agents.trainer import resolve_policy, train

    if config.method == "self_explore" and config.consultation:
        config = config.replace(consultation=False)
    t0 = time.perf_counter()
    out = Path(out_dir)
    if config.expert == "policy" and config.consultation:  # the homogeneous pool: replicas of the start
        config = with_policy_expert(config, resolve_policy(config, out, log))
    res = train(config, out, resume=resume, log=log)
    result: dict[str, Any] = {
        "method": config.method,
        "policy_dir": str(res.policy_dir),
        "steps": res.steps,
        "start_step": res.start_step,
        "train_seconds": res.seconds,
        "last": res.last,
    }
    from agents import distributed

    if config.final_eval and distributed.is_main():  # under torchrun rank 0 evaluates and writes alone
        t1 = time.perf_counter()
        result["eval"] = _evaluate_dir(config, res.policy_dir, out / "eval")
        result["eval_seconds"] = time.perf_counter() - t1
    result["seconds"] = time.perf_counter() - t0
    return _finish(out, result) if distributed.is_main() else result


def with_policy_expert(config: TrainConfig, policy_dir: str | Path) -> TrainConfig:
    """``config`` whose ``policy`` expert (if any) samples from ``policy_dir`` when it names no directory."""
    if config.expert != "policy" or config.expert_kwargs.get("policy_dir"):
        return config
    return config.replace(expert_kwargs={**config.expert_kwargs, "policy_dir": str(policy_dir)})


def expert_replies(
    config: TrainConfig, problems: Sequence[Any], query: Callable[[Any], str] | None = None, replicas: int = 1
) -> list[list[str | None]]:
    """``replicas`` replies of ``config.expert`` per problem (to the question itself by default), in one
    batch; each replica has its own request id, so sampling experts answer independently."""
    return replies_of(config.expert, config.expert_kwargs, problems, query, replicas)


def replies_of(
    expert_name: str,
    expert_kwargs: dict[str, Any],
    problems: Sequence[Any],
    query: Callable[[Any], str] | None = None,
    replicas: int = 1,
) -> list[list[str | None]]:
    """:func:`expert_replies` for an expert given by name and keyword arguments (``None``: not ok)."""
    from eapo_env.experts import ExpertRequest, consult_blocking, make_expert

    expert = make_expert(expert_name, **expert_kwargs)
    requests = [
        ExpertRequest(f"baseline/{i}/{j}", p, query(p) if query else p.question)
        for i, p in enumerate(problems)
        for j in range(replicas)
    ]
    replies = [r.text if r.status == "ok" else None for r in consult_blocking(expert, requests, timeout_s=600.0)]
    return [replies[i * replicas : (i + 1) * replicas] for i in range(len(problems))]


def distillation_traces(
    config: TrainConfig, max_reply_chars: int = 240
) -> tuple[list[list[tuple[str, str]]], dict[str, int]]:
    """Expert trajectories on training problems, kept when the expert's answer verifies correct."""
    from eapo_env import prompts
    from eapo_env.problems import load_problems
    from eapo_env.verify import extract_answer, verify

    source = load_problems(config.problems, seed=config.problems_seed)
    problems = [source[i] for i in range(min(config.distill_num_problems, len(source)))]
    traces, rejected = [], 0
    for p, (reply,) in zip(problems, expert_replies(config, problems)):
        answer = extract_answer(reply) if reply else None
        if not reply or not answer or not verify(answer, p.answer).correct:
            rejected += 1
            continue
        text = reply if len(reply) <= max_reply_chars else reply[-max_reply_chars:]
        prompt = prompts.render_prompt(
            p.question, eval_mode=True, max_experts=config.max_experts, max_turns=config.max_turns
        )
        traces.append([("prompt", prompt), ("policy", f"{text.strip()} <answer>{answer}</answer>")])
    return traces, {"problems": len(problems), "kept": len(traces), "rejected": rejected}


@register("distill_sft")
def run_distill_sft(config: TrainConfig, out_dir: str | Path, log: Log = print, **_: Any) -> Result:
    import torch

    from agents.policy import load_policy
    from agents.policy.directory import write_policy_dir
    from agents.sft import sft_train
    from agents.trainer import resolve_policy

    t0 = time.perf_counter()
    out = Path(out_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    policy = resolve_policy(config, out, log)
    model, tokenizer = load_policy(policy)
    traces, counts = distillation_traces(with_policy_expert(config, policy))
    if not traces:
        raise RuntimeError(f"no expert trajectory verified correct ({counts}); nothing to distill")
    log(
        f"distill_sft: {counts['kept']} expert trajectories ({counts['rejected']} rejected), "
        f"{config.distill_steps} SFT steps"
    )
    res = sft_train(
        model,
        tokenizer,
        traces,
        steps=config.distill_steps,
        lr=config.distill_lr,
        lora_r=config.lora_r or None,
        lora_alpha=config.lora_alpha or None,
        seed=config.seed,
    )
    final = write_policy_dir(
        out / "final_policy", res.model, tokenizer, written_by="sft", source=policy,
        details={"method": "distill_sft", "steps": config.distill_steps, "lora_r": config.lora_r or None},
    )  # fmt: skip
    result: Result = {
        "method": "distill_sft",
        "policy_dir": str(final),
        "traces": counts,
        "sft_loss_first": res.losses[0],
        "sft_loss_last": res.losses[-1],
        "sft_seconds": res.seconds,
    }
    if config.final_eval:
        result["eval"] = _evaluate_dir(config, final, out / "eval")
    result["seconds"] = time.perf_counter() - t0
    return _finish(out, result)


def workflow_problems(config: TrainConfig) -> list[Any]:
    """Held-out problems whose question carries ``max_experts`` expert replies (one experts block)."""
    from agents.evaluation import heldout_problems

    problems = heldout_problems(config.eval_problems, config.eval_num_problems, config.eval_problems_seed)
    return with_expert_replies(problems, expert_replies(config, problems, replicas=config.max_experts))


def with_expert_replies(problems: Sequence[Any], replies: Sequence[Sequence[str | None]]) -> list[Any]:
    """The expert-assisted workflow's input: each question followed by its replies as one experts
    block (exactly what the ``workflow`` SFT traces of :mod:`agents.traces` show the policy)."""
    from eapo_env import prompts

    return [
        dataclasses.replace(p, question=p.question + prompts.render_experts_block(r)) for p, r in zip(problems, replies)
    ]


@register("expert_workflow")
def run_expert_workflow(config: TrainConfig, out_dir: str | Path, log: Log = print, **_: Any) -> Result:
    from agents.trainer import resolve_policy

    t0 = time.perf_counter()
    out = Path(out_dir)
    policy = resolve_policy(config, out, log)
    ev = _evaluate_dir(config, policy, out / "eval", problems=workflow_problems(with_policy_expert(config, policy)))
    return _finish(
        out, {"method": "expert_workflow", "policy_dir": str(policy), "eval": ev, "seconds": time.perf_counter() - t0}
    )


@dataclasses.dataclass
class WorkflowComparison:
    """``eapo eval --expert``: the policy with an expert's reply in its prompt, beside the policy alone.

    The paper's precondition (the expert-assisted workflow beats the base, +6.86 points) is what
    ``gain`` measures: the mean over problems of (score with the reply - score alone), paired per
    problem, with a bootstrap 95% CI. Consultation stays off in both: the reply is in the prompt.
    """

    expert: str
    replies: int
    with_expert: Any  # agents.evaluation.EvalResult
    alone: Any = None  # agents.evaluation.EvalResult, when compared
    gain: float = float("nan")
    gain_ci95: tuple[float, float] = (float("nan"), float("nan"))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "expert": self.expert,
            "replies": self.replies,
            "with_expert": self.with_expert.summary(),
        }
        if self.alone is not None:
            out.update(alone=self.alone.summary(), gain=self.gain, gain_ci95=list(self.gain_ci95))
        return out

    def describe(self) -> str:
        head = f"with expert {self.expert!r} ({self.replies} reply in the prompt): {self.with_expert.describe()}"
        if self.alone is None:
            return head
        lo, hi = self.gain_ci95
        return (
            f"{'':<24}{'alone':>10}{'with ' + self.expert:>18}\n"
            f"{'Pass@k (mean score)':<24}{self.alone.score_mean:>10.3f}{self.with_expert.score_mean:>18.3f}\n"
            f"{'answered rate':<24}{self.alone.answered_rate:>10.3f}{self.with_expert.answered_rate:>18.3f}\n"
            f"{'policy tokens/episode':<24}{self.alone.policy_tokens:>10.1f}{self.with_expert.policy_tokens:>18.1f}\n"
            f"workflow - alone: {100 * self.gain:+.1f} points [95% CI {100 * lo:+.1f}, {100 * hi:+.1f}] "
            f"over {self.with_expert.num_problems} problems x {self.with_expert.k} samples"
        )


def compare_workflow(
    model: Any,
    tokenizer: Any,
    problems: Any,
    expert: str,
    expert_kwargs: dict[str, Any] | None = None,
    settings: EvalConfig | None = None,
    *,
    replies: int = 1,
    compare_alone: bool = True,
) -> WorkflowComparison:
    """Evaluate the expert-assisted workflow on held-out problems (and the policy alone on the same ones).

    ``replies`` replies of ``expert`` to each question go in its prompt as one experts block (a
    deterministic expert gives the same text each time, so 1 is the default); ``settings`` is both
    evaluations' :class:`~agents.eval_config.EvalConfig` (``num_problems`` / ``problems_seed`` pick a spec's problems).
    """
    from agents.evaluation import ci95_bootstrap, evaluate, heldout_problems

    if replies < 1:
        raise ValueError(f"replies must be >= 1, got {replies}")
    settings = settings if settings is not None else EvalConfig()
    plain = (
        problems
        if isinstance(problems, list)
        else heldout_problems(problems, settings.num_problems, settings.problems_seed)
    )
    shown = with_expert_replies(plain, replies_of(expert, dict(expert_kwargs or {}), plain, replicas=replies))
    with_expert = evaluate(model, tokenizer, shown, settings)
    result = WorkflowComparison(expert, replies, with_expert)
    if compare_alone:
        result.alone = evaluate(model, tokenizer, plain, settings)
        diffs = [w.mean_score - a.mean_score for w, a in zip(with_expert.problems, result.alone.problems)]
        result.gain = with_expert.score_mean - result.alone.score_mean
        result.gain_ci95 = ci95_bootstrap(diffs)
    return result


def run(config: TrainConfig, out_dir: str | Path, resume: bool = False, log: Log = print) -> Result:
    """Run ``config.method`` into ``out_dir``; returns (and writes) its result dict."""
    return runner(config.method)(config, out_dir, resume=resume, log=log)
