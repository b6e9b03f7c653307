#!/usr/bin/env bash
# Every strategy, IHR variant and adapter on the demo's benchmark sequence (caribbean →
# telephone → child, general + real sets), each sharing the demo's foundation row:
#   bash benchmarks/bench_strategies.sh [NAME ...]      # default: all of them; ~2 min each
# Runs `make demo` first if results/demo is missing; prints one Markdown comparison table.
# Adapters train at learning rate 1e-3 (not tuned on dev yet).
set -euo pipefail
CLASR=${CLASR:-.venv/bin/clasr}
DEMO=${DEMO:-results/demo}
[ -f "$DEMO/ft/config.yaml" ] || make demo
LORA="--set adapter.r=8 --set adapter.alpha=16 --set train.learning_rate=1e-3"
declare -A ARGS=(
  [ihr-sum]="--strategy ihr --set strategy.past=sum"
  [ihr-exact]="--strategy ihr --set strategy.past=exact"
  [ewc]="--strategy ewc"
  [lwf]="--strategy lwf"
  [er]="--strategy er"
  [joint]="--strategy joint"
  [encoder-only]="--strategy frozen --set strategy.part=encoder"
  [lora]="--set adapter.type=lora $LORA"
  [dora]="--set adapter.type=dora $LORA"
  [pissa]="--set adapter.type=pissa $LORA"
  [ssvd]="--set adapter.type=ssvd --set adapter.budget_rank=8 --set train.learning_rate=1e-3"
  [ssvd-o]="--set adapter.type=ssvd_o --set adapter.budget_rank=8 --set train.learning_rate=1e-3"
  [blora]="--set adapter.type=blora $LORA"
  [centralize]="--strategy centralize --set adapter.type=lora $LORA"
  [swap-lora]="--strategy swap --set adapter.type=lora $LORA"
)
ORDER=(ihr-sum ihr-exact ewc lwf er joint encoder-only lora dora pissa ssvd ssvd-o blora centralize swap-lora)
NAMES=("${@:-${ORDER[@]}}")
for name in "${NAMES[@]}"; do
  # shellcheck disable=SC2086
  $CLASR run "$DEMO/ft/config.yaml" --output "$DEMO/$name" --foundation-from "$DEMO/ft" ${ARGS[$name]} > "$DEMO/$name.log" 2>&1 \
    || { echo "$name failed: see $DEMO/$name.log"; continue; }
  echo "$name done"
done
$CLASR compare "$DEMO/ft" "$DEMO/fta" "$DEMO/ihr" $(for n in "${NAMES[@]}"; do [ -f "$DEMO/$n/metrics.json" ] && echo "$DEMO/$n"; done) --markdown
