"""Deterministic sentences per topic, the text side of the synthetic speech benchmark.

Speech is synthesised from these sentences and Whisper is fine-tuned domain after domain;
giving each domain its own topic shifts the vocabulary as well as the acoustics.

Design:

* **Languages.** :data:`TOPICS` are English; :data:`LANGUAGE_TOPICS` (from
  :mod:`clasr.bench.language_data`) are Spanish, German and French topics and a
  Spanish–English code-switched one, drawn the same way (:func:`topic_language` names a
  topic's language).
* **Templates × word lists.** Every topic in :data:`TOPICS` has a dozen or more templates
  whose ``{slot}`` placeholders are filled from word lists (see
  :mod:`clasr.bench.sentence_data`, all written for this project). Topic lists carry the
  topic's vocabulary; a few shared lists (names, days, times of day, numbers) appear in
  every topic. Numbers are spelled out by :func:`number_words`, so a sentence holds only
  letters, spaces, apostrophes, commas and one final ``.``, ``?`` or ``!``, which speech
  synthesis reads one way and Whisper's English normalizer scores fairly.
* **Determinism.** Draws come from ``random.Random(f"{topic}:{seed}")``, whose string seed
  is hashed with SHA-512 rather than Python's salted ``hash()``, so the same arguments give
  the same sentences in every process.
* **Prefix stability.** Sentences are drawn one after another, repeats are skipped, and
  generation stops once ``count`` distinct sentences are found; the draws never depend on
  ``count``, so the first ``k`` sentences for any ``count >= k`` are the same and asking
  for more data never changes the rows already made.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from clasr.bench.language_data import LANGUAGE_SLOTS, LANGUAGE_TEMPLATES, LANGUAGE_TOPICS
from clasr.bench.length_domains import LENGTH_SLOTS, LENGTH_TEMPLATES, PASSAGE_SOURCE, pack_passages
from clasr.bench.sentence_data import SHARED_SLOTS, TEMPLATES, TOPIC_SLOTS, NumberPhrases

TOPICS: tuple[str, ...] = tuple(TEMPLATES)
"""The English topics."""

MAX_REPEATS_IN_A_ROW = 5000
"""Generation gives up after this many consecutive draws that repeat a sentence."""

TEMPLATE_WEIGHT_CAP = 1000
"""A template is drawn in proportion to ``min(its sentence count, this cap)``."""

_SLOT = re.compile(r"\{(\w+)\}")
_WORD = re.compile(r"[a-z']+")
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str:
    """Spell ``0 <= n <= 9999`` in American English words without "and" or hyphens.

    ``45 -> "forty five"``, ``101 -> "one hundred one"``, ``2005 -> "two thousand five"``.
    """
    if not 0 <= n <= 9999:
        raise ValueError(f"number_words covers 0 to 9999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    big, rest = divmod(n, 1000) if n >= 1000 else divmod(n, 100)
    head = f"{_ONES[big]} {'thousand' if n >= 1000 else 'hundred'}"
    return f"{head} {number_words(rest)}" if rest else head


@dataclass(frozen=True)
class Template:
    """A template split into literal ``parts`` around its slots, each slot's phrases expanded."""

    parts: tuple[str, ...]
    slots: tuple[tuple[str, ...], ...]

    def fill(self, choices: list[str]) -> str:
        """The sentence with ``choices[i]`` in slot ``i``, its first letter capitalised."""
        text = self.parts[0] + "".join(c + p for c, p in zip(choices, self.parts[1:]))
        return text[0].upper() + text[1:]

    def size(self) -> int:
        """How many sentences the template can produce."""
        return math.prod(len(phrases) for phrases in self.slots)


def _expand(items: tuple) -> tuple[str, ...]:
    """Flatten a slot list: plain phrases stay, :class:`NumberPhrases` are spelled out."""
    out: list[str] = []
    for item in items:
        if isinstance(item, NumberPhrases):
            out.extend(p.format(number_words(n)) for p in item.patterns for n in item.numbers)
        else:
            out.append(item)
    return tuple(out)


def _check_topic(topic: str) -> None:
    if topic not in TEMPLATES and topic not in LANGUAGE_TEMPLATES and topic not in LENGTH_TEMPLATES and topic not in PASSAGE_SOURCE:
        known = [*TOPICS, *LANGUAGE_TOPICS, *LENGTH_TEMPLATES, *PASSAGE_SOURCE]
        raise ValueError(f"unknown topic {topic!r}; known topics: {', '.join(known)}")


