"""The training loop's speed options: a window fitted to each batch, fused AdamW, activation
checkpointing — each checked against an independent oracle on a tiny random Whisper."""

import copy
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import yaml
from accelerate import Accelerator

import test_resume_identity as resume
from clasr.adapters import AdapterConfig
from clasr.adapters.inject import extra_loss as adapter_extra_loss
from clasr.adapters.session import task_adapters, training_set
from clasr.data.batching import SpeechBatch, SpeechCollator
from clasr.data.manifest import Selection, read_dataset
from clasr.models.fitted_window import cut_features, fitted_frames, narrowed_encoder
from clasr.models.teacher_forcing import teacher_forced_logits, token_loss
from clasr.models.whisper import set_encoder_window, tiny_random_whisper
from clasr.train import TrainConfig, _optimizer, activation_checkpointing, train_task
from pydantic import TypeAdapter


def _batch(lengths: list[int], window: int = 3000) -> SpeechBatch:
    n = len(lengths)
    return SpeechBatch(torch.zeros(n, 80, window), torch.tensor(lengths), torch.zeros(n, 3, dtype=torch.long),
                       torch.zeros(n, 3, dtype=torch.long), list(range(n)))


@pytest.mark.parametrize("lengths,window,expected", [
    ([130, 250], 3000, 300),   # longest 2.5 s → 3 s
    ([300], 3000, 300),        # exactly whole seconds: no extra second
    ([301, 12], 3000, 400),
    ([0], 3000, 100),          # at least one second
    ([2999], 3000, 3000),
    ([150], 200, 200),         # never beyond the batch's window (2 s model)
])
def test_fitted_frames_round_the_longest_utterance_up_to_whole_seconds(lengths, window, expected):
    assert fitted_frames(_batch(lengths, window)) == expected


def _toy_batch(folder, bundle, n: int = 4) -> SpeechBatch:
    utterances, _ = read_dataset(folder, Selection(split="train", max_utterances=n))
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    return collator(utterances, range(len(utterances)))


def test_narrowed_encoder_equals_a_model_whose_window_was_set(toy_dataset):
    bundle = tiny_random_whisper(seed=3, window_seconds=2.0)
    batch = _toy_batch(toy_dataset, bundle)
    frames = fitted_frames(batch)
    assert frames == 100  # toy utterances are 0.4–1.0 s long, the window 2 s
    oracle = copy.deepcopy(bundle.model)
    set_encoder_window(oracle, frames / 100)
    expected = teacher_forced_logits(oracle, cut_features(batch, frames))
    positions = bundle.model.model.encoder.embed_positions
    with narrowed_encoder(bundle.model, frames):
        assert bundle.model.config.max_source_positions == 50
        logits = teacher_forced_logits(bundle.model, cut_features(batch, frames))
    assert torch.equal(logits, expected)
    # everything restored: the same position table, the 2 s window, and the full-window forward works
    assert bundle.model.model.encoder.embed_positions is positions and positions.num_embeddings == 100
    assert bundle.model.config.max_source_positions == 100 and bundle.model.model.encoder.max_source_positions == 100
    assert teacher_forced_logits(bundle.model, batch).shape == expected.shape


def test_narrowed_encoder_restores_the_window_after_an_error(tiny_bundle):
    with pytest.raises(RuntimeError, match="inside"):
        with narrowed_encoder(tiny_bundle.model, 100):
            raise RuntimeError("inside")
    assert tiny_bundle.model.config.max_source_positions == 100
    assert tiny_bundle.model.model.encoder.embed_positions.num_embeddings == 100


@pytest.mark.parametrize("frames", [0, 3, 202])
def test_narrowed_encoder_refuses_impossible_windows(tiny_bundle, frames):
    with pytest.raises(ValueError, match=f"to {frames} frames"):
        with narrowed_encoder(tiny_bundle.model, frames):
            pass


