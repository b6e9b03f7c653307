"""Training throughput: the standard recipe (transformers Seq2SeqTrainer + peft LoRA) against
clasr's training loop, on the same utterances, in one run.

    .venv/bin/python benchmarks/vs_recipe.py [--model tiny.en] [--data DIR] [--steps 4] [--batch-size 8]
        [--settings NAME,NAME,…]

Settings timed (``--settings``: a subset, in this order), each for ``--steps`` optimizer steps
after one untimed warm-up step, batch ``--batch-size``, the model's 30 s window unless named:

- ``recipe_{lora,full_ft}_{fp32,bf16}``: ``Seq2SeqTrainer`` (its default fused AdamW) on a peft
  LoRA model (r 8, α 16, q and v projections) or the whole model, fp32 and with ``bf16=True``;
- ``clasr_{lora,full_ft}_{fp32,bf16}``: ``clasr.train.train_task`` (fused AdamW);
- ``clasr_{lora,full_ft}_fp32_fitted``: the same with ``train.encoder_window: fitted`` (each
  batch's encoder window fitted to its longest utterance, whole seconds);
- ``clasr_full_ft_fp32_unfused``: clasr's full fine-tuning with the for-loop AdamW it used
  before (the fused optimizer's in-run gain);
- ``clasr_full_ft_fp32_compiled``: clasr's full fine-tuning with the model's forward through
  ``torch.compile`` (dynamic shapes; 3 untimed steps absorb the compilation, the data cycled as further epochs).

Prints the median seconds per step, utterances per second, and each setting's throughput
ratio to every recipe setting of the same run. ``--model`` may be a local transformers folder
(e.g. a tiny random model, to check the script quickly).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate.state import AcceleratorState
from pydantic import TypeAdapter
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

import clasr.train
from clasr.adapters import AdapterConfig
from clasr.data.audio import load_audio
from clasr.data.batching import SpeechCollator
from clasr.data.manifest import Selection, read_dataset
from clasr.models.whisper import load_whisper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (benchmarks/speed.py: clasr's step timings)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arctic_kathleen"
LORA = {"r": 8, "alpha": 16.0}


class StepTimes(TrainerCallback):
    """Wall-clock seconds of every optimizer step of a Trainer, from the end of the previous step
    (the first: from its start) to its own end, so that loading the step's batch counts, as it does
    in clasr's step times (the Trainer fetches the batch before ``on_step_begin``)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.last = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.last = self.last or time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the step's queued GPU work counts too
        now = time.perf_counter()
        self.seconds.append(now - self.last)
        self.last = now


class RecipeDataset(torch.utils.data.Dataset):
    """What the recipe's ``prepare_dataset`` map yields: log-mel features and label ids, built on
    each access, or with ``precompute`` all once here (as ``dataset.map`` does before training)."""

    def __init__(self, bundle, utterances, precompute: bool = False):
        self.collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
        self.utterances = utterances
        self.items = [self.item(i) for i in range(len(utterances))] if precompute else None

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i: int) -> dict:
        return self.items[i] if self.items is not None else self.item(i)

    def item(self, i: int) -> dict:
        utterance = self.utterances[i]
        features, _ = self.collator.features([load_audio(utterance.audio_path)])
        labels = self.collator.prompt[1:] + self.collator.target_ids(utterance.text) + [self.collator.eot]
        return {"input_features": features[0], "labels": labels}


def pad_labels(rows: list[dict]) -> dict:
    """The recipe's data collator: stack features, pad labels with -100 (the model prepends
    the decoder start token itself)."""
    width = max(len(row["labels"]) for row in rows)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        labels[i, : len(row["labels"])] = torch.tensor(row["labels"])
    return {"input_features": torch.stack([row["input_features"] for row in rows]), "labels": labels}


