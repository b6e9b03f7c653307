#!/usr/bin/env bash
# The AN4 → CMU ARCTIC example with each named variant (see variants.sh), then its table in
# Markdown (for docs/benchmarks.md). Needs ../shared/data (see examples/an4_then_arctic.yaml).
#   bash benchmarks/an4_then_arctic.sh [NAME ...]        # default: ft fta; 10–19 min each on 2 cores
# Every run after the first reuses the foundation row of $FOUNDATION (default: the ft run).
# SEEDS="0 1 2" makes every variant a sweep of those seeds (results/an4_then_arctic-seeds-NAME/,
# the mean over seeds with intervals; `clasr compare … --paired` tests them against each other).
# ARGS: further `clasr run` arguments for every variant (e.g. "--set model.window_seconds=12");
# PREFIX: where the runs go (default results/an4_then_arctic[-seeds]; each variant in $PREFIX-NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
CLASR=${CLASR:-.venv/bin/clasr}
SEEDS=${SEEDS:-}
ARGS=${ARGS:-}
PREFIX=${PREFIX:-results/an4_then_arctic${SEEDS:+-seeds}}
FOUNDATION=${FOUNDATION:-$PREFIX-ft}
source benchmarks/variants.sh
NAMES=("${@:-ft fta}")
for name in ${NAMES[@]}; do
  out=$PREFIX-$name
  reuse=()
  [ -f "$FOUNDATION/metrics.json" ] && [ "$FOUNDATION" != "$out" ] && reuse=(--foundation-from "$FOUNDATION")
  start=$(date +%s)
  # shellcheck disable=SC2086
  $CLASR run examples/an4_then_arctic.yaml --output "$out" "${reuse[@]}" ${SEEDS:+--seeds $SEEDS} ${VARIANT_ARGS[$name]} $ARGS > "$out.log" 2>&1 \
    || { echo "$name failed: see $out.log"; continue; }
  echo "## $name (wall time $(( $(date +%s) - start )) s, including resumed work)"
  $CLASR show --markdown "$out"
done
