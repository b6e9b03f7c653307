"""The built-in domains at the ends of utterance length: commands (1–3 words) and passages (20–30 s)."""

from __future__ import annotations

import re

import pytest

from clasr.bench.length_domains import COMMANDS_DOMAIN, PASSAGE_WORDS, PASSAGES_DOMAIN, pack_passages
from clasr.bench.sentences import generate_sentences, topic_language, topic_vocabulary
from clasr.bench.voices import synthesize


def test_commands_are_one_to_three_spelled_words_distinct_and_prefix_stable():
    commands = generate_sentences("commands", 152, seed=3)
    assert len(set(commands)) == 152
    assert all(1 <= len(c.split()) <= 3 for c in commands)
    assert not any(re.search(r"\d", c) for c in commands)  # numbers spelled, never digits
    assert {len(c.split()) for c in commands} == {1, 2, 3}
    assert generate_sentences("commands", 40, seed=3) == commands[:40]
    assert generate_sentences("commands", 40, seed=4) != commands[:40]
    assert topic_language("commands") == "en" and "volume" in topic_vocabulary("commands")


def _words(n: int) -> str:
    return " ".join(["w"] * n) + "."


def test_passages_pack_consecutive_sentences_and_drop_one_over_the_limit():
    sizes = [30, 30, 20, 50, 40, 45, 10, 55, 5, 80]  # words per sentence, in order
    source = [_words(n) for n in sizes]
    passages = pack_passages(lambda n: source[:n], 3, words=(50, 70))
    # 30+30 = 60 kept; 20+50 = 70 kept; 40+45 = 85 dropped; 10+55 = 65 kept; 5+80 dropped
    assert passages == [" ".join(source[0:2]), " ".join(source[2:4]), " ".join(source[6:8])]
    with pytest.raises(ValueError, match="only 3 of 4 passages of 50–70 words from 10 sentences"):
        pack_passages(lambda n: source[:n], 4, words=(50, 70))


def test_passages_are_runs_of_the_source_topic_within_the_word_range_and_prefix_stable():
    passages = generate_sentences("passages", 20, seed=1)
    least, most = PASSAGE_WORDS
    assert all(least <= len(p.split()) <= most for p in passages)
    assert generate_sentences("passages", 5, seed=1) == passages[:5]
    text = " ".join(generate_sentences("cooking", 400, seed=1))
    assert all(p in text for p in passages)  # consecutive sentences of the cooking topic


def test_passages_last_20_to_30_seconds_and_commands_about_a_second():
    passage = generate_sentences("passages", 2, seed=0)
    for voice, text in zip(PASSAGES_DOMAIN.voices, passage):
        audio, rate = synthesize(voice, text, seed=0)
        assert 20 <= len(audio) / rate <= 30, (voice, len(text.split()), len(audio) / rate)
    for voice, text in zip(COMMANDS_DOMAIN.voices, generate_sentences("commands", 4, seed=0)):
        audio, rate = synthesize(voice, text, seed=0)
        assert len(audio) / rate <= 2.5, (voice, text, len(audio) / rate)
