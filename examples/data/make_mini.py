"""Rebuild the bundled mini sets from the full AN4 and CMU ARCTIC folders (../shared/data).

    python examples/data/make_mini.py ../shared/data examples/data

Deterministic: every k-th row of each split, so several speakers of AN4 are kept. The audio
is copied unchanged (16 kHz FLAC) with each corpus's LICENSE.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

PLAN = {  # corpus: {split: (step, how many)}
    "an4": {"train": (15, 64), "test": (4, 32)},
    "arctic_kathleen": {"train": (18, 32), "test": (9, 60)},
}


def make_mini(source_root: Path, target_root: Path) -> None:
    for corpus, splits in PLAN.items():
        source = source_root / corpus
        target = target_root / f"{corpus}_mini"
        rows = [json.loads(line) for line in (source / "metadata.jsonl").read_text().splitlines() if line.strip()]
        kept = []
        for split, (step, count) in splits.items():
            kept += [r for r in rows if r.get("split") == split][::step][:count]
        (target / "audio").mkdir(parents=True, exist_ok=True)
        for row in kept:
            shutil.copyfile(source / row["file_name"], target / row["file_name"])
        (target / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
        shutil.copyfile(source / "LICENSE", target / "LICENSE")
        print(f"{target}: {len(kept)} utterances")


if __name__ == "__main__":
    make_mini(Path(sys.argv[1]), Path(sys.argv[2]))
