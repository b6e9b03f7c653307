"""Two built-in domains at the ends of utterance length (issue 20): commands and passages.

The other domains are sentences of 3–4 s. A model adapted only to them can unlearn what it
did at other lengths — sequential LoRA on one-word commands learned to end every sentence
after its first word — and defaults chosen on them say nothing about it. So:

* ``commands`` (topic :data:`COMMANDS`): isolated words, numbers and short commands of one
  to three words ("Stop.", "Forty two.", "Volume seven.", "Open the door.", "Turn left."), about 1 s,
  several eSpeak NG voices. Numbers are single spelled-out numbers, never digit strings,
  which Whisper's English normalizer scores unevenly ("one two three" → "123").
* ``passages`` (topic :data:`PASSAGES`): a passage of 60–72 words — consecutive sentences of
  the ``cooking`` topic — read in one go, 21–28 s (measured: 56–60 words 21.2–21.9 s, 70–71 words 25.3–27.3 s).
  Experiments on it need Whisper's own 30 s window (``model.window_seconds: 30``): longer
  rows than the window are filtered as too long.

:func:`pack_passages` turns a topic's sentences into passages (deterministic, prefix-stable:
more passages never change the first ones). :mod:`clasr.bench.sentences` draws both topics
like any other.
"""

from __future__ import annotations

from typing import Callable

from clasr.bench.sentence_data import NumberPhrases
from clasr.bench.spec import DomainSpec
from clasr.bench.voices import Voice

COMMANDS = "commands"
PASSAGES = "passages"
PASSAGE_SOURCE = {PASSAGES: "cooking"}
"""Passage topic → the sentence topic its passages are made of."""
PASSAGE_WORDS = (60, 72)
"""A passage takes sentences until it has at least 60 words; one that passes 72 is dropped (71 words read in 27.3 s at most)."""

_VERBS = ("open", "close", "lock", "check", "call", "play", "pause", "start", "clear", "save")
_THINGS = ("the door", "the window", "the garage", "the lights", "the music", "the radio",
           "the oven", "the timer", "the file", "the message", "mail", "home")
LENGTH_TEMPLATES: dict[str, tuple[str, ...]] = {
    COMMANDS: ("{command}.", "{answer}.", "{word}.", "{number}.", "{setting} {small}.", "{verb} {thing}.",
               "{move} {direction}.", "{direction}."),
}
LENGTH_SLOTS: dict[str, dict[str, tuple]] = {
    COMMANDS: {
        "command": ("stop", "go", "start", "pause", "cancel", "enter", "repeat", "help", "next",
                    "back", "undo", "continue", "select", "delete", "wait", "finish", "begin",
                    "reset", "send", "search", "menu", "exit", "rewind", "skip"),
        "answer": ("yes", "no", "okay", "correct", "wrong", "maybe", "never mind", "thank you"),
        "word": ("red", "green", "blue", "yellow", "apple", "table", "window", "pencil", "garden",
                 "river", "morning", "kitchen", "doctor", "summer", "bottle", "ticket", "orange",
                 "purple", "rabbit", "candle"),
        "number": (NumberPhrases(("{}",), range(0, 100)),),
        "setting": ("volume", "channel", "page", "track", "level", "room", "line", "floor"),
        "small": (NumberPhrases(("{}",), range(1, 21)),),
        "verb": _VERBS,
        "thing": _THINGS,
        "move": ("go", "move", "turn", "scroll", "look", "step"),
        "direction": ("up", "down", "left", "right", "forward", "backward", "faster", "slower"),
    },
}


def pack_passages(sentences: Callable[[int], list[str]], count: int, words: tuple[int, int] = PASSAGE_WORDS) -> list[str]:
    """``count`` passages of ``words[0]``–``words[1]`` words from the first sentences of a
    topic (``sentences(n)``: its first ``n``, prefix-stable): sentences are taken in order
    until a passage has at least ``words[0]`` words; a passage over ``words[1]`` is dropped.
    Raises ``ValueError`` when the topic runs out of sentences first."""
    least, most = words
    wanted = count * (most // 4)  # more than enough unless sentences average over 4 words
    drawn = sentences(wanted)
    passages, current = [], []
    for sentence in drawn:
        current.append(sentence)
        size = sum(len(s.split()) for s in current)
        if size >= least:
            if size <= most:
                passages.append(" ".join(current))
            current = []
        if len(passages) == count:
            return passages
    raise ValueError(f"only {len(passages)} of {count} passages of {least}–{most} words from {len(drawn)} sentences")


COMMANDS_DOMAIN = DomainSpec(
    name="commands", description="isolated words, numbers and short commands (1–3 words, about 1 s)",
    topic=COMMANDS, voices=tuple(Voice(engine="espeak", name=f"en-us+{v}") for v in ("m3", "f1", "m7", "f4")),
    train=96, dev=24, test=32,
)

PASSAGES_DOMAIN = DomainSpec(
    name="passages", description="long-form reading: 60–72-word passages, 21–28 s (needs the 30 s window)",
    topic=PASSAGES, voices=(Voice(engine="hibari", name="heart"), Voice(engine="hibari", name="heart", british=True)),
    train=32, dev=8, test=12,
)
