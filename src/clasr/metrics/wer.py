"""Per-utterance error counts, corpus-level rates and their bootstrap confidence intervals.

Every rate is a fraction (0.25 = 25 %), computed at corpus level as summed errors over
summed reference counts, never as a mean of per-utterance rates:

    WER = Σ (S + D + I) / Σ N_words        (word substitutions, deletions, insertions)
    CER = Σ char_errors / Σ N_chars         (normalised text, words joined by one space)
    CER_nospace = the same with all spaces removed from reference and hypothesis

    MER = Σ mixed_errors / Σ N_mixed        (mixed units: each CJK character, and each other word)

CER_nospace ignores how letters are grouped into words: AN4 references spell letters
("j p e g") where a model may write the word ("jpeg"); that pair has WER 1 but
CER_nospace 0. Lower is better for every rate; a rate over zero reference units is nan.

Which rate is a set's headline figure (its ``metric``) depends on its language: words
(``wer``) for languages written with spaces, characters without spaces (``cer_nospace``)
for languages written without them (zh, ja, th, lo, my, km, bo, yue), and the mixed error
rate (``mer``) for code-switched text that mixes such a language with spaced words: there a
Chinese character and an English word are one unit each ("我想 book 一个 room" has 7 units).
For English text MER equals WER; for Chinese text without Latin words it equals CER_nospace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, NamedTuple, Sequence

import re

import jiwer
import numpy as np

# Resampled utterance indices are drawn in chunks of about this many entries.
_BOOTSTRAP_CHUNK_ENTRIES = 1 << 22

# metric name -> (UtteranceScore field with errors, field with reference counts)
_RATE_FIELDS: dict[str, tuple[str, str]] = {
    "wer": ("word_errors", "ref_words"),
    "cer": ("char_errors", "ref_chars"),
    "cer_nospace": ("char_errors_nospace", "ref_chars_nospace"),
    "mer": ("mixed_errors", "ref_mixed"),
}
METRICS = tuple(_RATE_FIELDS)

# Written without spaces between words: scored by characters (ISO 639 codes as Whisper's).
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "km", "bo", "yue"})

# One mixed unit per character: CJK unified ideographs (and extension A, compatibility), kana.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_MIXED_UNIT = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def default_metric(language: str | None) -> str:
    """The headline rate of a set in ``language``: ``cer_nospace`` for languages written
    without spaces, else ``wer`` (``mer`` is chosen explicitly, for code-switched sets)."""
    return "cer_nospace" if language in NO_SPACE_LANGUAGES else "wer"


def check_metric(name: str) -> str:
    """``name`` if it is a known rate, else ValueError naming the valid ones."""
    if name not in _RATE_FIELDS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(_RATE_FIELDS)}")
    return name


def rate_fields(metric: str) -> tuple[str, str]:
    """The :class:`UtteranceScore` fields (errors, reference units) of rate ``metric``:
    ``("word_errors", "ref_words")`` for ``wer``; ValueError for an unknown metric."""
    return _RATE_FIELDS[check_metric(metric)]


def mixed_units(text: str) -> list[str]:
    """The units of the mixed error rate: every CJK character alone, every other
    whitespace-separated run as one word.

    >>> mixed_units("我想 book 一个room")
    ['我', '想', 'book', '一', '个', 'room']
    """
    return _MIXED_UNIT.findall(text)


@dataclass(frozen=True)
class UtteranceScore:
    """Error counts of one utterance, after normalisation.

    ``word_errors = substitutions + deletions + insertions`` (word level);
    ``char_errors`` and ``char_errors_nospace`` are character edit distances.
    """

    ref_words: int
    word_errors: int
    substitutions: int
    deletions: int
    insertions: int
    ref_chars: int
    char_errors: int
    ref_chars_nospace: int
    char_errors_nospace: int
    ref_mixed: int = 0  # 0 in hypothesis files written before MER existed: their MER is nan
    mixed_errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, counts: dict[str, int]) -> UtteranceScore:
        return cls(**counts)


@dataclass(frozen=True)
class CorpusScore:
    """Corpus-level rates (fractions; nan when the reference count is 0)."""

    utterances: int
    ref_words: int
    word_errors: int
    wer: float
    cer: float
    cer_nospace: float
    mer: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class _Edits(NamedTuple):
    substitutions: int
    deletions: int
    insertions: int

    @property
    def total(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def _word_edits(reference: str, hypothesis: str) -> _Edits:
    if not reference or not hypothesis:
        return _Edits(0, len(reference.split()), len(hypothesis.split()))
    out = jiwer.process_words(reference, hypothesis)
    return _Edits(out.substitutions, out.deletions, out.insertions)


def _char_edits(reference: str, hypothesis: str) -> _Edits:
    if not reference or not hypothesis:
        return _Edits(0, len(reference), len(hypothesis))
    out = jiwer.process_characters(reference, hypothesis)
    return _Edits(out.substitutions, out.deletions, out.insertions)


def _normalized(text: str, normalize: Callable[[str], str]) -> str:
    return " ".join(normalize(text).split())


def score_utterance(
    reference: str, hypothesis: str, normalize: Callable[[str], str]
) -> tuple[UtteranceScore, str, str]:
    """Score one hypothesis against its reference after ``normalize`` and space collapsing.

    Returns the score with the normalised reference and hypothesis. An empty reference
    scores every hypothesis word as an insertion; an empty hypothesis scores every
    reference word as a deletion.
    """
    ref = _normalized(reference, normalize)
    hyp = _normalized(hypothesis, normalize)
    words = _word_edits(ref, hyp)
    ref_nospace, hyp_nospace = ref.replace(" ", ""), hyp.replace(" ", "")
    ref_units, hyp_units = mixed_units(ref), mixed_units(hyp)
    score = UtteranceScore(
        ref_words=len(ref.split()),
        word_errors=words.total,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        ref_chars=len(ref),
        char_errors=_char_edits(ref, hyp).total,
        ref_chars_nospace=len(ref_nospace),
        char_errors_nospace=_char_edits(ref_nospace, hyp_nospace).total,
        ref_mixed=len(ref_units),
        mixed_errors=_word_edits(" ".join(ref_units), " ".join(hyp_units)).total,
    )
    return score, ref, hyp


def _ratio(errors: int, references: int) -> float:
    return errors / references if references else float("nan")


def _summed(scores: Sequence[UtteranceScore], field: str) -> int:
    return sum(getattr(score, field) for score in scores)


def corpus_score(scores: Sequence[UtteranceScore]) -> CorpusScore:
    """WER, CER, CER_nospace and MER of a corpus: Σ errors / Σ reference counts (nan if Σ = 0)."""
    totals = {field: _summed(scores, field) for pair in _RATE_FIELDS.values() for field in pair}
    rates = {name: _ratio(totals[err], totals[ref]) for name, (err, ref) in _RATE_FIELDS.items()}
    return CorpusScore(
        utterances=len(scores),
        ref_words=totals["ref_words"],
        word_errors=totals["word_errors"],
        **rates,
    )


def _resampled_ratios(
    errors: np.ndarray, references: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Σ errors / Σ references of ``n_resamples`` resamples (with replacement); nan if Σ = 0."""
    n = len(errors)
    chunk = max(1, _BOOTSTRAP_CHUNK_ENTRIES // n)
    ratios = []
    for start in range(0, n_resamples, chunk):
        index = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        summed_refs = references[index].sum(axis=1).astype(float)
        summed_refs[summed_refs == 0] = np.nan
        ratios.append(errors[index].sum(axis=1) / summed_refs)
    return np.concatenate(ratios)


def bootstrap_ci(
    scores: Sequence[UtteranceScore],
    metric: str = "wer",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a corpus-level rate, resampling utterances.

    Each resample draws ``len(scores)`` utterances with replacement and recomputes
    Σ errors / Σ references; the interval is the (1 − confidence)/2 and (1 + confidence)/2
    percentiles of those ratios. ``metric`` is one of :data:`METRICS`. Resamples
    with no reference units are skipped; with no utterances (or none left) it is (nan, nan).
    Deterministic for a given ``seed``.
    """
    if metric not in _RATE_FIELDS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(_RATE_FIELDS)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    error_field, reference_field = _RATE_FIELDS[metric]
    errors = np.array([getattr(score, error_field) for score in scores], dtype=np.int64)
    references = np.array([getattr(score, reference_field) for score in scores], dtype=np.int64)
    if len(scores) == 0 or references.sum() == 0:
        return float("nan"), float("nan")
    ratios = _resampled_ratios(errors, references, n_resamples, np.random.default_rng(seed))
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(ratios, [tail, 100 - tail])
    return float(low), float(high)
