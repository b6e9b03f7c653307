#!/usr/bin/env bash
# Every strategy, IHR variant and adapter on the demo's benchmark sequence (caribbean →
# telephone → child, general + real sets), each sharing the demo's foundation row:
#   bash benchmarks/bench_strategies.sh [NAME ...]      # default: all of them; ~2 min each
# Runs `make demo` first if results/demo is missing; prints one Markdown comparison table.
# SEEDS="0 1 2": every run a sweep of those seeds, in $DEMO (default results/demo-seeds, made by
# `clasr demo --seeds $SEEDS --output results/demo-seeds`), with paired tests against ft.
set -euo pipefail
CLASR=${CLASR:-.venv/bin/clasr}
SEEDS=${SEEDS:-}
DEMO=${DEMO:-results/demo${SEEDS:+-seeds}}
CONFIG=$DEMO/ft/config.yaml
if [ -n "$SEEDS" ]; then
  CONFIG=$DEMO/ft/seed${SEEDS%% *}/config.yaml
  [ -f "$CONFIG" ] || $CLASR demo --output "$DEMO" --seeds $SEEDS
fi
[ -f "$CONFIG" ] || make demo
source "$(dirname "$0")/variants.sh"
ORDER=(ihr-sum ihr-exact ewc lwf er joint encoder-only lora dora pissa ssvd ssvd-o blora centralize swap-lora)
NAMES=("${@:-${ORDER[@]}}")
for name in "${NAMES[@]}"; do
  # shellcheck disable=SC2086
  $CLASR run "$CONFIG" --output "$DEMO/$name" --foundation-from "$DEMO/ft" ${SEEDS:+--seeds $SEEDS} ${VARIANT_ARGS[$name]} > "$DEMO/$name.log" 2>&1 \
    || { echo "$name failed: see $DEMO/$name.log"; continue; }
  echo "$name done"
done
$CLASR compare "$DEMO/ft" "$DEMO/fta" "$DEMO/ihr" $(for n in "${NAMES[@]}"; do [ -f "$DEMO/$n/metrics.json" ] && echo "$DEMO/$n"; done) --markdown ${SEEDS:+--paired --against ft}
