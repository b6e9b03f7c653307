#!/usr/bin/env bash
# The AN4 → CMU ARCTIC example with each strategy, then its tables in Markdown (for docs/benchmarks.md).
# Needs ../shared/data (see examples/an4_then_arctic.yaml). Usage: bash benchmarks/an4_then_arctic.sh [strategies…]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
strategies=("${@:-ft fta}")
for strategy in ${strategies[@]}; do
  out=results/an4_then_arctic-$strategy
  start=$(date +%s)
  .venv/bin/clasr run examples/an4_then_arctic.yaml --strategy "$strategy" --output "$out" >/dev/null
  echo "## $strategy (wall time $(( $(date +%s) - start )) s, including resumed work)"
  .venv/bin/clasr show --markdown "$out"
  .venv/bin/python -c "import json,sys; t=json.load(open('$out/timings.json')); print(json.dumps([r['train'] for r in t['rows'] if r['train']], indent=1))"
done
