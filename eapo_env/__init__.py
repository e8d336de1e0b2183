"""EAPO core without torch: action protocol, text spaces, problems, verification, experts, schedules.

Importing it registers the Gymnasium ids ``EAPO-Math-v0`` and ``EAPO-Math-Eval-v0``.
:func:`score_turn` is the env's reward of a final turn as one call (for other trainers).

Example:
    >>> import gymnasium as gym, eapo_env
    >>> env = gym.make("EAPO-Math-v0")
    >>> obs, info = env.reset(seed=0)
    >>> isinstance(obs, str) and "problem_id" in info
    True
"""

from eapo_env.problems import Problem, load_problems
from eapo_env.progress import set_progress
from eapo_env.protocol import ParsedAction, parse_action
from eapo_env.registration import EVAL_ID, TRAIN_ID, register_envs
from eapo_env.scoring import TurnScore, score_turn
from eapo_env.spaces import TextSpace
from eapo_env.verify import Verdict, verify

__version__ = "0.1.0"
__all__ = [
    "EVAL_ID",
    "TRAIN_ID",
    "ParsedAction",
    "Problem",
    "TextSpace",
    "TurnScore",
    "Verdict",
    "load_problems",
    "parse_action",
    "register_envs",
    "score_turn",
    "set_progress",
    "verify",
]

register_envs()
