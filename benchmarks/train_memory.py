"""Where the memory of full fine-tuning goes, per model size, with and without activation checkpointing.

    .venv/bin/python benchmarks/train_memory.py [--models tiny.en,base] [--batch-size 8] [--steps 2]

Each (model, ``train.gradient_checkpointing``) setting runs in a fresh process, because peak
resident memory is a property of a process. Per setting, full fine-tuning in float32 at the
model's 30 s window on the bundled ARCTIC mini set:

- computed from the parameter counts (float32, 4 bytes each): the weights, their gradients and
  AdamW's state (two moments per trainable parameter);
- measured: resident memory after loading the model; the activations autograd keeps for the
  backward pass of one batch (every tensor saved by a forward pass, counted once per storage
  through ``torch.autograd.graph.saved_tensors_hooks``, parameters excluded); peak resident
  memory over ``--steps`` training steps after one warm-up step; their median seconds;
- for checkpointing, its ratios to the run without it (peak memory, activations, step time).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "arctic_kathleen_mini"
MB = 1024**2


def resident_mb() -> float:
    """This process's resident memory now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def saved_activation_mb(model, batch) -> float:
    """Megabytes of the tensors one training forward pass saves for its backward pass (each
    storage once, the parameters' own storages excluded)."""
    from clasr.models.teacher_forcing import teacher_forced_logits, token_loss

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = token_loss(teacher_forced_logits(model, batch), batch.labels)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values()) / MB


def measure(model_name: str, checkpointing: bool, batch_size: int, steps: int, data: Path) -> dict:
    """One setting, in this process."""
    from accelerate import Accelerator

    from clasr.data.batching import SpeechCollator
    from clasr.data.manifest import Selection, read_dataset
    from clasr.models.whisper import load_whisper
    from clasr.train import TrainConfig, activation_checkpointing, train_task

    utterances, _ = read_dataset(data, Selection(max_duration=30.0))
    before = resident_mb()
    bundle = load_whisper(model_name)
    loaded = resident_mb()
    model = bundle.model
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    batch = collator(utterances[:batch_size], range(batch_size))
    model.train()
    with activation_checkpointing(model, checkpointing):
        activations = saved_activation_mb(model, batch)
    config = TrainConfig(max_steps=steps + 1, batch_size=batch_size, epochs=100, bf16=False, warmup_ratio=0.0,
                         gradient_checkpointing=checkpointing)
    stats = train_task(model, utterances, collator, config, Accelerator(cpu=True))
    return {
        "model": model_name, "gradient_checkpointing": checkpointing, "batch_size": batch_size,
        "parameters": total, "trainable_parameters": trainable,
        "weights_mb": round(4 * total / MB), "gradients_mb": round(4 * trainable / MB),
        "adamw_state_mb": round(8 * trainable / MB),
        "rss_before_model_mb": round(before), "rss_after_loading_mb": round(loaded),
        "saved_activations_mb": round(activations),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "median_step_seconds": round(stats.median_step_seconds, 2),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1] == "true", args.batch_size, args.steps, args.data)))
        return
    rows = []
    for model in args.models.split(","):
        for checkpointing in ("false", "true"):
            command = [sys.executable, __file__, "--one", model, checkpointing, "--batch-size", str(args.batch_size),
                       "--steps", str(args.steps), "--data", str(args.data)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        plain, checkpointed = rows[-2], rows[-1]
        checkpointed["over_no_checkpointing"] = {
            key: round(checkpointed[key] / plain[key], 2)
            for key in ("peak_rss_mb", "saved_activations_mb", "median_step_seconds")
        }
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
