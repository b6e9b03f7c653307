"""Normalizer registry and the rules of each normalizer."""

import pytest

from clasr.metrics.text import DEFAULT_NORMALIZER, NORMALIZERS, get_normalizer
from clasr.metrics.wer import score_utterance


def test_registry_names_and_default():
    assert set(NORMALIZERS) == {"whisper_english", "whisper_basic", "basic", "spelled", "none"}
    assert get_normalizer() is NORMALIZERS[DEFAULT_NORMALIZER]
    assert DEFAULT_NORMALIZER == "whisper_english"


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as error:
        get_normalizer("whisper")
    message = str(error.value)
    assert "'whisper'" in message
    for name in NORMALIZERS:
        assert name in message


def test_none_is_identity():
    assert get_normalizer("none")("  Hello, World! ") == "  Hello, World! "


def test_whisper_english_is_whispers_normalizer():
    normalize = get_normalizer("whisper_english")
    assert normalize("Don't stop!") == "do not stop"
    assert normalize("ONE FIVE TWO THREE SIX") == "15236"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello,  World!", "hello world"),
        ("It\u2019s 3.5 o'clock", "it's 3 5 o'clock"),
        ("'quoted' rub-out", "quoted rub out"),
        ("ONE 15236", "one 15236"),
        ("", ""),
    ],
)
def test_basic(text, expected):
    assert get_normalizer("basic")(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15236", "one five two three six"),
        ("0", "zero"),
        ("331-0188", "three three one zero one eight eight"),
        ("ONE FIVE TWO THREE SIX", "one five two three six"),
        ("Open the JPEG file.", "open the j p e g file"),
        ("J-P-E-G", "j p e g"),
        ("J.P.E.G.", "j p e g"),
        ("W O O D", "w o o d"),
        # A text entirely in capitals (AN4 references): case says nothing, words stay.
        ("ENTER SIX RUBOUT", "enter six rubout"),
        ("YES", "yes"),
        ("Call MP3 now", "call m p three now"),
        ("", ""),
    ],
)
def test_spelled(text, expected):
    assert get_normalizer("spelled")(text) == expected


def test_pitfall_whisper_english_scores_spelled_digits_as_errors():
    """The notes' AN4 pitfall: spelled reference vs digit hypothesis."""
    score, ref, hyp = score_utterance(
        "ONE FIVE TWO THREE SIX", "1 5 2 3 6", get_normalizer("whisper_english")
    )
    assert (ref, hyp) == ("15236", "one 5 2 3 6")
    assert score.word_errors > 0


def test_pitfall_spelled_matches_digits_and_letters():
    spelled = get_normalizer("spelled")
    score, ref, hyp = score_utterance("ONE FIVE TWO THREE SIX", "1 5 2 3 6", spelled)
    assert ref == hyp == "one five two three six"
    assert score.word_errors == 0
    score, _, _ = score_utterance("ENTER J P E G", "Enter JPEG.", spelled)
    assert score.word_errors == 0


def test_pitfall_whisper_english_turns_letter_o_into_zero():
    _, ref, _ = score_utterance("W O O D", "", get_normalizer("whisper_english"))
    assert ref == "w 00 d"
