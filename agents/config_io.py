"""Reading config files: TOML parsing with the file named in errors, and each value checked against
its :class:`~agents.config.TrainConfig` field's annotation (so a typo'd type fails at load, naming
the key, instead of deep inside a run)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

__all__ = ["coerce_value", "read_toml"]


def coerce_value(name: str, value: Any, hint: Any, source: str) -> Any:
    """Check a TOML value against the field's annotation (ints are accepted for floats)."""
    text = str(hint)

    def bad(expected: str) -> ValueError:
        return ValueError(f"{source}: key {name!r} expects {expected}, got {value!r} ({type(value).__name__})")

    if hint is bool:
        if not isinstance(value, bool):
            raise bad("a boolean (true/false)")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if text.startswith("tuple[str"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return tuple(value)
    if text.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise bad("a list of integers")
        return tuple(value)
    if text.startswith("dict"):
        if not isinstance(value, dict):
            raise bad("a table")
        return dict(value)
    return value


def read_toml(path: str | Path) -> dict[str, Any]:
    """The keys of a TOML file; ``ValueError`` naming the file when it is not valid TOML."""
    path = Path(path)
    with path.open("rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from None
