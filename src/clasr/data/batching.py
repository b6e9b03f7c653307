"""From utterances to model batches: duration-sorted batches, log-mel features, token targets.

Batches group utterances of similar duration (less padding in the decoder targets and
comparable decoding lengths). Training shuffles the order of the batches per epoch with a
fixed seed; evaluation keeps them sorted.

Targets follow Whisper's decoder format for transcription without timestamps::

    decoder input:  <|startoftranscript|> [<|xx|> <|transcribe|>] <|notimestamps|>  t_1 … t_n
    labels:         -100 …                                                t_1  …  t_n <|endoftext|>

The language and task tokens are there for a multilingual model (``language`` "xx"), absent
for an English-only one (``language`` None). Each utterance carries its own task's language:
a collator may map utterances of other tasks (replayed by ER, joint training) to their
languages (:func:`utterance_languages`), so an earlier German task replayed during an
English one is still trained behind ``<|de|>``.

The prompt tokens are fed but never scored (label -100), so the loss and every
curvature statistic count only the transcript and its end token.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from clasr.data.audio import TARGET_SAMPLE_RATE, load_audio
from clasr.data.manifest import DataError, Utterance

IGNORE_INDEX = -100
HOP_LENGTH = 160  # samples per log-mel frame at 16 kHz (10 ms)


def duration_batches(
    durations: Sequence[float], batch_size: int, shuffle: bool = False, seed: int = 0
) -> list[list[int]]:
    """Indices grouped into batches of similar duration.

    Utterances are sorted by duration (stable, ties in input order) and cut into
    consecutive batches of ``batch_size``; with ``shuffle`` the order of the batches
    (not their contents) is permuted by ``seed``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    order = sorted(range(len(durations)), key=lambda i: durations[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        random.Random(seed).shuffle(batches)
    return batches


def load_utterance_audio(utterance: Utterance) -> np.ndarray:
    """The utterance's audio at 16 kHz: the whole file, or only its segment's span."""
    if utterance.offset is None:
        return load_audio(utterance.audio_path)
    return load_audio(utterance.audio_path, offset=utterance.offset, duration=utterance.duration)


def prompt_ids(tokenizer, language: str | None = None) -> list[int]:
    """The decoder prompt for transcription without timestamps: [50257, 50362] for English-only
    models (``language`` None), <|startoftranscript|><|xx|><|transcribe|><|notimestamps|> for a
    multilingual one told ``language`` "xx". Built from token strings; the tokenizer is not changed."""
    names = ["<|startoftranscript|>", *([f"<|{language}|>", "<|transcribe|>"] if language else []), "<|notimestamps|>"]
    ids = tokenizer.convert_tokens_to_ids(names)
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ValueError(f"the tokenizer lacks one of the prompt tokens {names}")
    return ids


def utterance_languages(tasks: Sequence[tuple[str, str | None, Sequence[Utterance]]]) -> dict[Utterance, str | None]:
    """Each utterance of ``tasks`` — (task name, prompt language, training utterances) — mapped
    to its task's prompt language; DataError naming both tasks when one utterance (the same
    manifest row) belongs to two tasks of different languages."""
    languages: dict[Utterance, str | None] = {}
    owner: dict[Utterance, str] = {}
    for name, language, utterances in tasks:
        for utterance in utterances:
            if languages.get(utterance, language) != language:
                raise DataError(
                    f"{utterance.audio_path} (row {utterance.row}) is in task {owner[utterance]!r} "
                    f"(language {languages[utterance]}) and in task {name!r} (language {language}); "
                    "an utterance has one language"
                )
            languages[utterance], owner[utterance] = language, name
    return languages


@dataclass
class SpeechBatch:
    """One batch: features for the encoder, teacher-forced decoder inputs and labels."""

    input_features: torch.Tensor  # (B, n_mels, window_frames)
    feature_lengths: torch.Tensor  # (B,) frames that hold audio; the rest is padding
    decoder_input_ids: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L), IGNORE_INDEX where nothing is scored
    indices: list[int]  # positions of the utterances in the dataset

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "SpeechBatch":
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return SpeechBatch(
            move(self.input_features),
            move(self.feature_lengths),
            move(self.decoder_input_ids),
            move(self.labels),
            self.indices,
        )


class SpeechCollator:
    """Turns utterances into a :class:`SpeechBatch` for a model with a given encoder window.

    Every target gets the leading space Whisper's tokenizer expects after the prompt (a
    task's ``lowercase_targets`` is applied when its training set is loaded, not here).
    ``language``: the language token of the prompt (None for an English-only model; see
    ``clasr.models.language.prompt_language``). ``languages``: utterances that take another
    prompt language than ``language`` (see :func:`utterance_languages`).
    """

    def __init__(
        self,
        feature_extractor,
        tokenizer,
        window_frames: int,
        max_target_positions: int = 448,
        language: str | None = None,
        languages: Mapping[Utterance, str | None] | None = None,
    ):
        self.feature_extractor = feature_extractor
        self.max_target_positions = max_target_positions
        self.tokenizer = tokenizer
        self.window_frames = window_frames
        self.language = language
        self.prompt = prompt_ids(tokenizer, language)
        self.prompts = {lang: prompt_ids(tokenizer, lang) for lang in {language, *(languages or {}).values()}}
        self.languages = {u: lang for u, lang in (languages or {}).items() if lang != language}
        self.eot = tokenizer.eos_token_id

    def prompt_of(self, utterance: Utterance) -> list[int]:
        """The decoder prompt of ``utterance``: that of its own language."""
        return self.prompts[self.languages.get(utterance, self.language)]

    def features(self, audios: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel features padded or cut to the window, and the number of real frames."""
        window_samples = self.window_frames * HOP_LENGTH
        feats = self.feature_extractor(
            [a[:window_samples] for a in audios],
            sampling_rate=TARGET_SAMPLE_RATE,
            max_length=window_samples,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        ).input_features
        lengths = torch.tensor([min(len(a) // HOP_LENGTH, self.window_frames) for a in audios])
        return feats, lengths

    def target_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(" " + text.strip(), add_special_tokens=False)

    def tokens(self, texts: Sequence[str], prompts: Sequence[list[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder inputs and labels, right-padded with the end token (inputs) and IGNORE_INDEX
        (labels); ``prompts``: each text's prompt (default: the collator's)."""
        inputs, labels = [], []
        for text, prompt in zip(texts, prompts or [self.prompt] * len(texts)):
            ids = self.target_ids(text)
            inputs.append(prompt + ids)
            labels.append([IGNORE_INDEX] * (len(prompt) - 1) + ids + [self.eot])
        width = max(len(x) for x in inputs)
        input_ids = torch.full((len(texts), width), self.eot, dtype=torch.long)
        label_ids = torch.full((len(texts), width), IGNORE_INDEX, dtype=torch.long)
        for row, (inp, lab) in enumerate(zip(inputs, labels)):
            input_ids[row, : len(inp)] = torch.tensor(inp)
            label_ids[row, : len(lab)] = torch.tensor(lab)
        return input_ids, label_ids

    def check_length(self, utterance: Utterance) -> None:
        """ValueError naming the utterance when its transcript does not fit the decoder."""
        n = len(self.prompt_of(utterance)) + len(self.target_ids(utterance.text)) + 1
        if n > self.max_target_positions:
            raise ValueError(
                f"{utterance.audio_path} (row {utterance.row}): transcript needs {n} decoder positions, "
                f"the model has {self.max_target_positions}"
            )

    def __call__(self, utterances: Sequence[Utterance], indices: Sequence[int]) -> SpeechBatch:
        for utterance in utterances:
            self.check_length(utterance)
        feats, lengths = self.features([load_utterance_audio(u) for u in utterances])
        input_ids, labels = self.tokens([u.text for u in utterances], [self.prompt_of(u) for u in utterances])
        return SpeechBatch(feats, lengths, input_ids, labels, list(indices))


class UtteranceDataset(torch.utils.data.Dataset):
    """Index → utterance; batches are formed by :func:`duration_batches` and a :class:`SpeechCollator`."""

    def __init__(self, utterances: Sequence[Utterance]):
        self.utterances = list(utterances)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> tuple[Utterance, int]:
        return self.utterances[index], index


def make_loader(
    utterances: Sequence[Utterance],
    collator: SpeechCollator,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """A DataLoader over duration-sorted batches (shuffled batch order when training)."""
    batches = duration_batches([u.duration for u in utterances], batch_size, shuffle, seed)
    return torch.utils.data.DataLoader(
        UtteranceDataset(utterances), batch_sampler=batches, collate_fn=_CollateItems(collator)
    )


def batch_stream(
    utterances: Sequence[Utterance], batches: Sequence[Sequence[int]], collator: SpeechCollator, num_workers: int = 0
) -> Iterator[SpeechBatch]:
    """The :class:`SpeechBatch` of each index list of ``batches``, in order.

    With ``num_workers`` > 0, that many DataLoader worker processes decode and collate the
    next batches while the current one trains (two batches ahead each); the batches and their
    order are the same as without workers, since collating draws nothing at random.
    """
    if num_workers == 0:
        return (collator([utterances[i] for i in indices], indices) for indices in batches)
    loader = torch.utils.data.DataLoader(
        UtteranceDataset(utterances),
        batch_sampler=[list(indices) for indices in batches],
        collate_fn=_CollateItems(collator),
        num_workers=num_workers,
    )
    return iter(loader)


class _CollateItems:
    """DataLoader items (utterance, index) → SpeechBatch; a class so worker processes can pickle it."""

    def __init__(self, collator: SpeechCollator) -> None:
        self.collator = collator

    def __call__(self, items: list[tuple[Utterance, int]]) -> SpeechBatch:
        return self.collator([u for u, _ in items], [i for _, i in items])