def recipe_step_seconds(
    model_name: str, utterances, steps: int, batch_size: int, bf16: bool, out: Path, lora: bool = True,
    warmup: int = 1, num_workers: int = 0, precompute: bool = False,
) -> float:
    """Median seconds of ``steps`` optimizer steps after ``warmup`` untimed ones; ``num_workers``
    data loader processes; ``precompute``: features built before training (see RecipeDataset)."""
    from peft import LoraConfig, get_peft_model

    bundle = load_whisper(model_name)
    model = bundle.model
    if lora:
        model = get_peft_model(
            model,
            LoraConfig(r=LORA["r"], lora_alpha=int(LORA["alpha"]), target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
        )
    args = Seq2SeqTrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch_size, max_steps=steps + warmup, learning_rate=1e-3,
        warmup_steps=0, bf16=bf16, use_cpu=not torch.cuda.is_available(), report_to=[], save_strategy="no",
        logging_strategy="no", remove_unused_columns=False, dataloader_num_workers=num_workers, seed=0,
    )
    times = StepTimes()
    trainer = Seq2SeqTrainer(
        model=model, args=args, train_dataset=RecipeDataset(bundle, utterances, precompute), data_collator=pad_labels,
        callbacks=[times],
    )
    trainer.train()
    return statistics.median(times.seconds[warmup:])


@contextmanager
def unfused_adamw():
    """clasr's training loop with the for-loop AdamW (no device takes the fused kernel)."""
    devices = clasr.train.FUSED_ADAMW_DEVICES
    clasr.train.FUSED_ADAMW_DEVICES = ()
    try:
        yield
    finally:
        clasr.train.FUSED_ADAMW_DEVICES = devices


def settings(args, utterances) -> dict:
    """Setting name → a function timing it (median seconds per step)."""
    lora = TypeAdapter(AdapterConfig).validate_python({"type": "lora", **LORA})
    common = (args.model, utterances, args.steps)

    def recipe(adapter: bool, bf16: bool):
        return lambda: recipe_step_seconds(*common, args.batch_size, bf16, args.out, lora=adapter)

    def clasr_lora(bf16: bool, **options):
        return lambda: speed.adapter_step(*common, lora, args.batch_size, bf16=bf16, **options)[1]

    def clasr_full(bf16: bool, **options):
        return lambda: speed.step_seconds(*common, bf16, args.batch_size, **options)

    def unfused():
        with unfused_adamw():
            return speed.step_seconds(*common, False, args.batch_size)

    def compiled():
        bundle = load_whisper(args.model)
        bundle.model.forward = torch.compile(bundle.model.forward, dynamic=True)
        return speed._median_step(bundle, utterances, args.steps, False, batch_size=args.batch_size, warmup=3)

    return {
        "recipe_lora_fp32": recipe(True, False),
        "recipe_lora_bf16": recipe(True, True),
        "recipe_full_ft_fp32": recipe(False, False),
        "recipe_full_ft_bf16": recipe(False, True),
        "clasr_lora_fp32": clasr_lora(False),
        "clasr_lora_bf16": clasr_lora(True),
        "clasr_full_ft_fp32": clasr_full(False),
        "clasr_full_ft_bf16": clasr_full(True),
        "clasr_lora_fp32_fitted": clasr_lora(False, encoder_window="fitted"),
        "clasr_full_ft_fp32_fitted": clasr_full(False, encoder_window="fitted"),
        "clasr_full_ft_fp32_unfused": unfused,
        "clasr_full_ft_fp32_compiled": compiled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--settings", help="comma-separated names (default: all); see the docstring")
    parser.add_argument("--out", type=Path, default=Path("/tmp/clasr-vs-recipe"))
    args = parser.parse_args()

    utterances, _ = read_dataset(args.data, Selection(split="train", max_utterances=args.batch_size * (args.steps + 1)))
    timers = settings(args, utterances)
    chosen = args.settings.split(",") if args.settings else list(timers)
    unknown = sorted(set(chosen) - set(timers))
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {', '.join(timers)}")
    seconds = {}
    for name in (n for n in timers if n in chosen):
        AcceleratorState._reset_state(reset_partial_state=True)  # the Trainer's bf16 must not reach the next setting
        seconds[name] = timers[name]()
        print(f"{name}: {seconds[name]:.3f} s/step", file=sys.stderr, flush=True)
    rates = {name: args.batch_size / step for name, step in seconds.items()}
    recipes = [name for name in rates if name.startswith("recipe_")]
    figures = {"model": args.model, "data": str(args.data), "batch_size": args.batch_size, "steps": args.steps,
               "torch_threads": torch.get_num_threads(), "settings": {}}
    for name, rate in rates.items():
        figures["settings"][name] = {
            "step_seconds": round(seconds[name], 3),
            "utterances_per_second": round(rate, 3),
            **{f"over_{recipe}": round(rate / rates[recipe], 2) for recipe in recipes},
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
