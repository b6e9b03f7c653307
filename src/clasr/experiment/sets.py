"""The evaluation and training sets of an experiment, every bad row reported (one read per selection)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from clasr.data.manifest import BadRow, DataError, Selection, Utterance, read_dataset
from clasr.experiment.config import ExperimentConfig
from clasr.metrics.text import default_normalizer
from clasr.metrics.wer import default_metric
from clasr.guard import GuardedSet
from rich.markup import escape

from clasr.progress import console


@dataclass
class EvalSet:
    """A scored set: ``key`` is ``test/<task>``, ``general/<name>`` or ``dev/<task>``."""

    key: str
    utterances: list[Utterance]
    normalizer: str
    language: str = "en"  # forced in the decoding prompt, or "auto"
    metric: str = "wer"  # the headline rate (clasr.metrics.wer.METRICS)


@dataclass
class ExperimentSets:
    train: dict[str, list[Utterance]] = field(default_factory=dict)
    evaluation: list[EvalSet] = field(default_factory=list)
    reports: dict[str, dict] = field(default_factory=dict)
    guard: list[GuardedSet] = field(default_factory=list)  # scored during training only, key guard/<name>
    anchor: list[tuple[str, str, list[Utterance]]] = field(default_factory=list)  # (name, language, utterances), key anchor/<name>

    def fingerprints(self) -> dict[str, dict]:
        """Per set: how many utterances and a digest of their ids, in order."""
        named = {f"train/{task}": utts for task, utts in self.train.items()}
        named.update({s.key: s.utterances for s in self.evaluation})
        named.update({f"guard/{s.name}": s.utterances for s in self.guard})
        named.update({f"anchor/{name}": utts for name, _, utts in self.anchor})
        return {
            key: {"utterances": len(utts), "sha1": hashlib.sha1("\n".join(u.id for u in utts).encode()).hexdigest()}
            for key, utts in named.items()
        }

    def bad_row_counts(self) -> dict[str, int]:
        """Skipped rows per reason, each manifest row counted once even when several
        selections read the same manifest."""
        unique = {(b["source"], b["row"]): b["reason"] for r in self.reports.values() for b in r["bad_rows"]}
        totals: dict[str, int] = {}
        for reason in unique.values():
            totals[reason] = totals.get(reason, 0) + 1
        return totals


def _within_window(selection: Selection, window_seconds: float) -> Selection:
    """Audio longer than the encoder window would be cut: such rows are filtered (and counted) instead."""
    limit = min(selection.max_duration or window_seconds, window_seconds)
    return selection.model_copy(update={"max_duration": limit})


def _report_bad_row(bad: BadRow) -> None:
    console.print(f"[yellow]skipped[/] {escape(str(bad))}", highlight=False)


def _read(folder: Path, selection: Selection, key: str, config: ExperimentConfig, sets: ExperimentSets):
    """The selected utterances of ``folder``; a DataError names the set (``key``) it was read for."""
    try:
        utterances, report = read_dataset(
            folder,
            _within_window(selection, config.model.window_seconds),
            strict=config.data.strict,
            on_bad_row=_report_bad_row,
        )
    except DataError as error:
        raise DataError(f"{key}: {error}") from None
    sets.reports[key] = report.to_dict()
    return utterances


def scoring(config: ExperimentConfig, set_config) -> dict:
    """How a task's or general set's utterances are decoded and scored: its language (the
    evaluation's, else en), normalizer (Whisper's basic one for other languages than English)
    and headline metric (by language unless named)."""
    language = config.set_language(set_config.language)
    return {
        "normalizer": set_config.normalizer or default_normalizer(language, config.evaluation.normalizer),
        "language": language,
        "metric": set_config.metric or default_metric(language),
    }


def load_sets(config: ExperimentConfig) -> ExperimentSets:
    """Every task's train/test(/dev) selection and every general set. A task's
    ``lowercase_targets`` applies to its training utterances here, so they keep their task's
    target convention wherever they are trained on (replay and joint training included)."""
    sets = ExperimentSets()
    for task in config.tasks:
        train = _read(task.data, task.train, f"train/{task.name}", config, sets)
        sets.train[task.name] = [replace(u, text=u.text.lower()) for u in train] if task.lowercase_targets else train
        test = _read(task.data, task.test, f"test/{task.name}", config, sets)
        sets.evaluation.append(EvalSet(f"test/{task.name}", test, **scoring(config, task)))
    for general in config.general:
        utts = _read(general.data, general.test, f"general/{general.name}", config, sets)
        sets.evaluation.append(EvalSet(f"general/{general.name}", utts, **scoring(config, general)))
    for task in config.tasks:
        if task.dev is not None:
            dev = _read(task.data, task.dev, f"dev/{task.name}", config, sets)
            sets.evaluation.append(EvalSet(f"dev/{task.name}", dev, **scoring(config, task)))
    for general in config.guarded_sets():
        dev = _read(general.data, general.dev, f"guard/{general.name}", config, sets)[: config.guard.utterances]
        how = scoring(config, general)
        sets.guard.append(GuardedSet(general.name, dev, how["normalizer"], how["language"], how["metric"]))
    if config.guard is not None and config.guard.anchor is not None:
        anchor = config.guard.anchor
        dev = _read(anchor.data, anchor.selection(), "guard/anchor", config, sets)[: config.guard.utterances]
        how = scoring(config, anchor)
        sets.guard.append(GuardedSet("anchor", dev, how["normalizer"], how["language"], how["metric"]))
    for name, folder, selection, language in config.anchor_sets():
        sets.anchor.append((name, config.set_language(language), _read(folder, selection, f"anchor/{name}", config, sets)))
    return sets
