import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from accelerate import Accelerator

from clasr import train
from clasr.data.batching import IGNORE_INDEX, SpeechCollator
from clasr.data.manifest import Selection, read_dataset
from clasr.models.teacher_forcing import teacher_forced_logits, token_loss
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


def _two_utterance_set(folder):
    """Two tones with transcripts of 1 and 7 words: batches of one hold very different token counts."""
    (folder / "audio").mkdir(parents=True)
    rows = []
    for i, (seconds, text) in enumerate([(0.5, "yes"), (0.9, "one two three stop go left right")]):
        t = np.arange(int(16000 * seconds)) / 16000
        sf.write(folder / f"audio/u{i}.wav", (0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t)).astype(np.float32), 16000)
        rows.append({"file_name": f"audio/u{i}.wav", "text": text, "split": "train"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_accumulation_weights_tokens_not_batches(tmp_path, monkeypatch):
    """Two micro-batches of different lengths accumulate to the gradient of one batch holding
    both (the mean over all their tokens), not to the mean of the two batches' mean losses."""
    bundle = tiny_random_whisper(seed=1)
    utterances, _ = read_dataset(_two_utterance_set(tmp_path / "d"), Selection(split="train"))
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    names = {p: n for n, p in bundle.model.named_parameters()}
    recorded = {}

    class RecordingSGD(torch.optim.SGD):  # lr 0: records the step's gradients, moves nothing
        def step(self, closure=None):
            recorded.update({names[p]: p.grad.clone() for g in self.param_groups for p in g["params"] if p.grad is not None})

    monkeypatch.setattr(train, "_optimizer", lambda model, config: RecordingSGD(model.parameters(), lr=0.0))
    config = TrainConfig(batch_size=1, grad_accumulation=2, max_grad_norm=None, warmup_ratio=0.0)
    stats = train.train_task(bundle.model, utterances, collator, config, Accelerator(cpu=True), seed=0)
    assert stats.optimizer_steps == 1 and recorded

    def gradient(batches, weights):
        bundle.model.zero_grad(set_to_none=True)
        bundle.model.train()
        for batch, weight in zip(batches, weights):
            (weight * token_loss(teacher_forced_logits(bundle.model, batch), batch.labels)).backward()
        return {n: p.grad.clone() for n, p in bundle.model.named_parameters() if p.grad is not None}

    both = gradient([collator(utterances, [0, 1])], [1.0])
    singles = [collator([u], [i]) for i, u in enumerate(utterances)]
    tokens = [int((b.labels != IGNORE_INDEX).sum()) for b in singles]
    assert tokens[1] >= 3 * tokens[0]
    batch_mean = gradient(singles, [0.5, 0.5])  # the old rule: each batch's mean loss / group size

    def gap(grads):
        return max(float((grads[n] - both[n]).norm() / both[n].norm()) for n in both if both[n].norm() > 0)

    assert gap(recorded) < 1e-4
    assert gap(batch_mean) > 1e-2  # the test tells the two rules apart
    with torch.no_grad():  # the logged loss of the step is the mean over its tokens too
        batch = collator(utterances, [0, 1])
        assert stats.losses[0] == pytest.approx(float(token_loss(teacher_forced_logits(bundle.model, batch), batch.labels)), rel=1e-5)
