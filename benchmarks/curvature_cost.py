"""What IHR's curvature costs next to training, measured in one run on the same batches.

    .venv/bin/python benchmarks/curvature_cost.py [--data DIR] [--window 30] [--batches 8]

Prints, for tiny.en on the same batches of 8 utterances:
- seconds per full fine-tuning step with bf16 autocast (the baseline);
- seconds per K-FAC batch (forward + backward with hooks, every Linear but proj_out), with
  fp32 passes and with bf16 autocast, and their ratio to a training step;
- the relative Frobenius difference between the bf16 and the fp32 factors (mean over layers);
- the factors' memory.
A task of S training steps and IHR's default 8 curvature batches then costs
8 · (K-FAC batch) / (S · step) of its training time for the collection.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from clasr.data.batching import SpeechCollator, make_loader
from clasr.data.manifest import Selection, read_dataset
from clasr.models.whisper import load_whisper
from clasr.strategies.ihr import whisper_kfac
from clasr.train import TrainConfig, train_task

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "arctic_kathleen_mini"


def kfac_seconds(bundle, loader, batches: int, bf16: bool):
    whisper_kfac(bundle.model, loader, max_batches=1, bf16=bf16)  # warm-up
    start = time.perf_counter()
    factors = whisper_kfac(bundle.model, loader, max_batches=batches, bf16=bf16)
    return (time.perf_counter() - start) / batches, factors


def relative_difference(a, b) -> float:
    diffs = [torch.linalg.norm(a.A[k] - b.A[k]) / torch.linalg.norm(b.A[k]) for k in b.A]
    diffs += [torch.linalg.norm(a.G[k] - b.G[k]) / torch.linalg.norm(b.G[k]) for k in b.G]
    return float(torch.stack(diffs).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    utterances, _ = read_dataset(args.data, Selection(max_duration=args.window))
    bundle = load_whisper(args.model, args.window)
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    config = TrainConfig(max_steps=args.steps + 1, batch_size=8, epochs=100, bf16=True, warmup_ratio=0.0)
    step = train_task(bundle.model, utterances, collator, config, Accelerator()).median_step_seconds
    loader = list(make_loader(utterances, collator, 8, shuffle=True, seed=0))
    fp32, exact = kfac_seconds(bundle, loader, args.batches, bf16=False)
    bf16, approx = kfac_seconds(bundle, loader, args.batches, bf16=True)
    print(json.dumps({
        "model": args.model, "window_seconds": args.window, "data": str(args.data),
        "train_step_seconds_bf16": round(step, 3),
        "kfac_batch_seconds_fp32": round(fp32, 3), "kfac_fp32_over_step": round(fp32 / step, 2),
        "kfac_batch_seconds_bf16": round(bf16, 3), "kfac_bf16_over_step": round(bf16 / step, 2),
        "bf16_factor_relative_difference": round(relative_difference(approx, exact), 4),
        "factor_memory_mb": round(exact.memory_bytes() / 1e6, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