def test_cut_features_equal_features_extracted_at_the_shorter_window():
    """Whisper's log-mel normalisation takes the maximum over the padded spectrogram; speech sets
    it, so cutting 30 s features equals extracting them for the fitted window (away from its end,
    where the STFT's reflection padding sees other samples)."""
    bundle = tiny_random_whisper(seed=0, window_seconds=30.0)
    rng = np.random.default_rng(0)
    audio = [0.2 * rng.standard_normal(n).astype(np.float32) for n in (16000, 27000)]  # 1.0 s, 1.7 s
    full, lengths = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, 3000).features(audio)
    short, _ = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, 200).features(audio)
    assert lengths.tolist() == [100, 168]
    cut = full[..., :200]
    torch.testing.assert_close(cut[..., :198], short[..., :198], rtol=0, atol=1e-5)


def test_fitted_window_training_equals_training_a_model_with_that_window(toy_dataset):
    """Every toy batch fits 1 s: training at the fitted window must equal training a copy of the
    model whose window was set to 1 s (its features cut the same way) — same losses, same weights."""
    config = dict(learning_rate=3e-3, epochs=1, batch_size=4, warmup_ratio=0.0)
    utterances, _ = read_dataset(toy_dataset, Selection(split="train"))
    fitted = tiny_random_whisper(seed=1, window_seconds=2.0)
    collator = SpeechCollator(fitted.feature_extractor, fitted.tokenizer, fitted.window_frames)
    stats = train_task(fitted.model, utterances, collator, TrainConfig(**config, encoder_window="fitted"),
                       Accelerator(cpu=True))
    oracle = tiny_random_whisper(seed=1, window_seconds=2.0)
    set_encoder_window(oracle.model, 1.0)

    class CutCollator(SpeechCollator):  # the 2 s features, cut to 1 s
        def __call__(self, *args):
            return cut_features(super().__call__(*args), 100)

    expected = train_task(oracle.model, utterances, CutCollator(fitted.feature_extractor, fitted.tokenizer, 200),
                          TrainConfig(**config), Accelerator(cpu=True))
    assert stats.optimizer_steps == 2 and stats.losses == pytest.approx(expected.losses, rel=1e-5)
    for (name, a), b in zip(fitted.model.named_parameters(), oracle.model.parameters()):
        if name != "model.encoder.embed_positions.weight":  # 100 rows against the oracle's 50
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    assert fitted.model.model.encoder.embed_positions.num_embeddings == 100  # the model keeps its window


def test_adamw_is_fused_and_updates_like_the_for_loop_implementation(tiny_bundle):
    model = copy.deepcopy(tiny_bundle.model)
    optimizer = _optimizer(model, TrainConfig(learning_rate=1e-3, weight_decay=0.01))
    assert optimizer.defaults["fused"] is True
    reference_model = copy.deepcopy(model)
    params = [p for p in reference_model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    reference = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                  lr=1e-3, foreach=False)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        for p, q in zip((p for p in model.parameters() if p.requires_grad), params):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        optimizer.step()
        reference.step()
    for (name, a), b in zip(model.named_parameters(), reference_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    moved = sum(not torch.equal(a, b) for a, b in zip(model.parameters(), tiny_bundle.model.parameters()))
    assert moved > 10


def _loss_and_gradients(model, batch, checkpointing: bool, seed: int = 0):
    """One training forward/backward, and how many times encoder layer 0's fc1 ran forward (twice
    when the layer is recomputed in the backward pass)."""
    calls = []
    hook = model.model.encoder.layers[0].fc1.register_forward_hook(lambda *args: calls.append(1))
    model.zero_grad(set_to_none=True)
    model.train()
    torch.manual_seed(seed)  # BLoRA draws its samples from the global generator
    with activation_checkpointing(model, checkpointing):
        loss = token_loss(teacher_forced_logits(model, batch), batch.labels)
        extra = adapter_extra_loss(model)
        loss = loss + extra if extra is not None else loss
        loss.backward()
    hook.remove()
    model.eval()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, len(calls)


@pytest.mark.parametrize("adapter", [None, "lora", "blora"])
def test_activation_checkpointing_keeps_loss_and_gradients(toy_dataset, adapter):
    bundle = tiny_random_whisper(seed=2, window_seconds=2.0)
    batch = _toy_batch(toy_dataset, bundle)
    settings = TypeAdapter(AdapterConfig).validate_python({"type": adapter, "r": 2}) if adapter else None
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    utterances, _ = read_dataset(toy_dataset, Selection(split="train"))
    with task_adapters(bundle.model, settings, training_set(utterances, collator)) if adapter else nullcontext():
        loss, grads, calls = _loss_and_gradients(bundle.model, batch, checkpointing=False)
        loss_ckpt, grads_ckpt, calls_ckpt = _loss_and_gradients(bundle.model, batch, checkpointing=True)
    assert (calls, calls_ckpt) == (1, 2)  # the layer really was recomputed in the backward pass
    torch.testing.assert_close(loss_ckpt, loss, rtol=0, atol=0)
    assert grads.keys() == grads_ckpt.keys() and len(grads) > 0
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-5, atol=1e-7, msg=name)
    assert not bundle.model.model.encoder.layers[0].gradient_checkpointing  # off again after the block


