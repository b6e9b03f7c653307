"""What decoding every utterance once before a run costs (clasr.experiment.screening).

A run reads manifests with header checks only, then decodes every utterance of every set once
so that undecodable or non-finite audio becomes a bad row instead of an abort (docs/faults.md).
This prints, for one dataset folder, the time of the header read and of the decode pass, per
utterance and as a ratio, and the same decode pass measured against loading the audio the
way training does (the decode pass is that cost, once).

    .venv/bin/python benchmarks/screening_cost.py ../shared/data/an4 [--split train]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from clasr.data.manifest import Selection, read_dataset
from clasr.data.screen import screen_utterances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--split", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    utterances, report = read_dataset(args.folder, Selection(split=args.split))
    header = time.perf_counter() - start
    start = time.perf_counter()
    usable, bad = screen_utterances(utterances, report.source)
    decode = time.perf_counter() - start
    audio_seconds = sum(u.duration for u in utterances)
    n = len(utterances)
    print(f"{args.folder} split={args.split}: {n} utterances, {audio_seconds / 60:.1f} min of audio, {len(bad)} bad")
    print(f"header read (manifest check): {header:.2f} s  ({1000 * header / n:.2f} ms/utt)")
    print(f"decode pass (screening):      {decode:.2f} s  ({1000 * decode / n:.2f} ms/utt, "
          f"{decode / max(audio_seconds, 1e-9) * 3600:.1f} s per hour of audio)")
    print(f"ratio decode / header: {decode / header:.1f}")


if __name__ == "__main__":
    main()
