"""A custom expert backend: any object with ``async consult(requests) -> replies`` plugs in as ``expert=``.

The env hands an expert a *batch* of requests (all queries of a step, across every env of a vector
env) and expects one :class:`~eapo_env.experts.ExpertReply` per request, in order. A failed request
is a reply with ``status="timeout"`` or ``"error"`` (the policy then reads ``unavailable``), never an
exception. This one is a tiny rule-based tutor; a real backend would call a model server here.

Run:
    python examples/custom_expert.py

Example:
    >>> result = main(verbose=False)
    >>> result["batches"], result["reward"], result["unavailable"]
    ([4, 1], 1.0, 1)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

import eapo_env  # noqa: F401  (registers the ids)
from eapo_env.experts import ExpertReply, ExpertRequest


class HintExpert:
    """Replies with the first half of the reference answer's digits; refuses empty questions.

    Attributes:
        batch_sizes: the size of every batch it received (to see the batching at work).
    """

    name = "hint"

    def __init__(self, latency_s: float = 0.01) -> None:
        self.latency_s = latency_s
        self.batch_sizes: list[int] = []

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        self.batch_sizes.append(len(requests))
        await asyncio.sleep(self.latency_s)  # a network round trip, once per batch
        return [self._reply(request) for request in requests]

    def _reply(self, request: ExpertRequest) -> ExpertReply:
        if "?" not in request.query:
            return ExpertReply("", status="error", error="not a question", expert=self.name)
        answer = request.problem.answer
        hint = f"The answer starts with {answer[: max(1, len(answer) // 2)]!r}; it is {answer}."
        return ExpertReply(hint, latency_s=self.latency_s, tokens=len(hint) // 4, expert=self.name)


def main(verbose: bool = True) -> dict[str, Any]:
    """Two envs consult ``HintExpert`` in one step (one batch of 4 queries); then env 0 answers from the
    hint while env 1 asks a non-question (a batch of 1, answered with an error: ``unavailable``)."""
    expert = HintExpert()
    vec = gym.make_vec("EAPO-Math-v0", num_envs=2, problems="generated:arithmetic", expert=expert)
    vec.reset(seed=0)
    query = "<consult><query>What is the answer?</query><query>Any hint?</query></consult>"
    obs, *_ = vec.step([query, query])
    answer = obs[0].split("it is ")[1].split(".</expert>")[0]  # read the tutor's answer back
    _, reward, terminated, _, info = vec.step([f"<answer>{answer}</answer>", "<consult><query>no</query></consult>"])
    result = {
        "batches": expert.batch_sizes,
        "requests": sum(expert.batch_sizes),
        "reward": float(reward[0]),
        "unavailable": int(info["unavailable"][1]),  # "no" is not a question: an error reply
    }
    if verbose:
        print(obs[0])
        print(result)
    vec.close()
    return result


if __name__ == "__main__":
    main()
