"""Does a clasr model decode like CTranslate2? Greedy tokens of clasr's torch decoder against
``ctranslate2`` on real clips, each clip in its own language (the manifest's ``language`` column).

    python benchmarks/verify_ct2_greedy.py base                      # built-in: vs the package's own CT2 files
    python benchmarks/verify_ct2_greedy.py MODEL_DIR --ct2 CT2_DIR   # e.g. a run's model/ vs its `clasr export`

Clips: the first ``--per-language`` clips of every language in ``--data`` folders (default: the
shared multilingual and code-switched sets; English models: AN4 and ARCTIC), at most ``--clips``.
Both decoders get the same log-mel features (30 s window), the same prompt
(<|startoftranscript|><|xx|><|transcribe|><|notimestamps|>, or <|startoftranscript|><|notimestamps|>
for an English-only model) and the same budget; CTranslate2 runs in float32. Prints one line per
clip and a JSON summary (``--json`` writes it); exit status 1 when any clip differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import ctranslate2
import numpy as np
import torch

from clasr.data.batching import SpeechCollator, load_utterance_audio, prompt_ids
from clasr.data.manifest import Selection, read_dataset
from clasr.decoding import DecodeLimits, greedy_decode
from clasr.models.builtin import BUILTIN_MODELS
from clasr.models.language import is_multilingual, language_token_ids
from clasr.models.whisper import load_whisper

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def pick_clips(folders: list[Path], per_language: int, limit: int):
    """(utterance, language) pairs: the first clips of each language, in manifest order."""
    chosen, counts = [], {}
    for folder in folders:
        utterances, _ = read_dataset(folder, Selection(max_duration=30))
        for utt in utterances:
            language = str(utt.extra.get("language", "en")).split("+")[0]
            if counts.get(language, 0) < per_language and len(chosen) < limit:
                counts[language] = counts.get(language, 0) + 1
                chosen.append((utt, language))
    return chosen


def ct2_tokens(whisper: ctranslate2.models.Whisper, features: np.ndarray, prompt: list[int], budget: int, eot: int):
    result = whisper.generate(ctranslate2.StorageView.from_array(features), [prompt], beam_size=1,
                              max_length=448, suppress_blank=True, suppress_tokens=[-1])
    tokens = result[0].sequences_ids[0]
    tokens = tokens[len(prompt):] if tokens[: len(prompt)] == prompt else tokens
    return (tokens[: tokens.index(eot)] if eot in tokens else tokens)[:budget]  # clasr stops at its budget


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="built-in name or transformers Whisper folder")
    parser.add_argument("--ct2", type=Path, help="CTranslate2 folder (default: the built-in model's package files)")
    parser.add_argument("--data", type=Path, nargs="*", help="audiofolder sets (default: shared multilingual + codeswitch)")
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--per-language", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    bundle = load_whisper(args.model, 30)
    multilingual = is_multilingual(bundle.model)
    default = ["multilingual", "codeswitch_kk_ru"] if multilingual else ["an4", "arctic_kathleen"]
    clips = pick_clips(args.data or [SHARED / name for name in default], args.per_language, args.clips)
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    limits, eot, languages = DecodeLimits(), bundle.tokenizer.eos_token_id, language_token_ids(bundle.tokenizer)
    if args.ct2 is None:
        context = BUILTIN_MODELS[args.model].ct2_dir()
    else:
        from contextlib import nullcontext

        context = nullcontext(args.ct2)
    rows, seconds = [], {"torch": 0.0, "ct2": 0.0}
    with context as ct2_dir:
        whisper = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32", intra_threads=2)
        for utt, language in clips:
            language = language if multilingual and language in languages else None
            prompt = prompt_ids(bundle.tokenizer, language)
            features, _ = collator.features([load_utterance_audio(utt)])
            budget = limits.budget(utt.duration)
            start = time.perf_counter()
            ours = greedy_decode(bundle.model, features, prompt, eot, [budget])[0].tokens
            seconds["torch"] += time.perf_counter() - start
            start = time.perf_counter()
            theirs = ct2_tokens(whisper, features.numpy(), prompt, budget, eot)
            seconds["ct2"] += time.perf_counter() - start
            same = ours == theirs
            rows.append({"id": utt.id, "language": language, "same": same, "tokens": len(ours)})
            text = bundle.tokenizer.decode(ours, skip_special_tokens=True).strip()
            print(f"{'same' if same else 'DIFF'} {language or 'en'} {utt.id}: {text[:70]}", flush=True)
            if not same:
                print(f"     ct2: {bundle.tokenizer.decode(theirs, skip_special_tokens=True).strip()[:70]}", flush=True)
    summary = {"model": args.model, "clips": len(rows), "identical": sum(r["same"] for r in rows),
               "languages": sorted({r["language"] or "en" for r in rows}),
               "seconds_per_clip": {k: v / max(len(rows), 1) for k, v in seconds.items()}, "rows": rows}
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0 if summary["identical"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
