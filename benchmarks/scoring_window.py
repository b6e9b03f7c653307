"""The scoring window against the foundation's accuracy on real speech: from which encoder
window up does tiny.en score real read speech as well as at Whisper's own 30 s, and what does
each window cost? (Chooses the demo's window, issue 13 item 5.)

    .venv/bin/python benchmarks/scoring_window.py [--model tiny.en] [--windows 30 20 15 12 10 8] [--per-set 64]

Scores the foundation model (CTranslate2, float32, greedy, batch 16) on utterances the demo
never scores: the train split of the bundled ARCTIC mini set (the demo's dev stand-in for its
real set) and the train splits of the shared AN4 and ARCTIC sets. For each window against
30 s: the pooled WER change with its paired 95 % bootstrap interval over utterances, a
sign-flip test and Holm's correction over the windows; and seconds per utterance, with the
ratio to the 30 s window measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from clasr import engines
from clasr.data.manifest import Selection, read_dataset
from clasr.evaluate import transcribe
from clasr.metrics.stats import holm, percentile_interval, resample_counts, resampled_rates, sign_flip_test
from clasr.metrics.text import get_normalizer
from clasr.metrics.wer import score_utterance
from clasr.models.whisper import load_whisper

ROOT = Path(__file__).resolve().parents[1]
SETS = (
    ("arctic_mini_train", ROOT / "examples" / "data" / "arctic_kathleen_mini"),
    ("arctic_train", ROOT.parent / "shared" / "data" / "arctic_kathleen"),
    ("an4_train", ROOT.parent / "shared" / "data" / "an4"),
)


def utterance_errors(model: str, window: float, utterances) -> tuple[np.ndarray, np.ndarray, float]:
    """(word errors, reference words) per utterance and seconds of decoding at ``window``."""
    bundle = load_whisper(model, window_seconds=window)
    engines._loaded.clear()
    transcribe(bundle, utterances[:4], 16, engine="ctranslate2")  # warm-up, converts the weights
    start = time.perf_counter()
    hypotheses = transcribe(bundle, utterances, 16, engine="ctranslate2")
    seconds = time.perf_counter() - start
    normalize = get_normalizer("whisper_english")
    scores = [score_utterance(u.text, h[0], normalize)[0] for u, h in zip(utterances, hypotheses)]
    return np.array([s.word_errors for s in scores]), np.array([s.ref_words for s in scores]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--windows", type=float, nargs="+", default=[30, 20, 15, 12, 10, 8])
    parser.add_argument("--per-set", type=int, default=64)
    args = parser.parse_args()
    utterances = []
    for _, folder in SETS:
        rows, _ = read_dataset(folder, Selection(split="train", max_utterances=args.per_set, max_duration=30.0))
        utterances += rows
    windows = [30.0, *(w for w in args.windows if w != 30)]
    measured = {w: utterance_errors(args.model, w, utterances) for w in windows}
    errors30, words, seconds30 = measured[30.0]
    counts = resample_counts(len(words), 2000, np.random.default_rng(0))
    replicates30 = resampled_rates(errors30, words, counts)
    figures = {"model": args.model, "utterances": len(words), "words": int(words.sum()),
               "sets": [name for name, _ in SETS], "windows": {}}
    tested = windows[1:]
    p_raw = {w: sign_flip_test((measured[w][0] - errors30) / words.sum(), 10000, 0) for w in tested}
    p_holm = dict(zip(tested, holm([p_raw[w] for w in tested])))
    for window in windows:
        errors, _, seconds = measured[window]
        difference = resampled_rates(errors, words, counts) - replicates30
        low, high = percentile_interval(difference)
        figures["windows"][f"{window:g}"] = {
            "wer": round(100 * errors.sum() / words.sum(), 2),
            "change_from_30s": round(100 * (errors - errors30).sum() / words.sum(), 2),
            "ci95": [round(100 * low, 2), round(100 * high, 2)], "p_sign_flip": round(p_raw.get(window, 1.0), 4),
            "p_holm": round(p_holm.get(window, 1.0), 4),
            "seconds_per_utterance": round(seconds / len(words), 3), "time_over_30s": round(seconds / seconds30, 3),
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
