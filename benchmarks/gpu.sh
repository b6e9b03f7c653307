#!/usr/bin/env bash
# clasr on one CUDA GPU (issue 15): training and evaluation throughput of tiny.en, base and small
# against the standard recipe (Seq2SeqTrainer + peft LoRA, transformers' ASR pipeline), one table.
#
#   bash benchmarks/gpu.sh [--dry-run] [--no-install] [--smoke] [benchmarks/gpu_speed.py options]
#
#   --dry-run     everything on the CPU with tiny random models: checks the script, measures nothing
#                 (tests/test_gpu_benchmark.py runs it)
#   --no-install  never pip install. Otherwise, when the benchmark's imports fail (a fresh machine with
#                 internet), the project is installed with its dev extra first.
#   --smoke       first run `clasr run` end to end (tiny random model; strategies ft, lora, ihr; 2 steps
#                 each) on the same device, to catch device-mismatch bugs
#   other options go to benchmarks/gpu_speed.py (--help there): --models tiny.en,base,small,
#   --tokenizer DIR (repeat: tiny.en's and base's checkpoint folders, weights not needed),
#   --weights MODEL=DIR, --data DIR..., --batch MODEL=N, --json PATH, --steps, --warmup, ...
#
# The code runs from this checkout (PYTHONPATH=src); nothing is downloaded at run time.
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

install=1
smoke=0
dry_run=()
args=()
for arg in "$@"; do
    case "$arg" in
        --no-install) install=0 ;;
        --smoke) smoke=1 ;;
        --dry-run) dry_run=(--dry-run) ;;
        *) args+=("$arg") ;;
    esac
done

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

imports_ok() {
    "$PYTHON" -c "import sys; sys.path.insert(0, 'benchmarks'); import gpu_speed" 2>/dev/null
}

if [[ $install == 1 ]] && ! imports_ok; then
    echo "[gpu.sh] installing the project with its dev extra ($PYTHON -m pip install -e .[dev])" >&2
    "$PYTHON" -m pip install -e ".[dev]" >&2
fi

if [[ $smoke == 1 ]]; then
    "$PYTHON" benchmarks/gpu_speed.py --smoke ${dry_run[@]+"${dry_run[@]}"} ${args[@]+"${args[@]}"} \
        || echo "[gpu.sh] the smoke test failed (its table and log above); the benchmark runs anyway" >&2
fi
exec "$PYTHON" benchmarks/gpu_speed.py ${dry_run[@]+"${dry_run[@]}"} ${args[@]+"${args[@]}"}
