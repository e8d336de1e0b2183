#!/usr/bin/env bash
# GPU check of the rollout engines and of training on vLLM (DESIGN §7, §9), one command, under 10
# minutes on one GPU (H100-class). CI never runs it (no GPU there); `DRY_RUN=1` runs its CPU-checkable
# parts (the ~0.5B model's parameter count on the meta device, the training config) and prints every
# GPU command instead of running it (tests/test_gpu_check.py).
#   1. the CUDA-graph test (our engine with CUDA graphs == without, greedy);
#   2. the shipped tiny policy (agents/assets/tiny_base): ours (CUDA graphs) vs hf, then vLLM,
#      batch 256 and 1024, 3 turns;
#   3. a ~100M-parameter model built from a config (random weights, bfloat16): ours vs hf;
#   4. a ~0.5B-parameter Qwen2 built from a config (random weights, bfloat16, the tiny policy's
#      tokenizer), saved as a policy directory: ours vs hf vs vLLM, batch 256 and 1024;
#   5. two `engine = "vllm"` training steps (colocated vLLM, bfloat16) with a checked weight push
#      after each: step times and push times from metrics.jsonl.
# Each benchmark prints tokens/s per engine. vLLM parts need vLLM in $VLLM_PY (default $PYTHON); without
# it they print SKIPPED and the script goes on (its exit status stays 0 for the rest).
#
#   bash scripts/gpu_check.sh     # OUT=runs/gpu_check PYTHON=python VLLM_PY=... to change
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
VLLM_PY=${VLLM_PY:-$PY}
OUT=${OUT:-runs/gpu_check}
DRY_RUN=${DRY_RUN:-0}
TINY=agents/assets/tiny_base
BIG="$OUT/model_0p5b"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
start=$(date +%s)
stamp() { echo "== $1 ($(( $(date +%s) - start ))s elapsed)"; }
# run LIMIT_S CMD...: the command under a timeout, or only printed with DRY_RUN=1
run() { local limit=$1; shift; if [ "$DRY_RUN" = 1 ]; then echo "DRY_RUN: $*"; else timeout "$limit" "$@"; fi; }
has_vllm() { [ "$DRY_RUN" = 1 ] || "$VLLM_PY" -c "import vllm" >/dev/null 2>&1; }

stamp "device"
run 60 $PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__)"

stamp "1. CUDA-graph test"
run 120 $PY -m pytest tests/test_rollout.py -q -p no:cacheprovider -k cuda_graphs

stamp "2. tiny policy: ours (CUDA graphs) vs hf, then vllm"
run 120 $PY benchmarks/bench_rollout.py --policy "$TINY" --device cuda --batch 256 1024 --turns 3 \
  --repeats 1 --threads 8 | tee "$OUT/tiny.txt"
if has_vllm; then
  run 120 $VLLM_PY -m agents.cli bench rollout --policy "$TINY" --engines vllm --device cuda --batch 256 1024 \
    --turns 3 --repeats 1 --threads 8 | tee "$OUT/tiny_vllm.txt"
else echo "SKIPPED vllm on the tiny policy: no vllm in $VLLM_PY"; fi

stamp "3. ~100M-parameter model from a config (bfloat16): ours vs hf"
run 120 $PY benchmarks/bench_rollout.py --model-size 100m --dtype bfloat16 --device cuda --batch 256 1024 \
  --turns 3 --repeats 1 --threads 8 | tee "$OUT/100m.txt"

stamp "4. ~0.5B-parameter model from a config (bfloat16): build, then ours vs hf vs vllm"
# hidden 1280, 28 layers, MLP 3456, 10 heads (2 KV): ~0.48B parameters (the vocabulary is the tiny one).
BUILD_0P5B='
import sys, torch, transformers
from agents.policy.model import load_tokenizer
out, dry = sys.argv[1], sys.argv[2] == "1"
tok = load_tokenizer("agents/assets/tiny_base")
cfg = transformers.Qwen2Config(vocab_size=len(tok), hidden_size=1280, intermediate_size=3456, num_hidden_layers=28,
    num_attention_heads=10, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
with torch.device("meta" if dry else "cuda"):
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
n = sum(p.numel() for p in model.parameters())
assert 0.4e9 < n < 0.6e9, n
print(f"0.5B model: {n / 1e9:.3f}B parameters" + (" (meta device: dry run)" if dry else f", saved to {out}"))
if not dry:
    model.save_pretrained(out)
    tok.save_pretrained(out)
'
timeout 120 $PY -c "$BUILD_0P5B" "$BIG" "$DRY_RUN"
run 180 $PY -m agents.cli bench rollout --policy "$BIG" --dtype bfloat16 --engines ours hf --device cuda \
  --batch 256 1024 --turns 3 --repeats 1 --threads 8 | tee "$OUT/0p5b.txt"
if has_vllm; then
  run 150 $VLLM_PY -m agents.cli bench rollout --policy "$BIG" --dtype bfloat16 --engines vllm --device cuda \
    --batch 256 1024 --turns 3 --repeats 1 --threads 8 | tee "$OUT/0p5b_vllm.txt"
else echo "SKIPPED vllm on the 0.5B model: no vllm in $VLLM_PY"; fi

stamp "5. two engine = \"vllm\" training steps with checked weight pushes (colocated, bfloat16)"
TRAIN_SET=(engine='"vllm"' vllm_dtype='"bfloat16"' vllm_sync_tolerance=0.1 mismatch_correction='"token_tis"'
  steps=2 final_eval=false tensorboard=false progress_bar=false checkpoint_every=100 threads=8)
timeout 60 $PY -c "
import sys; from agents.cli import _parse_set; from agents.config import load_config
c = load_config('quickstart', **_parse_set(sys.argv[1:])); print('training config ok:', c.engine, c.vllm_mode, c.vllm_dtype)
" "${TRAIN_SET[@]}"
if has_vllm; then
  run 240 $VLLM_PY -m agents.cli train --config quickstart --out "$OUT/train_vllm" --set "${TRAIN_SET[@]}"
  run 30 $PY -c "
import json, sys
for line in open(sys.argv[1] + '/metrics.jsonl'):
    r = json.loads(line)
    print(f\"step {r['step']}: rollout {r['time_rollout_s']:.2f}s ({r['tokens_per_s_rollout']:.0f} tok/s), train {r['time_train_s']:.2f}s, \"
          f\"push {r['vllm_push_s']:.2f}s, probe gap {r['vllm_probe_gap_before']:.3g} -> {r['vllm_probe_max_abs_diff']:.3g}, \"
          f\"mismatch |dlogp| {r['mismatch_abs_mean']:.3g}, max ratio {r['mismatch_ratio_max']:.3g}\")
" "$OUT/train_vllm" | tee "$OUT/train_vllm.txt"
else echo "SKIPPED engine=vllm training: no vllm in $VLLM_PY"; fi

stamp "done"
