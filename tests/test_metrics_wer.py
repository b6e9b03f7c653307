"""Per-utterance counts, corpus rates (sum over sum) and the bootstrap interval."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clasr.metrics.text import get_normalizer
from clasr.metrics.wer import (
    UtteranceScore,
    bootstrap_ci,
    corpus_score,
    score_utterance,
)

basic = get_normalizer("basic")


def counts(score):
    return (score.substitutions, score.deletions, score.insertions, score.word_errors)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("the cat sat", "the cat sat", (0, 0, 0, 0)),
        ("the cat sat", "the dog sat", (1, 0, 0, 1)),
        ("the cat sat", "the sat", (0, 1, 0, 1)),
        ("the cat sat", "the cat sat down", (0, 0, 1, 1)),
        ("the cat sat", "", (0, 3, 0, 3)),
        ("", "uh huh", (0, 0, 2, 2)),
        ("", "", (0, 0, 0, 0)),
    ],
)
def test_word_counts_of_hand_aligned_pairs(reference, hypothesis, expected):
    score, _, _ = score_utterance(reference, hypothesis, basic)
    assert counts(score) == expected
    assert score.ref_words == len(reference.split())


def test_empty_reference_after_normalisation():
    score, ref, hyp = score_utterance("?!", "Uh, huh.", basic)
    assert (ref, hyp) == ("", "uh huh")
    assert score.ref_words == 0 and score.ref_chars == 0
    assert counts(score) == (0, 0, 2, 2)
    assert score.char_errors == len("uh huh")
    assert score.char_errors_nospace == len("uhhuh")


def test_empty_hypothesis_deletes_every_character():
    score, _, _ = score_utterance("ab cd", "", basic)
    assert (score.ref_chars, score.char_errors) == (5, 5)
    assert (score.ref_chars_nospace, score.char_errors_nospace) == (4, 4)


def test_returns_normalised_text_with_single_spaces():
    _, ref, hyp = score_utterance("  The   CAT, sat ", "the\tcat\nsat", basic)
    assert ref == hyp == "the cat sat"


def test_characters_count_single_spaces():
    score, _, _ = score_utterance("ab  cd", "ab cx", basic)
    assert (score.ref_chars, score.char_errors) == (5, 1)
    assert (score.ref_chars_nospace, score.char_errors_nospace) == (4, 1)


def test_an4_letter_spacing_has_word_errors_but_no_nospace_char_errors():
    score, _, _ = score_utterance("J P E G", "jpeg", basic)
    assert score.ref_words == 4
    assert counts(score) == (1, 3, 0, 4)
    assert (score.ref_chars, score.char_errors) == (7, 3)
    assert (score.ref_chars_nospace, score.char_errors_nospace) == (4, 0)
    assert corpus_score([score]).wer > 0
    assert corpus_score([score]).cer_nospace == 0


def test_utterance_score_round_trips_through_dict():
    score, _, _ = score_utterance("the cat sat", "the dog sat down", basic)
    assert UtteranceScore.from_dict(score.to_dict()) == score
    assert score.to_dict()["insertions"] == 1


def test_corpus_wer_is_sum_over_sum_not_mean_of_utterance_wers():
    # 1 error in 1 word (WER 1.0) and 0 errors in 9 words (WER 0.0):
    # corpus WER = 1/10 = 0.1, the mean of per-utterance WERs would be 0.5.
    nine_words = "one two three four five six seven eight nine"
    short, _, _ = score_utterance("yes", "no", basic)
    long, _, _ = score_utterance(nine_words, nine_words, basic)
    corpus = corpus_score([short, long])
    assert (corpus.utterances, corpus.ref_words, corpus.word_errors) == (2, 10, 1)
    assert corpus.wer == pytest.approx(0.1)
    # "yes" -> "no": 2 substitutions + 1 deletion; 44 characters (36 without spaces).
    assert corpus.cer == pytest.approx(3 / (3 + 44))
    assert corpus.cer_nospace == pytest.approx(3 / (3 + 36))
    assert corpus.to_dict()["wer"] == corpus.wer


def test_corpus_rates_are_nan_without_reference_words():
    score, _, _ = score_utterance("", "uh", basic)
    corpus = corpus_score([score])
    assert math.isnan(corpus.wer) and math.isnan(corpus.cer) and math.isnan(corpus.cer_nospace)
    assert corpus.word_errors == 1
    assert math.isnan(corpus_score([]).wer)


def make_scores(pairs):
    """UtteranceScores with the given (word_errors, ref_words); characters mirror words."""
    return [
        UtteranceScore(
            ref_words=ref, word_errors=err, substitutions=err, deletions=0, insertions=0,
            ref_chars=ref, char_errors=err, ref_chars_nospace=ref, char_errors_nospace=err,
        )
        for err, ref in pairs
    ]


SAMPLE = make_scores(
    [(0, 5), (2, 4), (1, 6), (0, 3), (3, 7), (0, 2), (1, 5), (4, 8), (0, 4), (1, 3)]
)


@pytest.mark.parametrize("metric", ["wer", "cer", "cer_nospace"])
def test_bootstrap_ci_contains_point_estimate(metric):
    low, high = bootstrap_ci(SAMPLE, metric=metric)
    point = getattr(corpus_score(SAMPLE), metric)
    assert low < point < high


def test_bootstrap_ci_is_deterministic_by_seed():
    assert bootstrap_ci(SAMPLE, seed=3) == bootstrap_ci(SAMPLE, seed=3)
    assert bootstrap_ci(SAMPLE, seed=3) != bootstrap_ci(SAMPLE, seed=4)


def test_bootstrap_ci_narrows_with_more_utterances():
    low, high = bootstrap_ci(SAMPLE)
    many_low, many_high = bootstrap_ci(SAMPLE * 50)
    assert many_high - many_low < (high - low) / 3


def test_bootstrap_ci_widens_with_confidence():
    low, high = bootstrap_ci(SAMPLE, confidence=0.5)
    wide_low, wide_high = bootstrap_ci(SAMPLE, confidence=0.99)
    assert wide_low <= low and high <= wide_high


def test_bootstrap_ci_skips_resamples_without_references():
    scores = make_scores([(1, 0), (1, 2), (0, 2)])
    low, high = bootstrap_ci(scores, n_resamples=200)
    assert 0 <= low <= high <= 1.5


def test_bootstrap_ci_without_references_is_nan():
    assert all(math.isnan(bound) for bound in bootstrap_ci([]))
    assert all(math.isnan(bound) for bound in bootstrap_ci(make_scores([(2, 0)])))


@pytest.mark.parametrize(
    "kwargs", [{"metric": "wor"}, {"confidence": 1.0}, {"confidence": 0}, {"n_resamples": 0}]
)
def test_bootstrap_ci_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        bootstrap_ci(SAMPLE, **kwargs)


words = st.lists(st.sampled_from(["a", "b", "c", "ab"]), max_size=6).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(reference=words, hypothesis=words)
def test_counts_are_consistent(reference, hypothesis):
    score, _, _ = score_utterance(reference, hypothesis, basic)
    assert score.word_errors == score.substitutions + score.deletions + score.insertions
    assert score.substitutions + score.deletions <= score.ref_words
    assert score.ref_words - score.deletions + score.insertions == len(hypothesis.split())
    assert score.char_errors_nospace <= score.char_errors + score.ref_chars
    assert (score.word_errors == 0) == (reference.split() == hypothesis.split())


def test_bootstrap_interval_matches_a_brute_force_loop_of_corpus_ratios():
    """Σ errors / Σ words per resample (a mean of per-utterance ratios would differ: the
    short utterances here have many errors, the long ones few)."""
    import numpy as np

    rng = np.random.default_rng(0)
    words = rng.integers(1, 30, size=35)
    errors = np.where(words < 6, words, rng.binomial(words, 0.05))
    from dataclasses import fields

    zero = {field.name: 0 for field in fields(UtteranceScore)}
    scores = [UtteranceScore(**{**zero, "ref_words": int(n), "word_errors": int(e)}) for n, e in zip(words, errors)]
    low, high = bootstrap_ci(scores, n_resamples=300, seed=9)
    draws = np.random.default_rng(9)
    ratios = []
    for _ in range(300):
        index = draws.integers(0, 35, 35)
        ratios.append(errors[index].sum() / words[index].sum())
    assert (low, high) == pytest.approx(tuple(np.percentile(ratios, [2.5, 97.5])), rel=1e-12)
    assert np.mean(errors / words) > high  # the mean of ratios lies outside the interval
