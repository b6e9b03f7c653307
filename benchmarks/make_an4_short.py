"""Write the short-utterance task sequence of ``examples/an4_short_sequence.yaml`` from AN4.

    .venv/bin/python benchmarks/make_an4_short.py [../shared/data/an4] [results/data/an4_short]

Keeps the AN4 utterances (train and test splits alike) whose transcript has at most
``MAX_WORDS`` words — isolated words, digits, letters and short commands ("YES", "STOP",
"ENTER FIVE", "P G H") — and splits them into three tasks by speaker: speakers sorted by
name, speaker i goes to task i mod 3; within a task every 4th speaker (in that order) is
a test speaker, so each task's test set is speaker-disjoint from its training set. The
``split`` column becomes ``t<task>_train`` / ``t<task>_test``; the other columns are kept.
The audio is copied unchanged (real files, no links) with AN4's LICENSE. Deterministic.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

MAX_WORDS = 3
TASKS = 3
TEST_EVERY = 4


def short_rows(rows: list[dict]) -> list[dict]:
    """The rows of at most MAX_WORDS words, each with its task split (``t<k>_train`` / ``t<k>_test``)."""
    kept = [r for r in rows if 0 < len(r["text"].split()) <= MAX_WORDS]
    speakers = sorted({r["speaker"] for r in kept})
    split_of = {}
    for i, speaker in enumerate(speakers):
        task, rank = i % TASKS + 1, i // TASKS
        split_of[speaker] = f"t{task}_{'test' if rank % TEST_EVERY == TEST_EVERY - 1 else 'train'}"
    return [{**r, "split": split_of[r["speaker"]], "an4_split": r["split"]} for r in kept]


def make_an4_short(source: Path, target: Path) -> None:
    lines = (source / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    rows = short_rows([json.loads(line) for line in lines if line.strip()])
    (target / "audio").mkdir(parents=True, exist_ok=True)
    for row in rows:
        shutil.copyfile(source / row["file_name"], target / row["file_name"])
    (target / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    shutil.copyfile(source / "LICENSE", target / "LICENSE")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["split"]] = counts.get(row["split"], 0) + 1
    print(f"{target}: {len(rows)} utterances of at most {MAX_WORDS} words; per split {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    args = sys.argv[1:]
    make_an4_short(
        Path(args[0]) if args else Path("../shared/data/an4"),
        Path(args[1]) if len(args) > 1 else Path("results/data/an4_short"),
    )
