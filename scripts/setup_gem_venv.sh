#!/usr/bin/env bash
# Create (or reuse) the separate venv that holds GEM (`gem-llm`) for benchmarks/bench_vs_gem.py.
#
#   bash scripts/setup_gem_venv.sh            # -> .cache/gem-venv under the repository
#   EAPO_GEM_VENV=/path/to/venv bash scripts/setup_gem_venv.sh   # reuse/create a venv there
#
# Idempotent: a venv whose python imports gem, datasets and pylatexenc is left as it is.
# GEM lives in its own venv because it pins its own dependency set (nltk, reasoning-gym,
# math-verify, msgspec, datasets) and must not disturb the project's. PIP_* variables (e.g.
# PIP_FIND_LINKS for a local torch wheel) pass through to pip unchanged. Fails loudly.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EAPO_GEM_VENV:-$REPO/.cache/gem-venv}"
PYTHON="${PYTHON:-python3}"
GEM_SPEC="${EAPO_GEM_SPEC:-gem-llm==0.1.0}"
CHECK='import gem, datasets, pylatexenc; from gem.envs.math_env import MathEnv; print(getattr(gem, "__version__", "?"))'

say() { printf '[setup_gem_venv] %s\n' "$*"; }
die() { printf '[setup_gem_venv] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "$CHECK" >/dev/null 2>&1; then
    say "GEM venv ready at $VENV (nothing to do)"
    exit 0
fi

command -v "$PYTHON" >/dev/null || die "no $PYTHON on PATH (set PYTHON=/path/to/python3.10-3.12)"
"$PYTHON" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' \
    || die "gem-llm needs Python 3.10-3.12; $PYTHON is $("$PYTHON" -V 2>&1)"

if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating venv $VENV with $("$PYTHON" -V 2>&1)"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" || die "python -m venv $VENV failed"
else
    say "venv $VENV exists but does not import gem/datasets/pylatexenc: (re)installing into it"
fi

say "installing $GEM_SPEC datasets pylatexenc (PIP_FIND_LINKS=${PIP_FIND_LINKS:-unset})"
"$VENV/bin/python" -m pip install --upgrade --quiet pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install "$GEM_SPEC" datasets pylatexenc \
    || die "pip install $GEM_SPEC datasets pylatexenc failed (see pip output above)"

say "checking the install"
VERSION="$("$VENV/bin/python" -c "$CHECK" 2>&1)" || die "GEM venv does not import: $VERSION"
say "GEM venv ready at $VENV (gem $VERSION)"
