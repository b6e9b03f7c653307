#!/usr/bin/env bash
# The short-utterance sequence (examples/an4_short_sequence.yaml: AN4 isolated words and
# commands in 3 speaker groups, ARCTIC as the general set) with each named variant of
# variants.sh, guard off and on, then each run's table in Markdown (for docs/benchmarks.md).
#   bash benchmarks/an4_short_sequence.sh [NAME ...]          # default: ft lora
#   GUARD="off rollback" bash benchmarks/an4_short_sequence.sh ft   # guard modes to run (default: off rollback)
# A guard that is on checks every $GUARD_EVERY optimizer steps (default 5, the guard's default; tasks
# are 14–16 steps) on the first $GUARD_UTTERANCES dev prompts (default 8, to fit a shared 2-core CPU).
# Writes the short AN4 folder first if missing. Every run after the first reuses the
# foundation row of $FOUNDATION (default: the ft run with the guard off).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
CLASR=${CLASR:-.venv/bin/clasr}
PYTHON=${PYTHON:-.venv/bin/python}
FOUNDATION=${FOUNDATION:-results/an4_short-ft-guard_off}
GUARD=${GUARD:-off rollback}
GUARD_EVERY=${GUARD_EVERY:-5}
GUARD_UTTERANCES=${GUARD_UTTERANCES:-8}
[ -f results/data/an4_short/metadata.jsonl ] || $PYTHON benchmarks/make_an4_short.py ../shared/data/an4 results/data/an4_short
source benchmarks/variants.sh
NAMES=("${@:-ft lora}")
for name in ${NAMES[@]}; do
  for guard in $GUARD; do
    out=results/an4_short-$name-guard_$guard
    guard_args="--set guard=off"
    [ "$guard" = off ] || guard_args="--set guard.mode=$guard --set guard.every_steps=$GUARD_EVERY --set guard.utterances=$GUARD_UTTERANCES"
    reuse=()
    [ -f "$FOUNDATION/metrics.json" ] && [ "$FOUNDATION" != "$out" ] && reuse=(--foundation-from "$FOUNDATION")
    start=$(date +%s)
    # shellcheck disable=SC2086
    $CLASR run examples/an4_short_sequence.yaml --output "$out" "${reuse[@]}" ${VARIANT_ARGS[$name]} $guard_args \
      > "$out.log" 2>&1 || { echo "$name guard $guard failed: see $out.log"; continue; }
    echo "## $name, guard $guard (wall time $(( $(date +%s) - start )) s, including resumed work)"
    $CLASR show --markdown "$out"
  done
done
