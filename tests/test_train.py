import math

import pytest
import torch
from accelerate import Accelerator

from clasr.data.batching import SpeechCollator
from clasr.data.manifest import Selection, read_dataset
from clasr.models.whisper import tiny_random_whisper
from clasr.train import TrainConfig, accumulation_groups, train_task


@pytest.mark.parametrize(
    "n_batches,accum,max_steps,expected",
    [(10, 1, None, [1] * 10), (10, 3, None, [3, 3, 3, 1]), (30, 1, 7, [1] * 7), (5, 2, 2, [2, 2])],
)
def test_accumulation_groups(n_batches, accum, max_steps, expected):
    config = TrainConfig(grad_accumulation=accum, max_steps=max_steps)
    groups = accumulation_groups([[i] for i in range(n_batches)], config)
    assert [len(g) for g in groups] == expected
    assert [b for g in groups for b in g] == [[i] for i in range(sum(expected))]


def _train(folder, **overrides):
    bundle = tiny_random_whisper(seed=1)
    utts, _ = read_dataset(folder, Selection(split="train"))
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    config = TrainConfig(**{"learning_rate": 3e-3, "epochs": 6, "batch_size": 4, "warmup_ratio": 0.0, **overrides})
    stats = train_task(bundle.model, utts, collator, config, Accelerator(cpu=True), seed=0)
    return bundle, stats


def test_loss_goes_down_on_tiny_random_whisper(toy_dataset):
    _, stats = _train(toy_dataset, epochs=10)
    assert stats.optimizer_steps == 20  # 8 utterances / batch 4 × 10 epochs
    assert stats.utterances == 80
    first, last = stats.losses[0], sum(stats.losses[-3:]) / 3
    assert math.isfinite(last) and last < first - 2.0  # nats: far beyond noise between batches


def test_max_steps_and_accumulation_bound_the_run(toy_dataset):
    _, stats = _train(toy_dataset, epochs=3, grad_accumulation=2, max_steps=2)
    assert stats.optimizer_steps == 2
    assert stats.utterances == 16  # 2 steps × 2 batches × 4 utterances


def test_training_is_reproducible_with_a_seed(toy_dataset):
    bundle_a, stats_a = _train(toy_dataset, epochs=1)
    bundle_b, stats_b = _train(toy_dataset, epochs=1)
    assert stats_a.losses == stats_b.losses
    for (name, a), b in zip(bundle_a.model.named_parameters(), bundle_b.model.parameters()):
        assert torch.equal(a, b), name


def test_frozen_positions_do_not_move(toy_dataset):
    bundle = tiny_random_whisper(seed=1)
    before = bundle.model.model.encoder.embed_positions.weight.clone()
    trained, _ = _train(toy_dataset, epochs=1)
    assert torch.equal(trained.model.model.encoder.embed_positions.weight, before)
