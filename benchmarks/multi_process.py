"""Training and decoding throughput of N processes against one, on this machine's cores.

    .venv/bin/python benchmarks/multi_process.py [--model tiny.en] [--data DIR] [--processes 2]
                                                 [--steps 6] [--batch 4] [--window 10]

Full fine-tuning of ``--model`` (float32) on real utterances, with the same global batch in
both settings: one process with ``batch × processes`` per step as ``processes`` accumulated
batches, using every core as torch threads; then ``processes`` processes under ``accelerate
launch`` (gloo on a CPU), each with ``batch`` and cores / processes threads. Then greedy
decoding of ``--decode`` test utterances, whole in one process, sharded across the N.

Prints utterances per second of each (training: all processes together, timed from the
second optimizer step on; decoding: wall time of the sharded call) and the ratio N / 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "an4"


def worker(args: argparse.Namespace) -> None:
    """One setting, in this process (one of several when launched)."""
    import torch
    from accelerate import Accelerator

    from clasr.data.batching import SpeechCollator
    from clasr.data.manifest import Selection, read_dataset
    from clasr.decoding import DecodeLimits
    from clasr.distributed import is_main_process, process_state
    from clasr.evaluate import transcribe
    from clasr.models.whisper import load_whisper
    from clasr.train import TrainConfig, train_task

    world = process_state().num_processes
    bundle = load_whisper(args.model, args.window)
    train, _ = read_dataset(args.data, Selection(split="train", max_duration=args.window))
    test, _ = read_dataset(args.data, Selection(split="test", max_duration=args.window, max_utterances=args.decode))
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    config = TrainConfig(
        learning_rate=1e-5, batch_size=args.batch, grad_accumulation=args.processes // world, max_steps=args.steps,
        warmup_ratio=0.0, bf16=False,
    )
    stats = train_task(bundle.model, train, collator, config, Accelerator(), seed=0)
    step = statistics.median(stats.step_seconds[1:])
    start = time.perf_counter()
    transcribe(bundle, test, batch_size=8, limits=DecodeLimits(max_new_tokens=48))
    decode_seconds = time.perf_counter() - start
    if is_main_process():
        result = {
            "processes": world,
            "threads_per_process": torch.get_num_threads(),
            "median_step_seconds": step,
            "train_utterances_per_second": args.batch * args.processes / step,
            "decode_utterances": len(test),
            "decode_utterances_per_second": len(test) / decode_seconds,
        }
        Path(args.result).write_text(json.dumps(result))


def run_setting(args: argparse.Namespace, processes: int, result: Path) -> dict:
    from clasr.distributed import launch_command

    passed = [a for a in sys.argv[1:]] + ["--worker", "--result", str(result)]
    if processes == 1:
        command = [sys.executable, __file__, *passed]
        env = os.environ | {"OMP_NUM_THREADS": str(os.cpu_count())}
    else:
        command = launch_command(processes, [__file__, *passed])
        env = os.environ.copy()
    subprocess.run(command, check=True, env=env)
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4, help="utterances per process per step")
    parser.add_argument("--window", type=float, default=10.0, help="encoder window (s); longer utterances are left out")
    parser.add_argument("--decode", type=int, default=32, help="test utterances decoded")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as folder:
        results = [run_setting(args, n, Path(folder) / f"{n}.json") for n in (1, args.processes)]
    for r in results:
        print(json.dumps(r))
    one, many = results
    print(f"training: {many['train_utterances_per_second']:.2f} utt/s with {args.processes} processes vs "
          f"{one['train_utterances_per_second']:.2f} with 1: ratio {many['train_utterances_per_second'] / one['train_utterances_per_second']:.2f}")
    print(f"decoding: {many['decode_utterances_per_second']:.2f} utt/s with {args.processes} processes vs "
          f"{one['decode_utterances_per_second']:.2f} with 1: ratio {many['decode_utterances_per_second'] / one['decode_utterances_per_second']:.2f}")


if __name__ == "__main__":
    main()
