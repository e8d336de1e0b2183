"""Reading config files: TOML parsing with the file named in errors, ``extends`` chains resolved (an
ablation is its base plus the few keys it changes, so the file says what the ablation *is*), and each
value checked against its :class:`~agents.config.TrainConfig` field's annotation (so a typo'd type
fails at load, naming the key, instead of deep inside a run)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

__all__ = ["PACKAGED_CONFIGS", "coerce_value", "read_toml", "read_toml_file", "resolve_extends"]

PACKAGED_CONFIGS = Path(__file__).parent / "configs"
"""Where a bare config name (``extends = "eapo"``, ``load_config("eapo")``) is looked up."""


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


def read_toml_file(path: str | Path) -> dict[str, Any]:
    """The keys of one TOML file as written (``extends`` not resolved); ``ValueError`` naming the file
    when it is not valid TOML."""
    path = Path(path)
    with path.open("rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from None


def resolve_extends(child: Path, base: object) -> Path:
    """The file that ``extends = base`` in ``child`` names.

    A value ending in ``.toml`` or holding a path separator is a path relative to ``child``'s folder
    (so a config next to its base works wherever the pair is copied); a bare name is a packaged config
    (``"eapo"`` is ``agents/configs/eapo.toml``). ``ValueError`` when the value is not a string or the
    file does not exist, naming both files."""
    if not isinstance(base, str) or not base:
        raise ValueError(f"{child}: 'extends' expects a config name or a path, got {base!r}")
    if base.endswith(".toml") or "/" in base or "\\" in base:
        target = (child.parent / base).resolve()
    else:
        target = (PACKAGED_CONFIGS / f"{base}.toml").resolve()
    if not target.is_file():
        raise ValueError(f"{child}: extends {base!r}, but {target} does not exist")
    return target


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``; a table (``[expert_kwargs]``) is merged key by key, the child winning."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def read_toml(path: str | Path) -> dict[str, Any]:
    """The keys of a config file with its ``extends`` chain resolved: the base's keys, then each child's
    over them (tables merged key by key). The returned keys hold no ``extends``. ``ValueError`` for
    invalid TOML, a missing base or a cycle (the chain is named in the message)."""
    chain: list[Path] = []
    layers: list[dict[str, Any]] = []
    current: Path | None = Path(path).resolve()
    while current is not None:
        if current in chain:
            names = " -> ".join(str(p) for p in [*chain, current])
            raise ValueError(f"{path}: 'extends' cycle: {names}")
        chain.append(current)
        keys = read_toml_file(current)
        base = keys.pop("extends", None)
        layers.append(keys)
        current = resolve_extends(current, base) if base is not None else None
    merged: dict[str, Any] = {}
    for keys in reversed(layers):
        merged = _merge(merged, keys)
    return merged
