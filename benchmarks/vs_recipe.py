"""Training throughput: the standard recipe (transformers Seq2SeqTrainer + peft LoRA) against
clasr's training loop, on the same utterances, in one run.

    .venv/bin/python benchmarks/vs_recipe.py [--model tiny.en] [--data DIR] [--steps 4] [--batch-size 8]

Settings timed, each for ``--steps`` optimizer steps after one untimed warm-up step, batch
``--batch-size``, the model's 30 s window:

- recipe LoRA fp32 / bf16: ``Seq2SeqTrainer`` on a peft LoRA model (r 8, α 16, q and v
  projections), fp32 and with ``bf16=True`` (autocast);
- clasr LoRA bf16 and clasr full fine-tuning bf16 / fp32: ``clasr.train.train_task``.

Prints the median seconds per step, utterances per second, and each setting's ratio to the
recipe's bf16 LoRA throughput. ``--model`` may be a local transformers folder (e.g. a tiny
random model, to check the script quickly).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from pydantic import TypeAdapter
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

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
    """Wall-clock seconds of every optimizer step of a Trainer."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.start)


class RecipeDataset(torch.utils.data.Dataset):
    """What the recipe's ``prepare_dataset`` map yields: log-mel features and label ids."""

    def __init__(self, bundle, utterances):
        self.collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
        self.utterances = utterances

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i: int) -> dict:
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


def recipe_step_seconds(model_name: str, utterances, steps: int, batch_size: int, bf16: bool, out: Path) -> float:
    from peft import LoraConfig, get_peft_model

    bundle = load_whisper(model_name)
    model = get_peft_model(
        bundle.model,
        LoraConfig(r=LORA["r"], lora_alpha=int(LORA["alpha"]), target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    args = Seq2SeqTrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch_size, max_steps=steps + 1, learning_rate=1e-3,
        warmup_steps=0, bf16=bf16, use_cpu=not torch.cuda.is_available(), report_to=[], save_strategy="no",
        logging_strategy="no", remove_unused_columns=False, dataloader_num_workers=0, seed=0,
    )
    times = StepTimes()
    trainer = Seq2SeqTrainer(
        model=model, args=args, train_dataset=RecipeDataset(bundle, utterances), data_collator=pad_labels,
        callbacks=[times],
    )
    trainer.train()
    return statistics.median(times.seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("/tmp/clasr-vs-recipe"))
    args = parser.parse_args()

    utterances, _ = read_dataset(args.data, Selection(split="train", max_utterances=args.batch_size * (args.steps + 1)))
    lora = TypeAdapter(AdapterConfig).validate_python({"type": "lora", **LORA})
    seconds = {
        "recipe_lora_fp32": recipe_step_seconds(args.model, utterances, args.steps, args.batch_size, False, args.out),
        "recipe_lora_bf16": recipe_step_seconds(args.model, utterances, args.steps, args.batch_size, True, args.out),
        "clasr_lora_bf16": speed.adapter_step(args.model, utterances, args.steps, lora, args.batch_size)[1],
        "clasr_full_ft_bf16": speed.step_seconds(args.model, utterances, args.steps, True, args.batch_size),
        "clasr_full_ft_fp32": speed.step_seconds(args.model, utterances, args.steps, False, args.batch_size),
    }
    baseline = args.batch_size / seconds["recipe_lora_bf16"]
    figures = {"model": args.model, "data": str(args.data), "batch_size": args.batch_size, "steps": args.steps,
               "torch_threads": torch.get_num_threads(), "settings": {}}
    for name, step in seconds.items():
        rate = args.batch_size / step
        figures["settings"][name] = {
            "step_seconds": round(step, 3),
            "utterances_per_second": round(rate, 3),
            "over_recipe_lora_bf16": round(rate / baseline, 2),
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
