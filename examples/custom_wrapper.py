"""A custom reward wrapper (a length penalty), used with ``gym.make`` and ``gym.make_vec`` unchanged.

EAPO's envs are plain Gymnasium envs: a wrapper you write works on one env and, passed as
``env_wrappers=[...]``, on every env of the batched vector env (which composes ``gym.make`` envs and
still sends all expert queries of a step as one call). Nothing in ``envs/`` needs to know about it.
Subclass :class:`wrappers.TurnWrapper` and override ``outcome`` (or ``action``) rather than ``step``:
the vector env runs a turn in two phases (prepare, then complete after the one batched expert call),
and a wrapper that only overrides ``step`` cannot be split, so its env would consult on its own.

Run:
    python examples/custom_wrapper.py

Example:
    >>> single, batched = main(verbose=False)
    >>> single == batched and single[1] < 1.0  # the same shaped rewards; the answer pays for its length
    True
"""

from __future__ import annotations

import gymnasium as gym

import eapo_env  # noqa: F401  (registers the ids)
from envs.step import TurnOutcome
from envs.turns import TurnPlan
from wrappers import TurnWrapper


class LengthPenalty(TurnWrapper):
    """Subtract ``cost`` per character of the policy's turn (discourages rambling).

    The penalty is recorded in ``info["length_penalty"]`` so a trainer can log it.
    """

    def __init__(self, env: gym.Env[str, str], cost: float = 0.001) -> None:
        super().__init__(env)
        self.cost = cost

    def outcome(self, outcome: TurnOutcome, plan: TurnPlan) -> TurnOutcome:
        return outcome.penalized("length_penalty", self.cost * len(plan.action))


def main(verbose: bool = True) -> tuple[list[float], list[float]]:
    """Play the same two turns on one env and on 3 batched envs; returns the rewards of both."""
    kwargs = dict(problems="generated:arithmetic", expert="reference")
    env = LengthPenalty(gym.make("EAPO-Math-v0", **kwargs))
    env.reset(seed=0)
    answer = f"<answer>{env.unwrapped.problem.answer}</answer>"
    turns = ["<consult><query>What is the first step?</query></consult>", answer]
    single = [float(env.step(turn)[1]) for turn in turns]

    vec = gym.make_vec("EAPO-Math-v0", num_envs=3, env_wrappers=[LengthPenalty], **kwargs)
    vec.reset(seed=0)  # env i is seeded 0 + i: env 0 gets the same problem as `env`
    batched_env0 = [float(vec.step([turn, turn, turn])[1][0]) for turn in turns]
    if verbose:
        print(f"single env rewards:       {single}")
        print(f"vector env rewards (env 0): {batched_env0}  expert calls: {vec.expert_calls}")
    vec.close()
    env.close()
    return single, batched_env0


if __name__ == "__main__":
    main()
