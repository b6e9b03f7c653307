# Command-line arguments of every named strategy / IHR variant / adapter run, shared by
# bench_strategies.sh (demo sequence) and an4_then_arctic.sh (real speech). Sourced, not run.
# Adapters: r 8, α 16 on q and v (SSVD/SSVD-O at LoRA's parameter budget); learning rates
# chosen on the demo's dev splits (benchmarks/tune_on_dev.py): 3e-3 for LoRA, DoRA and
# BLoRA (1e-3 under-learns, 1e-2 diverges), 1e-3 for PiSSA and SSVD/SSVD-O (3e-3 forgets twice as much).
LORA_SHAPE="--set adapter.r=8 --set adapter.alpha=16"
LORA="$LORA_SHAPE --set train.learning_rate=3e-3"
SSVD="--set adapter.budget_rank=8 --set train.learning_rate=1e-3"
declare -A VARIANT_ARGS=(
  [ft]="--strategy ft"
  [fta]="--strategy fta"
  [ihr]="--strategy ihr"
  [ihr-sum]="--strategy ihr --set strategy.past=sum"
  [ihr-exact]="--strategy ihr --set strategy.past=exact"
  # AN4 → ARCTIC only: the foundation's curvature on ARCTIC prompts that no run trains or scores
  # (train rows 201–593; task 2 trains on rows 1–200, the general set is the test split)
  # demo only: anchored on the general sets' held-out rows (the synthetic set's dev split, the ARCTIC mini's train split)
  [ihr-anchor-general]="--strategy ihr --set strategy.anchor=general --set general.0.dev.split=dev --set general.1.dev.split=train"
  [ihr-anchor]='--strategy ihr --set strategy.anchor={"data":"../../shared/data/arctic_kathleen","split":"train","skip":200}'
  [ewc]="--strategy ewc"
  [lwf]="--strategy lwf"
  [er]="--strategy er"
  [joint]="--strategy joint"
  [task-arithmetic]="--strategy task_arithmetic"
  [ties]="--strategy ties"
  [dare]="--strategy dare"
  [encoder-only]="--strategy frozen --set strategy.part=encoder"
  [lora]="--set adapter.type=lora $LORA"
  [dora]="--set adapter.type=dora $LORA"
  [pissa]="--set adapter.type=pissa $LORA_SHAPE --set train.learning_rate=1e-3"
  [ssvd]="--set adapter.type=ssvd $SSVD"
  [ssvd-o]="--set adapter.type=ssvd_o $SSVD"
  [blora]="--set adapter.type=blora $LORA"
  [centralize]="--strategy centralize --set adapter.type=lora $LORA"
  # a stored config sets train.weight_decay (0) itself, so the preset's decay is given explicitly
  [centralize-paper]="--strategy centralize --set strategy.preset=paper --set train.weight_decay=0.01 --set adapter.type=lora $LORA"
  [swap-lora]="--strategy swap --set adapter.type=lora $LORA"
)
