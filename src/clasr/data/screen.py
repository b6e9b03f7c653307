"""Decoding every utterance once: the bad rows that a manifest's header checks cannot see.

:func:`clasr.data.manifest.read_dataset` reads only audio headers (fast on big manifests), so
a file whose header is fine but whose samples are not — a truncated or corrupt FLAC, NaN or
infinite samples — passes it, and would abort training or scoring halfway, or turn the model
into NaN. ``screen_utterances`` decodes each utterance as training and scoring will, and
with a collator also tokenizes its transcript as training will; what fails becomes a
:class:`~clasr.data.manifest.BadRow` of its manifest (``undecodable_audio``,
``non_finite_audio``, ``transcript_too_long``), reported with its row and skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from clasr.data.audio import AudioError, NonFiniteAudioError
from clasr.data.batching import SpeechCollator, load_utterance_audio
from clasr.data.manifest import (
    NON_FINITE_AUDIO,
    TRANSCRIPT_TOO_LONG,
    UNDECODABLE_AUDIO,
    BadRow,
    Utterance,
)


def utterance_problem(utterance: Utterance, source: Path, collator: SpeechCollator | None = None) -> BadRow | None:
    """Why ``utterance`` (a row of the manifest ``source``) cannot be trained on or scored, if it
    cannot: its audio (:func:`audio_problem`), then with a collator its transcript (:func:`transcript_problem`)."""
    problem = audio_problem(utterance, source)
    if problem is None and collator is not None:
        problem = transcript_problem(utterance, source, collator)
    return problem


def audio_problem(utterance: Utterance, source: Path) -> BadRow | None:
    """Why the utterance's audio cannot be used (it does not decode, or holds NaN/infinite samples), if it cannot."""
    try:
        load_utterance_audio(utterance)
    except NonFiniteAudioError as error:
        return BadRow(source, utterance.row, _file_name(utterance, source), NON_FINITE_AUDIO, error.reason)
    except AudioError as error:
        return BadRow(source, utterance.row, _file_name(utterance, source), UNDECODABLE_AUDIO, error.reason)
    return None


def transcript_problem(utterance: Utterance, source: Path, collator: SpeechCollator) -> BadRow | None:
    """Why the transcript cannot be a training target (more decoder positions than the model has), if it cannot."""
    needed = len(collator.prompt) + len(collator.target_ids(utterance.text)) + 1
    if needed <= collator.max_target_positions:
        return None
    return BadRow(
        source, utterance.row, _file_name(utterance, source), TRANSCRIPT_TOO_LONG,
        f"the transcript needs {needed} decoder positions (prompt, tokens, end), "
        f"the model has {collator.max_target_positions}",
    )


def _file_name(utterance: Utterance, source: Path) -> str:
    """The audio path relative to the dataset folder, as a manifest writes it."""
    return os.path.relpath(utterance.audio_path, source.parent)


def screen_utterances(
    utterances: Sequence[Utterance],
    source: Path,
    collator: SpeechCollator | None = None,
    on_bad_row: Callable[[BadRow], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Utterance], list[BadRow]]:
    """(the utterances that decode (and fit the decoder, with ``collator``), in order; the bad rows).

    ``progress(n)`` is told how many utterances were checked since its last call."""
    kept, bad = [], []
    for utterance in utterances:
        problem = utterance_problem(utterance, source, collator)
        if problem is None:
            kept.append(utterance)
        else:
            bad.append(problem)
            if on_bad_row is not None:
                on_bad_row(problem)
        if progress is not None:
            progress(1)
    return kept, bad
