"""Data at scale: reading and selecting a 100,000-row manifest, and training throughput with
and without DataLoader workers on a corpus of ≥ 20,000 rows made by tiling real files.

    .venv/bin/python benchmarks/data_scale.py [--source ../shared/data/arctic_kathleen] [--rows 100000]
        [--train-rows 20000] [--steps 12] [--workers 0 2] [--model tiny.en] [--work /tmp/clasr-data-scale]

1. Tiling: every row of the real source set gets one hard link per copy (distinct paths, so
   no header is read twice from one name), an ``accents`` column cycling through five values
   and a ``split``; ``--rows`` rows in all.
2. Reading: ``read_dataset`` of the whole manifest (every row validated, every header probed),
   then of one ``where`` selection (a fifth of the rows); seconds and peak memory (RSS).
3. Training: ``train_task`` on the first ``--train-rows`` rows of the train split, ``--steps``
   optimizer steps per setting, settings interleaved (0, 2, 0, 2 workers…) so that load from
   other jobs on the machine falls on all of them; the first step of each run (warm-up) is not
   timed. Prints utterances/s per setting and the ratio to 0 workers measured in this run.
   Two models: the tests' tiny random Whisper (2 s window, audio cut to it: a step costs little
   beside decoding, the case workers are for) and tiny.en at its 30 s window.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

ACCENTS = ("us", "england", "australia", "india", "scotland")
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "arctic_kathleen"


def tile(source: Path, folder: Path, rows: int) -> Path:
    """A dataset of ``rows`` rows whose audio are hard links to the source set's files."""
    from clasr.data.manifest import read_dataset

    if (folder / "metadata.jsonl").is_file() and sum(1 for _ in (folder / "metadata.jsonl").open()) == rows:
        return folder
    utterances, _ = read_dataset(source)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    lines = []
    for n in range(rows):
        u = utterances[n % len(utterances)]
        name = f"audio/{n // 1000:03d}/{n:06d}{u.audio_path.suffix}"
        (folder / name).parent.mkdir(exist_ok=True)
        if not (folder / name).exists():
            os.link(u.audio_path, folder / name)
        split = "test" if n % 50 == 49 else "train"
        lines.append({"file_name": name, "text": u.text, "speaker": f"s{n % 97}", "split": split,
                      "accents": ACCENTS[n % len(ACCENTS)], "duration": round(u.duration, 3)})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_reading(folder: Path) -> dict:
    from clasr.data.manifest import Selection, read_dataset

    start = time.perf_counter()
    everything, report = read_dataset(folder)
    whole = time.perf_counter() - start
    start = time.perf_counter()
    selected, _ = read_dataset(folder, Selection(split="train", where={"accents": ["england"]}))
    where = time.perf_counter() - start
    return {"rows": report.rows, "read_all_s": round(whole, 2), "kept": len(everything),
            "where_s": round(where, 2), "where_kept": len(selected), "peak_rss_mb": round(peak_rss_mb())}


def time_training(folder: Path, train_rows: int, steps: int, workers: list[int], model: str, rounds: int) -> dict:
    import torch
    from accelerate import Accelerator

    from clasr.data.batching import SpeechCollator
    from clasr.data.manifest import Selection, read_dataset
    from clasr.models.whisper import load_whisper, tiny_random_whisper
    from clasr.train import TrainConfig, train_task

    utterances, _ = read_dataset(folder, Selection(split="train", max_utterances=train_rows))
    results: dict[int, list[float]] = {w: [] for w in workers}
    for _ in range(rounds):
        for w in workers:
            bundle = tiny_random_whisper(seed=0) if model == "random" else load_whisper(model)
            collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
            config = TrainConfig(learning_rate=1e-5, max_steps=steps, batch_size=8, num_workers=w, bf16=True)
            stats = train_task(bundle.model, utterances, collator, config, Accelerator(cpu=True), seed=0)
            timed = stats.step_seconds[1:]
            results[w].append(8 * len(timed) / sum(timed))
            print(f"  {model} workers={w}: {results[w][-1]:.2f} utt/s (median step {statistics.median(timed):.3f} s)",
                  flush=True)
            del bundle
    base = statistics.median(results[workers[0]])
    return {
        "model": model, "train_utterances": len(utterances), "steps": steps, "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        "utt_per_s": {w: round(statistics.median(v), 2) for w, v in results.items()},
        "ratio_to_first": {w: round(statistics.median(v) / base, 3) for w, v in results.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--model", nargs="+", default=["random", "tiny.en"],
                        help="'random': the tests' tiny random Whisper with its 2 s window, where decoding dominates "
                        "a step; tiny.en: the real model at the 30 s window")
    parser.add_argument("--work", type=Path, default=Path("/tmp/clasr-data-scale"))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the training process (1: on a shared CPU, two threads made small "
                        "ops many times slower)")
    parser.add_argument("--skip-reading", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    folder = tile(args.source, args.work / f"tiled{args.rows}", args.rows)
    print(f"tiled {args.rows} rows from {args.source} in {time.perf_counter() - start:.1f} s", flush=True)
    reading = None if args.skip_reading else time_reading(folder)
    print("reading:", json.dumps(reading), flush=True)
    training = []
    if not args.skip_training:
        import torch

        torch.set_num_threads(args.threads)
        for model in args.model:
            training.append(time_training(folder, args.train_rows, args.steps, args.workers, model, args.rounds))
            print("training:", json.dumps(training[-1]), flush=True)
    print(json.dumps({"reading": reading, "training": training}, indent=2))


if __name__ == "__main__":
    main()
