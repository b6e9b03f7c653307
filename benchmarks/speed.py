"""Training-step and decoding speed of Whisper on this machine, with in-run baselines.

    .venv/bin/python benchmarks/speed.py [--model tiny.en] [--data DIR] [--steps 6] [--adapters]

Prints, for the same real utterances:
- full fine-tuning seconds per optimizer step (batch 8) in float32 and with bf16 autocast
  (ratio bf16 / fp32), and peak resident memory;
- greedy decoding seconds per utterance at batch 1 and at batch 16 (ratio batch16 / batch1);
- with ``--adapters``: for LoRA, DoRA, PiSSA (r 8, α 16), SSVD, SSVD-O (LoRA's budget) and
  BLoRA (r 8, with its KL term) on the q and v projections, trainable parameters and bf16
  seconds per step, as a ratio to the bf16 full fine-tuning step of the same run.
The first step of each setting is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

from accelerate import Accelerator
from accelerate.state import AcceleratorState
from pydantic import TypeAdapter

from clasr.adapters import AdapterConfig, AdapterSettings, count_trainable
from clasr.adapters import extra_loss as adapter_extra_loss
from clasr.adapters.session import task_adapters, training_set
from clasr.data.batching import SpeechCollator
from clasr.data.manifest import Selection, read_dataset
from clasr.evaluate import transcribe
from clasr.models.whisper import load_whisper
from clasr.train import TrainConfig, train_task

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "arctic_kathleen_mini"
LORA_LIKE = {"r": 8, "alpha": 16.0}
ADAPTERS = {
    "lora": LORA_LIKE,
    "dora": LORA_LIKE,
    "pissa": LORA_LIKE,
    "ssvd": {"budget_rank": 8},
    "ssvd_o": {"budget_rank": 8},
    "blora": LORA_LIKE,
}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def step_seconds(model_name: str, utterances, steps: int, bf16: bool, batch_size: int = 8, **train_options) -> float:
    """Median seconds per optimizer step of full fine-tuning (first step excluded); ``train_options``:
    further :class:`TrainConfig` keys (e.g. ``encoder_window="fitted"``)."""
    bundle = load_whisper(model_name)
    return _median_step(bundle, utterances, steps, bf16, batch_size=batch_size, **train_options)


def adapter_step(
    model_name: str, utterances, steps: int, adapter: AdapterSettings, batch_size: int = 8, bf16: bool = True,
    **train_options,
) -> tuple[int, float]:
    """(trainable parameters, median seconds per step, bf16 by default) with ``adapter`` injected."""
    bundle = load_whisper(model_name)
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    with task_adapters(bundle.model, adapter, training_set(utterances, collator)):
        trainable = count_trainable(bundle.model)
        seconds = _median_step(
            bundle, utterances, steps, bf16, lambda model, batch, logits: adapter_extra_loss(model), batch_size,
            **train_options,
        )
    return trainable, seconds


def _median_step(
    bundle, utterances, steps: int, bf16: bool, extra_loss=None, batch_size: int = 8, warmup: int = 1, **train_options
) -> float:
    """Median seconds of ``steps`` optimizer steps after ``warmup`` untimed ones."""
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    config = TrainConfig(max_steps=steps + warmup, batch_size=batch_size, epochs=100, bf16=bf16, warmup_ratio=0.0,
                         **train_options)
    AcceleratorState._reset_state(reset_partial_state=True)  # else it keeps the mixed precision of a Trainer run before
    stats = train_task(bundle.model, utterances, collator, config, Accelerator(), extra_loss=extra_loss)
    return statistics.median(stats.step_seconds[warmup:])


def decode_seconds(model_name: str, utterances, batch_size: int) -> float:
    bundle = load_whisper(model_name)
    transcribe(bundle, utterances[:batch_size], batch_size)  # warm-up
    start = time.perf_counter()
    transcribe(bundle, utterances, batch_size)
    return (time.perf_counter() - start) / len(utterances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--decode-utterances", type=int, default=32)
    parser.add_argument("--adapters", action="store_true", help="also time every adapter against bf16 full FT")
    args = parser.parse_args()

    utterances, _ = read_dataset(args.data, Selection(max_duration=30.0))
    fp32 = step_seconds(args.model, utterances, args.steps, bf16=False)
    bf16 = step_seconds(args.model, utterances, args.steps, bf16=True)
    to_decode = utterances[: args.decode_utterances]
    batch1 = decode_seconds(args.model, to_decode, 1)
    batch16 = decode_seconds(args.model, to_decode, 16)
    figures = {
        "model": args.model,
        "data": str(args.data),
        "train_step_seconds_fp32": round(fp32, 3),
        "train_step_seconds_bf16": round(bf16, 3),
        "bf16_over_fp32": round(bf16 / fp32, 3),
        "decode_seconds_per_utterance_batch1": round(batch1, 3),
        "decode_seconds_per_utterance_batch16": round(batch16, 3),
        "batch16_over_batch1": round(batch16 / batch1, 3),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }
    if args.adapters:
        full = count_trainable(load_whisper(args.model).model)
        figures["full_ft_trainable_parameters"] = full
        for kind, options in ADAPTERS.items():
            config = TypeAdapter(AdapterConfig).validate_python({"type": kind, **options})
            trainable, seconds = adapter_step(args.model, utterances, args.steps, config)
            figures[f"adapter_{kind}"] = {
                "trainable_parameters": trainable,
                "share_of_full_ft_parameters": round(trainable / full, 5),
                "step_seconds_bf16": round(seconds, 3),
                "over_full_ft_bf16": round(seconds / bf16, 3),
            }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
