"""skrl's PPO learns a tiny consult-or-answer task on the token-level EAPO env (CPU, well under a minute).

The task: every problem asks for a secret digit that only its reference solution knows (the
question text is the same for all problems), so answering at once is right 1 time in 10, while
consulting first — the ``reference`` expert replies ``The answer is \\boxed{d}.`` — reveals it, and
copying it into the answer earns reward 1. Actions are tokens of a :class:`ProtocolTokenizer` whose
vocabulary holds the protocol tags, the ten digits, and 11 whole-turn *macro* words (one consult
``<consult><query>what is the digit?</query></consult>`` and ten ``<answer>d</answer>``): with
macros the search space stays small enough for PPO from scratch, and a turn still ends on its
stop string exactly as with a real tokenizer. Observations are the last 8 token ids; the policy
embeds them one-hot into a small MLP.

A policy that consults, then copies the digit, scores ~1.0; guessing ~0.1; a uniformly random
token policy ~0.05-0.1. :func:`main` trains, then reports the mean return of the learned policy
and of a random one over the same seeded evaluation episodes.

Usage:
    python examples/skrl_ppo_token_env.py [--timesteps 6000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from eapo_env.problems import Problem
from envs.token_env import EAPOTokenEnv, ProtocolTokenizer

CONSULT = "<consult><query>what is the digit?</query></consult>"
ANSWERS = [f"<answer>{d}</answer>" for d in range(10)]
WINDOW, NUM_ENVS = 8, 16


def make_problems(count: int = 200, seed: int = 0) -> list[Problem]:
    """``count`` problems with the same question and a random digit as answer."""
    rng = random.Random(seed)
    return [Problem(f"digit/{i}", "Recall the secret digit.", str(rng.randrange(10))) for i in range(count)]


def make_tokenizer() -> ProtocolTokenizer:
    # chars: digits only, so expert prose collapses into single <unk> tokens around the digit
    return ProtocolTokenizer(words=[CONSULT, *ANSWERS], chars="0123456789")


def make_env(problems: list[Problem] | None = None) -> EAPOTokenEnv:
    return EAPOTokenEnv(
        tokenizer=make_tokenizer(),
        window=WINDOW,
        max_turn_tokens=4,
        problems=problems or make_problems(),
        expert="reference",
        max_turns=4,
    )


def build_models(observation_space: gym.Space, action_space: gym.Space, device: str) -> dict[str, Any]:
    from skrl.models.torch import CategoricalMixin, DeterministicMixin, Model

    vocab = int(action_space.n)

    class Net(nn.Module):
        def __init__(self, out: int) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(WINDOW * vocab, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh())
            self.head = nn.Linear(64, out)

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            one_hot = nn.functional.one_hot(obs.long().clamp(0, vocab - 1), vocab).float()
            return self.head(self.body(one_hot.flatten(1)))

    class Policy(CategoricalMixin, Model):
        def __init__(self) -> None:
            Model.__init__(self, observation_space=observation_space, action_space=action_space, device=device)
            CategoricalMixin.__init__(self, unnormalized_log_prob=True)
            self.net = Net(vocab)

        def compute(self, inputs: dict[str, Any], role: str = "") -> tuple[torch.Tensor, dict[str, Any]]:
            return self.net(inputs["observations"]), {}

    class Value(DeterministicMixin, Model):
        def __init__(self) -> None:
            Model.__init__(self, observation_space=observation_space, action_space=action_space, device=device)
            DeterministicMixin.__init__(self)
            self.net = Net(1)

        def compute(self, inputs: dict[str, Any], role: str = "") -> tuple[torch.Tensor, dict[str, Any]]:
            return self.net(inputs["observations"]), {}

    return {"policy": Policy(), "value": Value()}


def train(timesteps: int, seed: int = 0) -> Any:
    """Train PPO for ``timesteps`` vector steps of ``NUM_ENVS`` token envs; returns the policy model."""
    from skrl.agents.torch.ppo import PPO, PPO_CFG
    from skrl.envs.wrappers.torch import wrap_env
    from skrl.memories.torch import RandomMemory
    from skrl.trainers.torch import SequentialTrainer
    from skrl.utils import set_seed

    set_seed(seed)
    # SAME_STEP: the observation after an episode end is already the next episode's first one, as
    # skrl's trainer expects from an autoresetting vector env.
    vec = gym.vector.SyncVectorEnv([make_env] * NUM_ENVS, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    env = wrap_env(vec, wrapper="gymnasium")
    device = "cpu"
    models = build_models(env.observation_space, env.action_space, device)
    rollouts = 32
    cfg = PPO_CFG(
        rollouts=rollouts,
        learning_epochs=4,
        mini_batches=4,
        discount_factor=0.99,
        gae_lambda=0.95,
        learning_rate=5e-3,
        entropy_loss_scale=0.02,
        value_loss_scale=0.5,
        grad_norm_clip=0.5,
    )
    cfg.experiment.directory = tempfile.mkdtemp(prefix="eapo_skrl_")
    cfg.experiment.write_interval = 0
    cfg.experiment.checkpoint_interval = 0
    memory = RandomMemory(memory_size=rollouts, num_envs=env.num_envs, device=device)
    agent = PPO(
        models=models,
        memory=memory,
        observation_space=env.observation_space,
        action_space=env.action_space,
        device=device,
        cfg=cfg,
    )
    trainer = SequentialTrainer(
        env=env,
        agents=agent,
        cfg={"timesteps": timesteps, "headless": True, "disable_progressbar": True, "close_environment_at_exit": False},
    )
    trainer.train()
    vec.close()
    return models["policy"]


def evaluate(policy: Any | None, episodes: int = 200, seed: int = 1234) -> float:
    """Mean return over ``episodes`` seeded episodes (unseen problems); tokens are sampled from the
    policy (``None``: uniformly random tokens)."""
    env = make_env(make_problems(seed=seed))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            if policy is None:
                action = int(rng.integers(env.action_space.n))
            else:
                with torch.no_grad():
                    logits, _ = policy.compute({"observations": torch.as_tensor(obs[None])})
                action = int(torch.multinomial(torch.softmax(logits[0], -1), 1, generator=gen).item())
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
    return total / episodes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=6000, help="vector steps (x16 envs)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    policy = train(args.timesteps, args.seed)
    learned = evaluate(policy, args.episodes)
    rand = evaluate(None, args.episodes)
    result = {"learned_return": learned, "random_return": rand, "seconds": time.perf_counter() - start}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"mean return over {args.episodes} episodes: PPO {learned:.3f}   random {rand:.3f}   "
            f"({result['seconds']:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
