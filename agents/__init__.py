"""The learner: LLM policy, rollout engines, GRPO/DAPO losses, trainer, baselines, evaluation, CLI.

Importing ``agents`` is cheap on purpose (no torch, no transformers): import the submodule you need,
e.g. ``from agents.policy import build_policy, load_policy``.
"""
