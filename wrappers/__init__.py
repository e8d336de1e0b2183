"""Gymnasium wrappers for the EAPO envs (importable without torch).

- :class:`AcceptanceAnnealing` — anneal p(t), the expert acceptance probability.
- :class:`TurnBudget` — anneal the per-episode turn budget.
- :class:`RewardVerification` — reward = verified correctness of the answer (the default reward).
- :class:`ConsultPenalty` — subtract a (scheduled) cost per consulting turn.
- :class:`EvalMode` — consultation off, evaluation prompt.
- :class:`RecordEpisodes` — append finished episodes to JSONL.
- :class:`TurnWrapper` — the base of your own wrappers: ``action`` / ``outcome`` hooks that take part
  in both phases of a turn, so the vector env keeps its one batched expert call.
- :func:`make_math_env` / :func:`make_eval_env` — the registered ids' entry points (env + default wrappers).
"""

from wrappers.annealing import AcceptanceAnnealing, ScheduledKnob, TurnBudget
from wrappers.eval_mode import EvalMode
from wrappers.factory import make_eval_env, make_math_env
from wrappers.recorder import RecordEpisodes
from wrappers.reward import ConsultPenalty, RewardVerification, Verifier, verify_problem
from wrappers.turn import TurnWrapper

__all__ = [
    "AcceptanceAnnealing",
    "ConsultPenalty",
    "EvalMode",
    "RecordEpisodes",
    "RewardVerification",
    "ScheduledKnob",
    "TurnBudget",
    "TurnWrapper",
    "Verifier",
    "make_eval_env",
    "make_math_env",
    "verify_problem",
]
