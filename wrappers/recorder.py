"""Record finished episodes to a JSONL file: one line per episode, written whole and flushed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym

from envs.step import TurnOutcome
from envs.text_env import eapo_unwrapped
from envs.turns import TurnPlan
from wrappers.turn import TurnWrapper


class RecordEpisodes(TurnWrapper):
    """Append every finished episode to ``path`` as one JSON line.

    A line holds ``problem_id``, ``seed`` (of the reset, or null), ``return``, ``turns``,
    ``consults``, ``verdict``, ``correct``, ``answer``, ``truncated`` and the ``transcript`` as
    ``[source, text]`` pairs. Each line is written with a single ``write`` and flushed, so a killed
    process leaves at most the episode in progress unrecorded, never a torn line.

    Example:
        >>> import gymnasium as gym, eapo_env, tempfile, json, os
        >>> path = os.path.join(tempfile.mkdtemp(), "episodes.jsonl")
        >>> env = RecordEpisodes(gym.make("EAPO-Math-v0"), path)
        >>> _ = env.reset(seed=0); _ = env.step("<answer>0</answer>")
        >>> json.loads(open(path).readline())["turns"]
        1
    """

    def __init__(self, env: gym.Env[str, str], path: str | os.PathLike[str]) -> None:
        super().__init__(env)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._seed: int | None = None
        self._return = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self._seed = seed
        self._return = 0.0
        return self.env.reset(seed=seed, options=options)

    def outcome(self, outcome: TurnOutcome, plan: TurnPlan) -> TurnOutcome:
        self._return += outcome.reward
        if outcome.ended:
            base = eapo_unwrapped(self.env)
            record = {
                "problem_id": outcome.problem_id,
                "seed": self._seed,
                "return": self._return,
                "turns": outcome.turn,
                "consults": outcome.consults,
                "verdict": outcome.verdict,
                "correct": outcome.correct if outcome.verdict is not None else None,
                "answer": outcome.answer,
                "truncated": outcome.truncated,
                "transcript": [[source, text] for source, text in base.transcript],
            }
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
        return outcome

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        super().close()
