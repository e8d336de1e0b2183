"""The ``openai`` expert's wire format without the ``openai`` package: reply parsing, and the failure
kinds of one attempt, sorted for the retry policy (timeouts are plain ``TimeoutError``).

Kept apart from :mod:`eapo_env.experts.openai_transport` (which raises these errors) so that the
backend can name them without importing the ``openai`` package and httpx before its first consult.
"""

from __future__ import annotations

import json

#: Statuses that refuse a request for its content, not for the server's state: a refused batch is split.
REFUSED_STATUSES = frozenset({400, 413, 422})


class RetryableError(Exception):
    """An attempt failed in a way another attempt (on another endpoint, or later) may fix."""


class ConnectFailed(RetryableError):
    """The endpoint refused or dropped the connection attempt: avoid it for a moment."""


class FatalError(Exception):
    """An attempt failed in a way retrying will not fix (e.g. 401, 404, an oversized body)."""


class RefusedError(FatalError):
    """The server refused the request for what it carries (one of :data:`REFUSED_STATUSES`)."""


def snippet(data: bytes, n: int = 120) -> str:
    """The start of a response body, for an error message."""
    return data[:n].decode("utf-8", "replace").replace("\n", " ")


def parse_completion(data: bytes, url: str, n: int, chat: bool, batched: bool) -> tuple[list[str], int, int]:
    """The texts of a completion body, one per query in order (a batch's choices matched by ``index``),
    its prompt and completion tokens; :class:`RetryableError` when it is not such a body."""
    try:
        obj = json.loads(data)
        choices = obj["choices"]
        if batched:  # one choice per prompt, each with its own index
            by_index = {int(c["index"]): c for c in choices}
            if len(choices) != n or sorted(by_index) != list(range(n)):
                raise ValueError(f"{len(choices)} choices for {n} prompts")
            choices = [by_index[i] for i in range(n)]
        else:
            choices = choices[:1]
        texts = [c["message"]["content"] if chat else c["text"] for c in choices]
        if len(texts) != n:
            raise ValueError("no choices")
        usage = obj.get("usage") or {}
        return (
            ["" if t is None else str(t) for t in texts],
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise RetryableError(f"malformed completion from {url}: {snippet(data)}") from None
