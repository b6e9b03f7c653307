"""The synthetic benchmark's sentence generator: format, determinism, prefix stability, topics."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys

import pytest

from clasr.bench import sentences as sent
from clasr.bench.sentence_data import SHARED_SLOTS, NumberPhrases
from clasr.bench.sentences import (
    TOPICS,
    generate_sentences,
    number_words,
    sentence_space,
    templates,
    topic_vocabulary,
)

ALLOWED = re.compile(r"^[A-Z][A-Za-z', ]*[A-Za-z][.?!]$")
WORD = re.compile(r"[A-Za-z']+")
FUNCTION_WORDS = frozenset(
    "a an the and or of to in on at for with from by into over than about before after until "
    "while since so that this is are was be been has have will can could should do does did "
    "it i you we your our my there how why who where when if then as not all more most some "
    "every too little much long new what because up out".split()
)


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def _shared_words() -> frozenset[str]:
    """Words of the lists every topic may use (names, days, times, numbers)."""
    words: set[str] = set()
    for items in SHARED_SLOTS.values():
        for item in items:
            if isinstance(item, NumberPhrases):
                phrases = [p.format(number_words(n)) for p in item.patterns for n in item.numbers]
            else:
                phrases = [item]
            words.update(w for p in phrases for w in _words(p))
    return frozenset(words)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (45, "forty five"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (999, "nine hundred ninety nine"),
        (1000, "one thousand"),
        (2005, "two thousand five"),
        (2340, "two thousand three hundred forty"),
        (9999, "nine thousand nine hundred ninety nine"),
    ],
)
def test_number_words(n, words):
    assert number_words(n) == words


@pytest.mark.parametrize("n", [-1, 10000])
def test_number_words_out_of_range(n):
    with pytest.raises(ValueError, match="0 to 9999"):
        number_words(n)


def test_topics_have_enough_templates_and_sentences():
    assert len(TOPICS) >= 6
    for topic in TOPICS:
        assert len(templates(topic)) >= 12, topic
        assert sentence_space(topic) >= 5000, topic


@pytest.mark.parametrize("topic", TOPICS)
def test_every_template_stays_within_the_rules(topic):
    """Checked on the templates themselves, so no rare combination can break a rule."""
    for template in templates(topic):
        literal = sum(len(WORD.findall(p)) for p in template.parts)
        fewest = literal + sum(min(len(WORD.findall(p)) for p in ph) for ph in template.slots)
        most = literal + sum(max(len(WORD.findall(p)) for p in ph) for ph in template.slots)
        assert 5 <= fewest and most <= 16, (template.parts, fewest, most)
        assert template.parts[-1][-1:] in {".", "?", "!"}, template.parts
        for phrase in itertools.chain(template.parts, *template.slots):
            assert re.fullmatch(r"[A-Za-z', ]*[.?!]?", phrase), phrase
            assert "  " not in phrase and not re.search(r"[0-9-]", phrase), phrase
        for phrases in template.slots:
            assert len(set(phrases)) == len(phrases) and all(p.strip() == p != "" for p in phrases)


@pytest.mark.parametrize("topic", TOPICS)
def test_generated_sentences_are_well_formed(topic):
    for sentence in generate_sentences(topic, 300, seed=11):
        assert ALLOWED.match(sentence), sentence
        assert "  " not in sentence and " ," not in sentence, sentence
        assert 5 <= len(sentence.split()) <= 16, sentence


def test_same_arguments_give_the_same_sentences():
    first = generate_sentences("travel", 200, seed=3)
    assert generate_sentences("travel", 200, seed=3) == first


def test_same_sentences_in_another_process():
    code = ("import json; from clasr.bench.sentences import generate_sentences as g; "
            "print(json.dumps(g('health', 150, 42)))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout) == generate_sentences("health", 150, seed=42)


@pytest.mark.parametrize("topic", ["home", "shipping"])
def test_prefix_stable(topic):
    full = generate_sentences(topic, 500, seed=5)
    for k in (0, 1, 17, 250, 499):
        assert generate_sentences(topic, k, seed=5) == full[:k]


def test_counts_honoured_and_distinct():
    for count in (0, 1, 64, 1000):
        out = generate_sentences("cooking", count, seed=0)
        assert len(out) == count and len(set(out)) == count


def test_different_seeds_give_mostly_different_sentences():
    for topic in TOPICS:
        a, b = (set(generate_sentences(topic, 300, seed=s)) for s in (0, 1))
        assert len(a & b) < 0.1 * 300, topic


def test_topic_vocabularies_differ():
    shared = _shared_words()
    full = {t: topic_vocabulary(t) - FUNCTION_WORDS for t in TOPICS}
    own = {t: words - shared for t, words in full.items()}
    for a, b in itertools.combinations(TOPICS, 2):
        assert len(full[a] & full[b]) / len(full[a] | full[b]) < 0.3, (a, b)
        assert len(own[a] & own[b]) / len(own[a] | own[b]) < 0.1, (a, b, sorted(own[a] & own[b]))


@pytest.mark.parametrize("topic", TOPICS)
def test_sentences_use_only_their_topic_vocabulary(topic):
    vocabulary = topic_vocabulary(topic)
    used = {w for s in generate_sentences(topic, 300, seed=2) for w in _words(s)}
    assert used <= vocabulary, sorted(used - vocabulary)
    assert all(w == w.lower() for w in vocabulary)


def test_unknown_topic_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown topic 'opera'") as info:
        generate_sentences("opera", 5, seed=0)
    assert all(topic in str(info.value) for topic in TOPICS)
    with pytest.raises(ValueError, match="unknown topic"):
        topic_vocabulary("opera")


def test_count_beyond_the_templates_is_refused():
    space = sentence_space("weather")
    with pytest.raises(ValueError, match=f"cannot generate {space + 1} .*'weather'.*{space}"):
        generate_sentences("weather", space + 1, seed=0)
    with pytest.raises(ValueError, match="cannot generate -1"):
        generate_sentences("weather", -1, seed=0)


def test_gives_up_after_too_many_repeats(monkeypatch):
    """The attempt bound: with no repeat allowed, the first repeated draw stops generation."""
    monkeypatch.setattr(sent, "MAX_REPEATS_IN_A_ROW", 0)
    space = sentence_space("technology")
    with pytest.raises(ValueError, match=rf"found only \d+ of {space} distinct sentences for topic 'technology'"):
        generate_sentences("technology", space, seed=0)
