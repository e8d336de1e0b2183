"""``replay``: answers with recorded expert responses (the paper's offline settings).

The recording is JSONL, one response per row: ``{"problem_id": "...", "response": "..."}`` (the key
``text`` is accepted for ``response``, and ``id`` for ``problem_id``); other keys are ignored. A
problem may have many rows; each request samples one of them.

Example:
    >>> import json, tempfile
    >>> from eapo_env.experts import ExpertRequest
    >>> from eapo_env.problems import Problem
    >>> with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    ...     _ = f.write(json.dumps({"problem_id": "p", "response": "It is 4."}) + "\\n")
    >>> ReplayExpert(f.name).consult_sync([ExpertRequest("r0", Problem("p", "2+2?", "4"), "q")])[0].text
    'It is 4.'
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

from eapo_env.experts.base import ExpertReply, ExpertRequest, SyncExpert, failed_reply


class ReplayExpert(SyncExpert):
    """Samples one recorded response for the request's problem id.

    The choice is ``blake2b(seed, request_id, problem id) mod n``: deterministic, independent of any
    global RNG and of Python's salted ``hash``, and different request ids (turns, slots, envs) spread
    over the recordings. An unknown problem id gives an ``error`` reply (``"no recording"``), which
    the env shows as unavailable.

    Args:
        path: the JSONL recording.
        seed: salt of the sampling hash.
    """

    name = "replay"

    def __init__(self, path: str | os.PathLike[str], seed: int = 0) -> None:
        self.path = os.fspath(path)
        self.seed = int(seed)
        self.responses: dict[str, list[str]] = {}
        with open(self.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    pid = row["problem_id"] if "problem_id" in row else row["id"]
                    text = row["response"] if "response" in row else row["text"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(
                        f"{self.path}:{lineno}: expected {{'problem_id': ..., 'response': ...}} ({exc!r})"
                    ) from None
                if not isinstance(text, str):
                    raise ValueError(f"{self.path}:{lineno}: response must be a string, got {type(text).__name__}")
                self.responses.setdefault(str(pid), []).append(text)
        if not self.responses:
            raise ValueError(f"{self.path}: no recorded responses")
        # Frozen replies built once: a request only picks one (building them costs more than the pick).
        self._replies = {
            pid: [ExpertReply(t, "ok", 0.0, (len(t) + 3) // 4, self.name) for t in texts]
            for pid, texts in self.responses.items()
        }

    def __len__(self) -> int:
        """Number of recorded responses."""
        return sum(len(v) for v in self.responses.values())

    def _index(self, request: ExpertRequest, n: int) -> int:
        if n == 1:
            return 0
        key = f"{self.seed}\x1f{request.request_id}\x1f{request.problem.id}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % n

    def pick(self, request: ExpertRequest) -> str | None:
        """The recorded response this request gets, or None if its problem has none."""
        options = self.responses.get(request.problem.id)
        return options[self._index(request, len(options))] if options else None

    def consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        out = []
        for request in requests:
            options = self._replies.get(request.problem.id)
            if options:
                out.append(options[self._index(request, len(options))])
            else:
                out.append(failed_reply("error", f"no recording for problem {request.problem.id!r}", expert=self.name))
        return out
