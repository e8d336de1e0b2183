#!/usr/bin/env bash
# GPU check of the rollout engine (DESIGN §7), one command, under 10 minutes on one GPU:
#   1. the CUDA-graph test (our engine with CUDA graphs == without, greedy);
#   2. our engine (CUDA graphs) vs Hugging Face `generate` on the tiny policy
#      (`eapo build-policy --size tiny`), batch 256 and 1024, 3 turns;
#   3. the same on a ~100M-parameter model built from a config (random weights, bfloat16);
# each benchmark prints tokens/s per engine and the ratio. CI never runs this (no GPU there).
#
#   bash scripts/gpu_check.sh            # OUT=runs/gpu_check PYTHON=python SFT_STEPS=300 to change
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-runs/gpu_check}
SFT_STEPS=${SFT_STEPS:-300}  # the tiny policy's SFT, shortened so that the whole check fits 10 minutes
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
start=$(date +%s)
stamp() { echo "== $1 ($(( $(date +%s) - start ))s elapsed)"; }

stamp "device"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)"

stamp "1. CUDA-graph test"
timeout 120 $PY -m pytest tests/test_rollout.py -q -p no:cacheprovider -k cuda_graphs

stamp "2. tiny policy: build (SFT ${SFT_STEPS} steps), then ours vs hf"
if [ ! -f "$OUT/policy/config.json" ]; then
  timeout 180 $PY -m agents.cli build-policy --out "$OUT/policy" --size tiny --sft-steps "$SFT_STEPS" --threads 8
fi
timeout 150 $PY benchmarks/bench_rollout.py --policy "$OUT/policy" --device cuda --batch 256 1024 --turns 3 \
  --repeats 1 --threads 8 | tee "$OUT/tiny.txt"

stamp "3. ~100M-parameter model from a config (bfloat16): ours vs hf"
timeout 150 $PY benchmarks/bench_rollout.py --model-size 100m --dtype bfloat16 --device cuda --batch 256 1024 \
  --turns 3 --repeats 1 --threads 8 | tee "$OUT/100m.txt"

stamp "done"