def topic_language(topic: str) -> str:
    """The ISO 639-1 language of a topic's sentences (for a code-switched topic, that of the
    sentence frame): ``en`` for the English topics."""
    _check_topic(topic)
    return LANGUAGE_TOPICS.get(topic, "en")


@lru_cache(maxsize=None)
def templates(topic: str) -> tuple[Template, ...]:
    """The topic's templates with their slot lists resolved (topic lists before shared ones;
    a topic in another language or of :mod:`clasr.bench.length_domains` has its own lists only;
    a passage topic has its sentence topic's)."""
    _check_topic(topic)
    topic = PASSAGE_SOURCE.get(topic, topic)
    if topic in LANGUAGE_TEMPLATES:
        texts, lists = LANGUAGE_TEMPLATES[topic], LANGUAGE_SLOTS[topic]
    elif topic in LENGTH_TEMPLATES:
        texts, lists = LENGTH_TEMPLATES[topic], LENGTH_SLOTS[topic]
    else:
        texts, lists = TEMPLATES[topic], {**SHARED_SLOTS, **TOPIC_SLOTS[topic]}
    compiled = []
    for text in texts:
        pieces = _SLOT.split(text)  # literal, slot, literal, slot, ..., literal
        compiled.append(Template(tuple(pieces[0::2]), tuple(_expand(lists[s]) for s in pieces[1::2])))
    return tuple(compiled)


@lru_cache(maxsize=None)
def _cum_weights(topic: str) -> tuple[int, ...]:
    return tuple(itertools.accumulate(min(t.size(), TEMPLATE_WEIGHT_CAP) for t in templates(topic)))


def sentence_space(topic: str) -> int:
    """Upper bound on the distinct sentences of ``topic`` (exact unless templates collide)."""
    return sum(t.size() for t in templates(topic))


def topic_vocabulary(topic: str) -> frozenset[str]:
    """Every lowercased word the topic's templates and slot lists can produce."""
    words: set[str] = set()
    for template in templates(topic):
        for text in (*template.parts, *(p for phrases in template.slots for p in phrases)):
            words.update(_WORD.findall(text.lower()))
    return frozenset(words)


def generate_sentences(topic: str, count: int, seed: int) -> list[str]:
    """``count`` distinct sentences of ``topic``, the same for the same arguments in any process.

    Each draw picks a template, then a phrase for each slot; repeats are skipped. Templates
    are weighted by their sentence count capped at :data:`TEMPLATE_WEIGHT_CAP`, so every
    large template is equally common (varied sentence shapes) while small ones are drawn
    too rarely to be used up (two seeds share few sentences: at most 9 of 300 per topic).
    The result is prefix-stable: ``generate_sentences(t, n, s)[:k] == generate_sentences(t, k, s)``.
    Raises ``ValueError`` for an unknown topic, a negative count, a count above
    :func:`sentence_space`, or when :data:`MAX_REPEATS_IN_A_ROW` draws in a row repeat.
    """
    if topic in PASSAGE_SOURCE:  # passages of consecutive sentences (clasr.bench.length_domains)
        return pack_passages(lambda n: generate_sentences(PASSAGE_SOURCE[topic], n, seed), count)
    compiled = templates(topic)
    space = sentence_space(topic)
    if not 0 <= count <= space:
        raise ValueError(f"cannot generate {count} distinct sentences for topic {topic!r}: "
                         f"its templates allow 0 to {space}")
    cum_weights = _cum_weights(topic)
    rng = random.Random(f"{topic}:{seed}")
    found: dict[str, None] = {}  # insertion-ordered set
    repeats = 0
    while len(found) < count:
        template = rng.choices(compiled, cum_weights=cum_weights)[0]
        sentence = template.fill([rng.choice(phrases) for phrases in template.slots])
        repeats = repeats + 1 if sentence in found else 0
        if repeats > MAX_REPEATS_IN_A_ROW:
            raise ValueError(f"found only {len(found)} of {count} distinct sentences for topic "
                             f"{topic!r} before {MAX_REPEATS_IN_A_ROW} draws in a row repeated")
        found[sentence] = None
    return list(found)
