"""Zero-shot error rates of a built-in model on the shared real sets, per language, with decode time.

    python benchmarks/zero_shot_languages.py base [--english-utterances 48] [--json out.json]

Sets (from ../shared/data): every language of ``multilingual`` (its ``language`` column,
forced in the prompt; scored with that language's default normalizer and metric: CER without
spaces for zh/ja, WER otherwise), ``codeswitch_kk_ru`` (forced Kazakh, WER and MER),
and the first ``--english-utterances`` test utterances of AN4 (``spelled`` normalizer, as the
project's AN4 runs) and ARCTIC (Whisper's English normalizer). Then the whole multilingual set
with ``auto`` (the first ``--auto-per-language`` clips of each language): how often the detected
language is the labelled one. Greedy decoding with clasr's torch decoder, batch 8, 30 s window.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from clasr.data.manifest import Selection, read_dataset
from clasr.evaluate import evaluate
from clasr.metrics.text import default_normalizer
from clasr.metrics.wer import default_metric
from clasr.models.whisper import load_whisper

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ENGINE = "torch"  # one CTranslate2 conversion per evaluate() call would dominate 23 small sets


def score(bundle, name, utterances, language, normalizer=None, metric=None) -> dict:
    normalizer = normalizer or default_normalizer(language)
    metric = metric or default_metric(language)
    result = evaluate(bundle, utterances, normalizer, 8, language=language, metric=metric, description=name,
                      engine=ENGINE)
    row = {"set": name, "language": language, "utterances": len(utterances), "metric": metric,
           "error_rate": result.error_rate, "wer": result.score.wer, "mer": result.score.mer,
           "cer_nospace": result.score.cer_nospace, "seconds_per_utterance": result.seconds / len(utterances),
           "detected": result.languages}
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--english-utterances", type=int, default=48)
    parser.add_argument("--auto-per-language", type=int, default=2)
    parser.add_argument("--languages", nargs="*", default=["zh", "ja", "de", "es", "fr", "ru", "kk"],
                        help="multilingual languages scored first (the rest follow in alphabetical order)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    bundle = load_whisper(args.model, 30)
    rows = []
    codeswitch, _ = read_dataset(SHARED / "codeswitch_kk_ru", Selection(max_duration=30))
    rows.append(score(bundle, "codeswitch_kk_ru", codeswitch, "kk", metric="mer"))
    english = Selection(split="test", max_utterances=args.english_utterances)
    rows.append(score(bundle, "an4", read_dataset(SHARED / "an4", english)[0], "en", normalizer="spelled"))
    rows.append(score(bundle, "arctic_kathleen", read_dataset(SHARED / "arctic_kathleen", english)[0], "en"))
    multilingual, _ = read_dataset(SHARED / "multilingual", Selection(max_duration=30))
    present = {u.extra["language"] for u in multilingual}
    for language in [*(code for code in args.languages if code in present), *sorted(present - set(args.languages))]:
        utts = [u for u in multilingual if u.extra["language"] == language]
        rows.append(score(bundle, f"multilingual/{language}", utts, language))
    sample = [u for language in sorted({u.extra["language"] for u in multilingual})
              for u in [u for u in multilingual if u.extra["language"] == language][: args.auto_per_language]]
    auto = evaluate(bundle, sample, "whisper_basic", 8, language="auto", description="multilingual auto", engine=ENGINE)
    correct = sum(row["language"] == u.extra["language"] for row, u in zip(auto.rows, sample))
    detection = {"utterances": len(sample), "correct": correct, "detected": auto.languages,
                 "seconds_per_utterance": auto.seconds / len(sample)}
    print(json.dumps({"detection": detection}), flush=True)
    print("\n| set | language | utt | metric | rate % | WER % | s/utt |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['language']} | {r['utterances']} | {r['metric']} | {100 * r['error_rate']:.1f} "
              f"| {100 * r['wer']:.1f} | {r['seconds_per_utterance']:.2f} |")
    print(f"\nauto: {correct}/{len(sample)} detected as labelled, {detection['seconds_per_utterance']:.2f} s/utt")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "rows": rows, "detection": detection}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
