"""Evaluation speed: transformers' ASR pipeline vs clasr's torch decoder vs clasr's CTranslate2
engine (float32 and int8), on the same real utterances, in one run.

    .venv/bin/python benchmarks/eval_speed.py [--model tiny.en] [--per-set 32] [--batch-size 16]

Every engine decodes greedily at batch 16 with the model's 30 s window; each first decodes a
few utterances untimed (warm-up). Prints, per engine: utterances per second, the ratio to the
pipeline, WER (Whisper English normalizer), and how many hypotheses equal the torch decoder's.
For CTranslate2 the conversion of the weights (done once per set of weights) is timed apart
and also included in a second utterances-per-second figure.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from clasr import engines
from clasr.data.audio import load_audio
from clasr.data.manifest import Selection, read_dataset
from clasr.decoding import DecodeLimits, suppressed_ids
from clasr.evaluate import transcribe
from clasr.metrics.text import get_normalizer
from clasr.metrics.wer import corpus_score, score_utterance
from clasr.models.whisper import load_whisper, resolve_model

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = ("arctic_kathleen", "an4")
WARM_UP = 4


def wer(utterances, hypotheses: list[str]) -> float:
    normalize = get_normalizer("whisper_english")
    return corpus_score([score_utterance(u.text, h, normalize)[0] for u, h in zip(utterances, hypotheses)]).wer


def pipeline_hypotheses(model_path: Path, utterances, batch_size: int) -> tuple[list[str], float]:
    """transformers' ASR pipeline, greedy, batched; (hypotheses, seconds) after a warm-up."""
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(model_path), device="cpu")
    eot = asr.tokenizer.eos_token_id
    asr.tokenizer.pad_token_id = eot  # the pipeline batches only with a pad token (Whisper pads with end-of-text)
    greedy = {"num_beams": 1, "do_sample": False, "max_new_tokens": DecodeLimits().max_new_tokens,
              "suppress_tokens": suppressed_ids(asr.model, eot, first_step=False)}
    audios = [load_audio(u.audio_path) for u in utterances]
    inputs = lambda batch: [{"raw": a, "sampling_rate": 16_000} for a in batch]  # noqa: E731 (consumed by the pipeline)
    asr(inputs(audios[:WARM_UP]), batch_size=batch_size, generate_kwargs=greedy)
    start = time.perf_counter()
    out = asr(inputs(audios), batch_size=batch_size, generate_kwargs=greedy)
    return [o["text"].strip() for o in out], time.perf_counter() - start


def clasr_hypotheses(bundle, utterances, batch_size: int, engine: str, compute_type: str = "float32"):
    """(hypotheses, seconds) of clasr's transcribe with ``engine`` after a warm-up (which, for
    CTranslate2, also converts the weights: conversion is timed by :func:`conversion_seconds`)."""
    transcribe(bundle, utterances[:WARM_UP], batch_size, engine=engine, compute_type=compute_type)
    start = time.perf_counter()
    rows = transcribe(bundle, utterances, batch_size, engine=engine, compute_type=compute_type)
    return [row[0] for row in rows], time.perf_counter() - start


def conversion_seconds(bundle, compute_type: str) -> float:
    """Seconds to convert and load the weights into CTranslate2 (cache emptied first)."""
    engines._loaded.clear()
    start = time.perf_counter()
    engines.ct2_whisper(bundle.model, bundle.tokenizer, compute_type)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--per-set", type=int, default=32, help="test utterances taken from each shared set")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data", type=Path, nargs="*", default=[SHARED_DATA / name for name in SETS])
    args = parser.parse_args()

    utterances = []
    for folder in args.data:
        rows, _ = read_dataset(folder, Selection(split="test", max_utterances=args.per_set, max_duration=30.0))
        utterances += rows
    bundle = load_whisper(args.model)
    n = len(utterances)
    figures: dict = {"model": args.model, "utterances": n, "audio_seconds": round(sum(u.duration for u in utterances), 1),
                     "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(), "engines": {}}

    results = {"pipeline": pipeline_hypotheses(resolve_model(args.model), utterances, args.batch_size)}
    results["clasr_torch"] = clasr_hypotheses(bundle, utterances, args.batch_size, "torch")
    conversions = {}
    for compute_type in ("float32", "int8"):
        conversions[compute_type] = conversion_seconds(bundle, compute_type)
        results[f"clasr_ct2_{compute_type}"] = clasr_hypotheses(
            bundle, utterances, args.batch_size, "ctranslate2", compute_type
        )

    reference = results["clasr_torch"][0]
    pipeline_rate = n / results["pipeline"][1]
    for name, (hypotheses, seconds) in results.items():
        entry = {
            "seconds": round(seconds, 2),
            "utterances_per_second": round(n / seconds, 3),
            "over_pipeline": round(n / seconds / pipeline_rate, 2),
            "wer": round(wer(utterances, hypotheses), 4),
            "same_hypothesis_as_clasr_torch": sum(a == b for a, b in zip(hypotheses, reference)),
            "differences": [
                {"id": u.id, "this": a, "clasr_torch": b}
                for u, a, b in zip(utterances, hypotheses, reference) if a != b
            ][:5],
        }
        compute_type = name.rsplit("_", 1)[-1]
        if name.startswith("clasr_ct2"):
            convert = conversions[compute_type]
            entry["conversion_seconds"] = round(convert, 2)
            entry["utterances_per_second_with_conversion"] = round(n / (seconds + convert), 3)
            entry["over_pipeline_with_conversion"] = round(n / (seconds + convert) / pipeline_rate, 2)
        figures["engines"][name] = entry
    figures["ct2_float32_over_clasr_torch"] = round(results["clasr_torch"][1] / results["clasr_ct2_float32"][1], 2)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
