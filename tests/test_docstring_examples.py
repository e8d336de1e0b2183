"""Every docstring example of the torch-free packages (``eapo_env``, ``envs``, ``wrappers``) runs and
prints what it says: the examples are the first code a user copies (Gymnasium's style), so they are
pinned like any other behaviour."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("eapo_env", "envs", "wrappers")


def _modules() -> list[str]:
    names: list[str] = []
    for package in PACKAGES:
        names.append(package)
        root = importlib.import_module(package)
        names += [m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")]
    return sorted(names)


def test_every_package_module_is_collected() -> None:
    # A walk that found nothing would make the test below vacuous.
    assert len(_modules()) > 30
    assert "wrappers.reward" in _modules()


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed"
