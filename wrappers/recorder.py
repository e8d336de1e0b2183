"""Record finished episodes to a JSONL file: one line per episode, written whole and flushed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym

from eapo_env.progress import set_progress
from envs.math_env import eapo_unwrapped


class RecordEpisodes(gym.Wrapper[str, str, str, str]):
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

    def set_progress(self, step: int) -> None:
        set_progress(self.env, step)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self._seed = seed
        self._return = 0.0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        if terminated or truncated:
            base = eapo_unwrapped(self.env)
            record = {
                "problem_id": info.get("problem_id"),
                "seed": self._seed,
                "return": self._return,
                "turns": info.get("turn"),
                "consults": info.get("consults"),
                "verdict": info.get("verdict"),
                "correct": info.get("correct"),
                "answer": info.get("answer"),
                "truncated": bool(truncated),
                "transcript": [[source, text] for source, text in base.transcript],
            }
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        super().close()
