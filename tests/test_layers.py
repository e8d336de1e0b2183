"""Layers point one way (DESIGN §2, §7): ``eapo_env`` <- ``envs`` <- ``wrappers`` <- ``agents``.

A lower layer never imports a higher one, not at module level, not inside a function, not through
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name. The check parses every
``.py`` file of the four packages with :mod:`ast` (nothing is imported, so a violation that only runs on
some code path is still caught) and names ``file:line`` for each upward import. Registration strings
such as ``gym.register(entry_point="wrappers.factory:make_math_env")`` and the ``eapo.experts`` entry
point are not imports: Gymnasium / importlib.metadata resolve them when an env or expert is made.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

#: lowest first; a module may import its own layer and the ones before it.
LAYERS = ("eapo_env", "envs", "wrappers", "agents")
REPO = Path(__file__).resolve().parents[1]
DYNAMIC_IMPORTS = {"import_module", "__import__"}  # importlib.import_module(...), __import__(...)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, target] if target else base)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` for every import in ``tree``, at any depth."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                name = _resolve_relative(module, is_package, node.level, node.module)
            found.append((node.lineno, name))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if called in DYNAMIC_IMPORTS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def upward_imports(root: Path, layers: tuple[str, ...] = LAYERS) -> tuple[list[str], int]:
    """Every import of a higher layer under ``root`` as ``file:line: ...``, and how many files were read."""
    rank = {name: i for i, name in enumerate(layers)}
    problems: list[str] = []
    files = 0
    for layer in layers:
        for path in sorted((root / layer).rglob("*.py")):
            files += 1
            module = _module_name(root, path)
            with warnings.catch_warnings():  # a file's own escape-sequence warnings are not this check's
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, target in imported_modules(tree, module, path.name == "__init__.py"):
                top = target.split(".")[0]
                if rank.get(top, -1) > rank[layer]:
                    where = f"{path.relative_to(root)}:{line}"
                    problems.append(f"{where}: {layer} imports {target} (a higher layer; order {' <- '.join(layers)})")
    return problems, files


def test_no_layer_imports_a_higher_one():
    problems, files = upward_imports(REPO)
    assert files >= 40, f"only {files} files found under {REPO}: is the check reading the packages?"
    assert not problems, "upward imports:\n" + "\n".join(problems)


def _plant(root: Path, files: dict[str, str]) -> None:
    for layer in LAYERS:
        (root / layer).mkdir(parents=True, exist_ok=True)
        (root / layer / "__init__.py").write_text("")
    for rel, code in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(code))


def test_the_check_names_every_kind_of_upward_import(tmp_path):
    _plant(
        tmp_path,
        {
            "eapo_env/experts/local.py": """
                import os

                def load():
                    from agents.policy import load_policy  # lazy, inside a function
                    return load_policy
            """,
            "envs/factory.py": """
                import importlib

                def make():
                    return importlib.import_module("wrappers.factory")
            """,
            "envs/sub/deep.py": "from ...wrappers import EvalMode\n",
            "wrappers/w.py": "import agents.trainer as t\nx = __import__('agents')\n",
            "agents/ok.py": "import eapo_env, envs, wrappers\nfrom .policy import model\n",
            "wrappers/ok.py": "from envs.math_env import EAPOMathEnv\nfrom . import w\nimport gymnasium\n",
            "eapo_env/ok.py": "from eapo_env.experts import local\nname = 'agents.policy:PolicyExpert'\n",
        },
    )
    problems, files = upward_imports(tmp_path)
    assert files == 11
    where = sorted(p.split(": ")[0] for p in problems)
    assert where == [
        "eapo_env/experts/local.py:5",
        "envs/factory.py:5",
        "envs/sub/deep.py:1",
        "wrappers/w.py:1",
        "wrappers/w.py:2",
    ], problems
    assert any("eapo_env imports agents.policy" in p for p in problems)
    assert any("envs imports wrappers.factory" in p for p in problems)
    assert any("envs imports wrappers" in p and "deep.py" in p for p in problems)


def test_the_lower_layers_run_with_the_higher_ones_unimportable():
    """At run time too: gym.make / make_vec / the eval and token envs work with ``agents`` (and torch)
    blocked, and the core plus ``envs`` import and step with ``wrappers`` blocked as well."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["agents"] = sys.modules["torch"] = None  # any import of them raises ImportError
        import gymnasium as gym, eapo_env
        from envs.token_env import EAPOTokenEnv
        env = gym.make("EAPO-Math-v0", problems="generated:arithmetic")
        env.reset(seed=0)
        env.step("<consult><query>hint?</query></consult>")
        gym.make("EAPO-Math-Eval-v0").reset(seed=0)
        vec = gym.make_vec("EAPO-Math-v0", num_envs=2)
        vec.reset(seed=0)
        vec.step(["<answer>1</answer>"] * 2)
        EAPOTokenEnv().reset(seed=0)
        print("ok")
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
    code = textwrap.dedent(
        """
        import sys
        sys.modules["agents"] = sys.modules["wrappers"] = sys.modules["torch"] = None
        import eapo_env, envs, envs.vector_env, envs.token_env
        from envs import EAPOMathEnv
        env = EAPOMathEnv(problems="generated:arithmetic")
        env.reset(seed=0)
        env.step("<answer>1</answer>")
        print("ok")
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_the_policy_expert_is_registered_from_agents_through_the_entry_point():
    """``eapo.experts`` (setup.cfg) names ``agents.policy.expert:PolicyExpert``; the core has no such name."""
    from importlib import metadata

    from eapo_env.experts import available_experts
    from eapo_env.experts.registry import ENTRY_POINT_GROUP

    points = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert "policy" in points, "no eapo.experts entry point: reinstall the package (pip install -e .)"
    assert points["policy"].module == "agents.policy.expert" and points["policy"].attr == "PolicyExpert"
    assert points["policy"].extras == ["agents"]
    assert "policy" in available_experts()


def test_without_the_agents_extra_the_policy_expert_names_it():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # the agents extra (torch, transformers) is not installed
        from eapo_env.experts import make_expert
        try:
            make_expert("policy", policy_dir="runs/policy")
        except ImportError as exc:
            print(exc)
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "'policy' expert" in run.stdout and "pip install 'eapo[agents]'" in run.stdout, run.stdout


def test_without_the_entry_point_the_policy_expert_says_how_to_install_it(monkeypatch):
    """A source tree on ``sys.path`` without ``pip install`` has no entry points (simulated here)."""
    from eapo_env.experts import make_expert, registry

    monkeypatch.setattr(registry, "_entry_points", dict)
    with pytest.raises(ImportError, match=r"eapo\.experts.*pip install 'eapo\[agents\]'"):
        make_expert("policy", policy_dir="runs/policy")
