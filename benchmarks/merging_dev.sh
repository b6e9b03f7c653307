#!/bin/bash
# Merging baselines against FT and FTA on the demo sequence's dev splits (issue 14.5), float32.
#   bash benchmarks/merging_dev.sh [NAME …]     (default: every NAME below, in this order)
# NAME: ft fta ta ties dare ta-grid centralize. Runs go to results/tune-merging/<run>; every run
# reuses the first run's foundation row. Each prints its dev comparison table.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/tune-merging}
TUNE=(.venv/bin/python benchmarks/tune_on_dev.py --output "$OUT")
FOUNDATION=()
[ -d "$OUT/ft-bf16false" ] && FOUNDATION=(--foundation-from "$OUT/ft-bf16false")
run() { "${TUNE[@]}" "${FOUNDATION[@]}" "$@"; FOUNDATION=(--foundation-from "$OUT/ft-bf16false"); }
for name in "${@:-ft fta ta ties dare ta-grid centralize}"; do for n in $name; do
  case $n in
    ft) run ft --grid train.bf16=false ;;
    fta) run fta --grid train.bf16=false ;;
    ta) run task_arithmetic --set train.bf16=false --grid strategy.scale=0.5 ;;
    ties) run ties --set train.bf16=false --grid strategy.scale=1.0 ;;
    dare) run dare --set train.bf16=false --grid strategy.scale=0.5 ;;
    ta-grid) run task_arithmetic --set train.bf16=false --grid strategy.scale=0.3,1.0 ;;
    centralize) run centralize --name centralize-lora --set train.bf16=false --set adapter.type=lora \
                  --set train.learning_rate=3e-3 --grid strategy.average=products,factors ;;
    *) echo "unknown run $n" >&2; exit 2 ;;
  esac
done; done
