#!/usr/bin/env bash
# Every strategy, IHR variant and adapter on the demo's benchmark sequence (caribbean →
# telephone → child, general + real sets), each sharing the demo's foundation row:
#   bash benchmarks/bench_strategies.sh [NAME ...]      # default: all of them; ~2 min each
# Runs `make demo` first if results/demo is missing; prints one Markdown comparison table.
set -euo pipefail
CLASR=${CLASR:-.venv/bin/clasr}
DEMO=${DEMO:-results/demo}
[ -f "$DEMO/ft/config.yaml" ] || make demo
source "$(dirname "$0")/variants.sh"
ORDER=(ihr-sum ihr-exact ewc lwf er joint encoder-only lora dora pissa ssvd ssvd-o blora centralize swap-lora)
NAMES=("${@:-${ORDER[@]}}")
for name in "${NAMES[@]}"; do
  # shellcheck disable=SC2086
  $CLASR run "$DEMO/ft/config.yaml" --output "$DEMO/$name" --foundation-from "$DEMO/ft" ${VARIANT_ARGS[$name]} > "$DEMO/$name.log" 2>&1 \
    || { echo "$name failed: see $DEMO/$name.log"; continue; }
  echo "$name done"
done
$CLASR compare "$DEMO/ft" "$DEMO/fta" "$DEMO/ihr" $(for n in "${NAMES[@]}"; do [ -f "$DEMO/$n/metrics.json" ] && echo "$DEMO/$n"; done) --markdown