@pytest.mark.slow
def test_training_with_checkpointing_and_fitted_window_matches_plain_training(toy_dataset):
    utterances, _ = read_dataset(toy_dataset, Selection(split="train"))
    runs = []
    for checkpointing in (False, True):
        bundle = tiny_random_whisper(seed=1, window_seconds=2.0)
        collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
        config = TrainConfig(learning_rate=3e-3, epochs=1, batch_size=4, warmup_ratio=0.0, encoder_window="fitted",
                             gradient_checkpointing=checkpointing)
        runs.append((bundle.model, train_task(bundle.model, utterances, collator, config, Accelerator(cpu=True))))
    (plain, stats), (checkpointed, stats_ckpt) = runs
    assert stats_ckpt.losses == pytest.approx(stats.losses, rel=1e-5)
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in checkpointed.modules())


def test_unknown_encoder_window_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="encoder_window"):
        TrainConfig(encoder_window="short")


def test_resume_is_byte_exact_with_fitted_window_and_checkpointing(tmp_path, tiny_checkpoint, monkeypatch, one_thread):
    """test_resume_identity's check (LoRA adapters, centralization) with both options on."""
    plain_config = resume._config

    def with_options(*args):
        path = plain_config(*args)
        data = yaml.safe_load(path.read_text())
        data["train"].update(encoder_window="fitted", gradient_checkpointing=True)
        path.write_text(yaml.safe_dump(data))
        return path

    monkeypatch.setattr(resume, "_config", with_options)
    resume._check_resume_is_identity(tmp_path, tiny_checkpoint, monkeypatch, "centralize")


def test_lwf_teacher_sees_the_fitted_window_the_student_sees(toy_dataset):
    """At the start of a task the teacher is the model: with a fitted window the distillation term
    must be 0 (the teacher runs at the same narrowed window), not the gap between two windows."""
    from clasr.strategies.base import TaskContext
    from clasr.strategies.lwf import LearningWithoutForgetting, LwFConfig

    bundle = tiny_random_whisper(seed=3, window_seconds=2.0)
    batch = cut_features(_toy_batch(toy_dataset, bundle), 100)
    lwf = LearningWithoutForgetting(LwFConfig())
    lwf.before_task(bundle.model, TaskContext(1, "t", [], None, 0))
    with torch.no_grad(), narrowed_encoder(bundle.model, 100):
        logits = teacher_forced_logits(bundle.model, batch)
    assert lwf.extra_loss(bundle.model, batch, logits).item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        full = teacher_forced_logits(bundle.model, _toy_batch(toy_dataset, bundle))
    assert not torch.allclose(full, logits, atol=1e-4)  # the window does change the logits: the check can fail
