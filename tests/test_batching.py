import torch

from clasr.data.batching import IGNORE_INDEX, SpeechCollator, duration_batches, make_loader, prompt_ids
from clasr.data.manifest import Selection, read_dataset


def test_duration_batches_group_similar_durations():
    durations = [3.0, 1.0, 2.0, 5.0, 4.0]
    assert duration_batches(durations, 2) == [[1, 2], [0, 4], [3]]


def test_shuffle_permutes_batches_not_contents_and_is_seeded():
    durations = [float(i) for i in range(20)]
    plain = duration_batches(durations, 4)
    shuffled = duration_batches(durations, 4, shuffle=True, seed=3)
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, plain))
    assert shuffled == duration_batches(durations, 4, shuffle=True, seed=3)
    assert shuffled != plain


def test_prompt_is_english_no_timestamps(tiny_bundle):
    assert prompt_ids(tiny_bundle.tokenizer) == [50257, 50362]


def test_labels_are_decoder_inputs_shifted_and_prompt_unscored(tiny_bundle):
    collator = SpeechCollator(tiny_bundle.feature_extractor, tiny_bundle.tokenizer, 200)
    inputs, labels = collator.tokens([" hello there ", "a"])
    tok = tiny_bundle.tokenizer
    text_ids = tok.encode(" hello there", add_special_tokens=False)
    assert inputs[0, :2].tolist() == [50257, 50362]
    assert labels[0, 0] == IGNORE_INDEX  # the <|notimestamps|> prediction is not scored
    n = len(text_ids)
    assert labels[0, 1 : n + 1].tolist() == text_ids
    assert labels[0, n + 1] == tok.eos_token_id
    scored = labels[0] != IGNORE_INDEX
    # label at position p is the decoder input at position p+1 (teacher forcing)
    assert torch.equal(labels[0, :-1][scored[:-1]], inputs[0, 1:][scored[:-1]])
    # the shorter row is padded: no label beyond its end token
    assert (labels[1] != IGNORE_INDEX).sum() == len(tok.encode(" a", add_special_tokens=False)) + 1


def test_features_have_window_frames_and_real_lengths(tiny_bundle, toy_dataset):
    utts, _ = read_dataset(toy_dataset, Selection(split="train"))
    collator = SpeechCollator(tiny_bundle.feature_extractor, tiny_bundle.tokenizer, 200)
    batch = collator(utts[:3], [0, 1, 2])
    assert batch.input_features.shape == (3, 80, 200)
    expected = [min(int(round(u.duration * 16000)) // 160, 200) for u in utts[:3]]
    assert batch.feature_lengths.tolist() == expected


def test_loader_covers_every_utterance_once(tiny_bundle, toy_dataset):
    utts, _ = read_dataset(toy_dataset, Selection(split="train"))
    collator = SpeechCollator(tiny_bundle.feature_extractor, tiny_bundle.tokenizer, 200)
    seen = [i for batch in make_loader(utts, collator, 3, shuffle=True) for i in batch.indices]
    assert sorted(seen) == list(range(len(utts)))
