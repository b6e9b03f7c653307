"""Text normalizers applied to references and hypotheses before scoring.

A normalizer is a function ``str -> str``; the same one is applied to the reference and
to the hypothesis of every utterance. A task chooses its normalizer by name:

- ``"whisper_english"`` (default): Whisper's ``EnglishTextNormalizer``. It rewrites
  numbers, which hurts data whose references spell digits out (AN4): "ONE FIVE TWO THREE
  SIX" becomes "15236" while the hypothesis "1 5 2 3 6" becomes "one 5 2 3 6", and the
  letter sequence "W O O D" becomes "w 00 d".
- ``"whisper_basic"``: Whisper's ``BasicTextNormalizer`` for languages other than English:
  lower-case, text in brackets/parentheses and every symbol, punctuation or mark character
  replaced by a space, spaces collapsed (accents kept). The default of non-English sets.
- ``"basic"``: lower-case, punctuation dropped (apostrophes inside words kept), spaces
  collapsed; numbers are left as written.
- ``"spelled"``: for data that spells digits and letters as separate words (AN4-like);
  see :func:`spelled_normalize`.
- ``"none"``: the identity.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable

from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

Normalizer = Callable[[str], str]

DEFAULT_NORMALIZER = "whisper_english"
MULTILINGUAL_NORMALIZER = "whisper_basic"

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

_TYPOGRAPHIC_APOSTROPHES = re.compile(r"[\u2018\u2019\u02bc]")
_PUNCTUATION = re.compile(r"[^\w\s']|_")
_APOSTROPHE_OUTSIDE_WORD = re.compile(r"(?<!\w)'|'(?!\w)")
_ACRONYM = re.compile(r"(?<![A-Za-z])[A-Z]{2,}(?![A-Za-z])")
_DIGIT = re.compile(r"[0-9]")
_LOWER_CASE_LETTER = re.compile(r"[a-z]")


@lru_cache(maxsize=1)
def _whisper_english_normalizer() -> EnglishTextNormalizer:
    return EnglishTextNormalizer()


def whisper_english_normalize(text: str) -> str:
    """Whisper's English text normalizer (one shared instance, built on first use)."""
    return _whisper_english_normalizer()(text)


@lru_cache(maxsize=1)
def _whisper_basic_normalizer() -> BasicTextNormalizer:
    return BasicTextNormalizer()


def whisper_basic_normalize(text: str) -> str:
    """Whisper's basic (multilingual) text normalizer.

    >>> whisper_basic_normalize("Größe: 3,5 Meter! (laughs) «Très» bien.")
    'größe 3 5 meter très bien'
    """
    return " ".join(_whisper_basic_normalizer()(text).split())


def basic_normalize(text: str) -> str:
    """Lower-case, drop punctuation, collapse whitespace; numbers are not rewritten.

    Punctuation becomes a space, so hyphenated words split; an apostrophe is kept only
    between two word characters (typographic apostrophes count as ``'``).

    >>> basic_normalize("Hello,  World! It's 3.5 o'clock -- 'quoted'")
    "hello world it's 3 5 o'clock quoted"
    """
    text = _TYPOGRAPHIC_APOSTROPHES.sub("'", text.lower())
    text = _PUNCTUATION.sub(" ", text)
    text = _APOSTROPHE_OUTSIDE_WORD.sub(" ", text)
    return " ".join(text.split())


def _split_letters(match: re.Match[str]) -> str:
    return " " + " ".join(match.group()) + " "


def _spell_digit(match: re.Match[str]) -> str:
    return " " + DIGIT_WORDS[int(match.group())] + " "


def spelled_normalize(text: str) -> str:
    """Spell digits and acronym letters as separate words, then :func:`basic_normalize`.

    Rules, in order:

    1. A run of two or more capital letters is an acronym and is split into its letters,
       but only when the text also contains a lower-case letter: in a text written
       entirely in capitals (AN4's references) case says nothing, and "YES" stays a word.
    2. Every digit becomes its English name: "0" -> "zero", ..., "9" -> "nine". Numbers
       are read digit by digit; number words already spelled ("SIXTY", "OH") are kept.
    3. :func:`basic_normalize`: lower-case, punctuation dropped, spaces collapsed.

    >>> spelled_normalize("15236")
    'one five two three six'
    >>> spelled_normalize("331-0188")
    'three three one zero one eight eight'
    >>> spelled_normalize("Open the JPEG file.")
    'open the j p e g file'
    >>> spelled_normalize("J-P-E-G")
    'j p e g'
    >>> spelled_normalize("ENTER SIX W O O D")
    'enter six w o o d'
    >>> spelled_normalize("JPEG")
    'jpeg'
    """
    if _LOWER_CASE_LETTER.search(text):
        text = _ACRONYM.sub(_split_letters, text)
    text = _DIGIT.sub(_spell_digit, text)
    return basic_normalize(text)


def identity_normalize(text: str) -> str:
    """Return the text unchanged."""
    return text


NORMALIZERS: dict[str, Normalizer] = {
    "whisper_english": whisper_english_normalize,
    "whisper_basic": whisper_basic_normalize,
    "basic": basic_normalize,
    "spelled": spelled_normalize,
    "none": identity_normalize,
}


def get_normalizer(name: str = DEFAULT_NORMALIZER) -> Normalizer:
    """Return the normalizer registered under ``name``; ValueError for an unknown name."""
    try:
        return NORMALIZERS[name]
    except KeyError:
        valid = ", ".join(sorted(NORMALIZERS))
        raise ValueError(f"unknown normalizer {name!r}; valid names: {valid}") from None


def check_normalizer(name: str) -> str:
    """``name`` if it names a normalizer, else ValueError naming the valid ones (a config validator)."""
    get_normalizer(name)
    return name


def default_normalizer(language: str | None, english: str = DEFAULT_NORMALIZER) -> str:
    """The normalizer of a set in ``language`` that names none: ``english`` (the evaluation's
    normalizer, Whisper's English one by default) for English, ``whisper_basic`` otherwise
    (including ``auto``, whose language is known only per hypothesis)."""
    return english if language in (None, "en") else MULTILINGUAL_NORMALIZER
