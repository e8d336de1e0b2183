"""A Unicode text space sized in characters.

Gymnasium's :class:`gymnasium.spaces.Text` only holds alphanumeric strings of a fixed charset, which
is unfit for LLM text. :class:`TextSpace` holds any ``str`` whose length (in code points) lies in
``[min_length, max_length]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Space

#: Characters :meth:`TextSpace.sample` draws from by default: printable ASCII, whitespace, some
#: math and non-Latin letters, and the protocol's angle brackets, so samples exercise a parser.
DEFAULT_SAMPLE_CHARSET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " \n\t.,;:!?+-*/=^_()[]{}<>\\$%'\"|&#@~`"
    "αβγδπθλμσωΣΠ∑∫√∞≤≥≠±×÷−°中文字日本語한국어éüñç😀"
)


class TextSpace(Space[str]):
    """Any Unicode string of ``min_length`` to ``max_length`` characters.

    Example:
        >>> space = TextSpace(max_length=16, seed=0)
        >>> space.contains("héllo <answer>")
        True
        >>> space.contains("x" * 17), space.contains(b"bytes")
        (False, False)
        >>> space == TextSpace(max_length=16)
        True
    """

    def __init__(
        self,
        max_length: int,
        *,
        min_length: int = 0,
        sample_charset: str = DEFAULT_SAMPLE_CHARSET,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        if not (isinstance(max_length, int) and isinstance(min_length, int)):
            raise TypeError("min_length and max_length must be int")
        if not 0 <= min_length <= max_length:
            raise ValueError(f"need 0 <= min_length <= max_length, got {min_length}, {max_length}")
        if not sample_charset:
            raise ValueError("sample_charset must not be empty")
        self.min_length = min_length
        self.max_length = max_length
        self.sample_charset = sample_charset
        self._chars = np.array(list(sample_charset))
        super().__init__(shape=None, dtype=None, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random string from the space's ``np_random``: uniform length, uniform characters."""
        if mask is not None or probability is not None:
            raise NotImplementedError("TextSpace.sample takes no mask or probability")
        length = int(self.np_random.integers(self.min_length, self.max_length + 1))
        return "".join(self.np_random.choice(self._chars, size=length).tolist())

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def to_jsonable(self, sample_n: Iterable[str]) -> list[str]:
        return list(sample_n)

    def from_jsonable(self, sample_n: Sequence[str]) -> list[str]:
        return list(sample_n)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TextSpace)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
            and self.sample_charset == other.sample_charset
        )

    def __hash__(self) -> int:
        return hash((TextSpace, self.min_length, self.max_length, self.sample_charset))

    def __repr__(self) -> str:
        return f"TextSpace(min_length={self.min_length}, max_length={self.max_length})"
