# Command-line arguments of every named strategy / IHR variant / adapter run, shared by
# bench_strategies.sh (demo sequence) and an4_then_arctic.sh (real speech). Sourced, not run.
# Adapters train at learning rate 1e-3 (LoRA/DoRA/PiSSA r 8, α 16; SSVD/SSVD-O at LoRA's budget).
LORA="--set adapter.r=8 --set adapter.alpha=16 --set train.learning_rate=1e-3"
declare -A VARIANT_ARGS=(
  [ft]="--strategy ft"
  [fta]="--strategy fta"
  [ihr]="--strategy ihr"
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
