#!/usr/bin/env bash
# The training-window trade-off on dev: benchmarks/window_dev.yaml trained at the model's window
# and at a window fitted to each batch (the second run reuses the first one's foundation row),
# then both compared on the same dev utterances (paired bootstrap intervals) with each run's
# training time. Extra arguments go to both runs (e.g. --set adapter.type=lora).
#
#     OUT=results/window_dev bash benchmarks/window_dev.sh [--set KEY=VALUE …]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/window_dev}
CLASR=.venv/bin/clasr
$CLASR run benchmarks/window_dev.yaml -o "$OUT/model" --set train.encoder_window=model "$@"
$CLASR run benchmarks/window_dev.yaml -o "$OUT/fitted" --set train.encoder_window=fitted \
    --foundation-from "$OUT/model" "$@"
$CLASR compare "$OUT/model" "$OUT/fitted" --paired --markdown
for run in model fitted; do
    .venv/bin/python -c "import json, sys; rows = json.load(open(sys.argv[1]))['rows']; \
print(sys.argv[2], 'training seconds:', [r.get('train', {}).get('seconds') for r in rows[1:]])" \
        "$OUT/$run/progress/state.json" "$run"
done
