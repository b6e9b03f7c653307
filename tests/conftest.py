"""Shared fixtures: a tiny random Whisper saved as a local checkpoint, synthetic datasets, real data paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

WORDS = ["yes", "no", "one", "two", "three", "stop", "go", "left", "right"]


def write_dataset(folder: Path, n_train: int = 8, n_test: int = 4, seed: int = 0) -> Path:
    """A small audiofolder set of tones (0.4–1.0 s, 16 kHz) with short word transcripts."""
    rng = np.random.default_rng(seed)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_train + n_test):
        duration = float(rng.uniform(0.4, 1.0))
        t = np.arange(int(16000 * duration)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t) + 0.01 * rng.standard_normal(t.size)
        name = f"audio/u{i:03d}.wav"
        sf.write(folder / name, audio.astype(np.float32), 16000)
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 3))))
        rows.append({"file_name": name, "text": text, "split": "train" if i < n_train else "test", "speaker": "s0"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest and avoids oversubscribing cores shared with other
    jobs (small ops ran 100× slower with two threads next to a benchmark)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_task(folder: Path, seed: int, n_train: int = 8):
    """A tiny random Whisper with a toy training set and its collator: (bundle, utterances, collator)."""
    from clasr.data.batching import SpeechCollator
    from clasr.data.manifest import Selection, read_dataset
    from clasr.models.whisper import tiny_random_whisper

    write_dataset(folder, n_train=n_train, n_test=1)
    bundle = tiny_random_whisper(seed=seed)
    utts, _ = read_dataset(folder, Selection(split="train"))
    return bundle, utts, SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)


def nudge(model, seed: int) -> None:
    """Stands in for fine-tuning: every trainable parameter takes a small seeded random step."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1e-2 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="session")
def tiny_bundle():
    from clasr.models.whisper import tiny_random_whisper

    return tiny_random_whisper(seed=0, window_seconds=2.0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_bundle) -> Path:
    """The tiny random Whisper as a local transformers checkpoint folder (2 s window)."""
    folder = tmp_path_factory.mktemp("tiny_whisper")
    tiny_bundle.model.save_pretrained(folder)
    tiny_bundle.tokenizer.save_pretrained(folder)
    tiny_bundle.feature_extractor.save_pretrained(folder)
    return folder


@pytest.fixture
def toy_dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "toy")


def require_shared_data(name: str) -> Path:
    folder = SHARED_DATA / name
    if not (folder / "metadata.jsonl").exists():
        pytest.skip(f"shared data {folder} not present")
    return folder
