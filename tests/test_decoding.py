import math

import torch

from clasr.data.batching import SpeechCollator
from clasr.data.manifest import Selection, read_dataset
from clasr.data.audio import load_audio
from clasr.decoding import DecodeLimits, greedy_decode, suppressed_ids


def test_budget_formula():
    limits = DecodeLimits(tokens_per_second=10, extra_tokens=16, max_new_tokens=100)
    assert limits.budget(2.05) == math.ceil(20.5) + 16
    assert limits.budget(60.0) == 100


def test_only_text_tokens_or_end_can_be_generated(tiny_bundle):
    model = tiny_bundle.model
    eot = tiny_bundle.tokenizer.eos_token_id
    later = set(suppressed_ids(model, eot, first_step=False))
    assert eot not in later
    assert set(range(eot + 1, model.config.vocab_size)) <= later
    first = set(suppressed_ids(model, eot, first_step=True))
    assert set(model.generation_config.begin_suppress_tokens) <= first


def _features(bundle, folder, n):
    utts, _ = read_dataset(folder, Selection(split="train", max_utterances=n))
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    feats, _ = collator.features([load_audio(u.audio_path) for u in utts])
    return feats, collator


def test_greedy_matches_transformers_generate(tiny_bundle, toy_dataset):
    feats, collator = _features(tiny_bundle, toy_dataset, 3)
    budget = 12
    ours = greedy_decode(tiny_bundle.model, feats, collator.prompt, collator.eot, [budget] * 3)
    theirs = tiny_bundle.model.generate(feats, max_new_tokens=budget, do_sample=False, num_beams=1)
    for mine, ref in zip(ours, theirs):
        ref_text = [t for t in ref.tolist() if t < collator.eot]
        assert mine.tokens == ref_text[: len(mine.tokens)] and len(mine.tokens) == len(ref_text)


def test_each_row_stops_at_its_own_budget(tiny_bundle, toy_dataset):
    feats, collator = _features(tiny_bundle, toy_dataset, 2)
    # A random model rarely ends on its own: force it to never end to test the bound.
    model = tiny_bundle.model
    saved = list(model.generation_config.suppress_tokens or [])
    model.generation_config.suppress_tokens = saved + [collator.eot]
    try:
        out = greedy_decode(model, feats, collator.prompt, collator.eot, [3, 7])
    finally:
        model.generation_config.suppress_tokens = saved
    assert [len(o.tokens) for o in out] == [3, 7]
    assert all(o.hit_token_limit for o in out)
    assert torch.is_grad_enabled()
