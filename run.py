#!/usr/bin/env python3
"""Set-up-free entry point: ``python3 run.py quickstart`` or ``python3 run.py test``.

Needs only Python >= 3.11 with venv. Makes ``.venv-tox`` holding tox (once), then runs the tox
environment of the same name, which builds its own virtualenv with the project and its pinned
dependencies. Extra arguments go to the command inside (e.g. ``python3 run.py test -x -k verify``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOX_VENV = ROOT / ".venv-tox"
ENVS = ("quickstart", "test", "bench")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ENVS:
        print(f"usage: python3 run.py {{{'|'.join(ENVS)}}} [args...]", file=sys.stderr)
        return 2
    python = TOX_VENV / "bin" / "python"
    if not (TOX_VENV / "bin" / "tox").exists():
        print(f"[run.py] creating {TOX_VENV} with tox", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(TOX_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "tox>=4"], check=True)
    cmd = [str(python), "-m", "tox", "-e", argv[0]]
    if len(argv) > 1:
        cmd += ["--", *argv[1:]]
    print("[run.py]", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=os.environ.copy())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
