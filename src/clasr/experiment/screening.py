"""Every set of an experiment decoded once before the work starts (see :mod:`clasr.data.screen`).

An utterance whose audio does not decode, holds NaN or infinite samples, or (in a training
set) whose transcript does not fit the decoder, is removed from its set and added to that
set's bad rows in ``data_report.json``, reported with file and row; the run goes on without
it instead of aborting on every rerun, or training a NaN model.
"""

from __future__ import annotations

from pathlib import Path

from clasr.data.batching import SpeechCollator
from clasr.data.manifest import BadRow, Utterance
from clasr.data.screen import audio_problem, transcript_problem
from clasr.experiment.sets import ExperimentSets
from rich.markup import escape

from clasr.progress import console, progress_bar


def screen_sets(sets: ExperimentSets, collators: dict[str, SpeechCollator]) -> None:
    """Drop the utterances that cannot be used from every set of ``sets`` (in place), recording
    them in ``sets.reports``; the transcript length is checked for training sets only, with the
    collator (prompt included) that task ``name`` trains with, ``collators[name]``, and for an
    anchor set (teacher-forced too, IHR's ``anchor``) with ``collators["anchor/<name>"]``."""
    named = [(f"train/{task}", utts, collators[task]) for task, utts in sets.train.items()]
    named += [(s.key, s.utterances, None) for s in sets.evaluation]
    named += [(f"guard/{s.name}", s.utterances, None) for s in sets.guard]
    named += [(f"anchor/{name}", utts, collators.get(f"anchor/{name}")) for name, _, utts in sets.anchor]
    decoded: dict[tuple, BadRow | None] = {}  # a row read by several sets is decoded once
    with progress_bar() as progress:
        bar = progress.add_task("checking audio", total=sum(len(utts) for _, utts, _ in named), info="")
        for key, utterances, collator in named:
            source = Path(sets.reports[key]["source"])
            bad = []
            for utterance in utterances:
                audio = (source, utterance.audio_path, utterance.offset, utterance.row)
                if audio not in decoded:
                    decoded[audio] = audio_problem(utterance, source)
                problem = decoded[audio] or (transcript_problem(utterance, source, collator) if collator else None)
                if problem is not None:
                    bad.append((utterance, problem))
                progress.advance(bar)
            if bad:
                _drop(utterances, [u for u, _ in bad])
                _record(sets.reports[key], [b for _, b in bad], key)


def _drop(utterances: list[Utterance], bad: list[Utterance]) -> None:
    """Remove ``bad`` from the list in place (strategies hold references to these lists)."""
    gone = {id(u) for u in bad}
    utterances[:] = [u for u in utterances if id(u) not in gone]


def _record(report: dict, bad: list[BadRow], key: str) -> None:
    report["bad_rows"].extend(b.to_dict() for b in bad)
    report["kept"] -= len(bad)
    counts = report["bad_counts"]
    for row in bad:
        counts[row.reason] = counts.get(row.reason, 0) + 1
        console.print(f"[yellow]skipped[/] ({key}) {escape(str(row))}", highlight=False, soft_wrap=True)  # str(): escaped
