"""Whisper's sequence kinds, real positions and tracked layers (used by the curvature code)."""

import torch

from clasr.data.batching import IGNORE_INDEX, SpeechBatch
from clasr.models.positions import encoder_positions, whisper_kind, whisper_kinds, whisper_linear_layers, whisper_masks
from clasr.models.whisper import tiny_random_whisper


def test_encoder_positions_follow_the_stride_two_convolution():
    # conv2 (k=3, s=2, p=1): ⌊(n + 2 − 3)/2⌋ + 1 output positions, by brute force on a ones signal
    conv = torch.nn.Conv1d(1, 1, 3, stride=2, padding=1)
    for n in range(1, 12):
        assert encoder_positions(n) == conv(torch.ones(1, 1, n)).shape[-1]
    assert encoder_positions(torch.tensor([13, 40])).tolist() == [7, 20]


def test_whisper_kinds_and_masks():
    assert whisper_kind("model.encoder.layers.3.fc1") == "encoder"
    assert whisper_kind("model.decoder.layers.0.encoder_attn.v_proj") == "encoder"
    assert whisper_kind("model.decoder.layers.0.encoder_attn.q_proj") == "decoder"
    assert whisper_kind("model.decoder.layers.0.self_attn.k_proj") == "decoder"
    labels = torch.full((2, 7), IGNORE_INDEX)
    labels[0, 1:4], labels[1, 1:7] = 5, 6
    batch = SpeechBatch(torch.zeros(2, 80, 40), torch.tensor([13, 40]), torch.zeros(2, 7, dtype=torch.long), labels, [0, 1])
    masks = whisper_masks(batch)
    assert masks["encoder"].shape == (2, 20) and masks["encoder"].sum(1).tolist() == [7, 20]
    assert masks["encoder"][0, :7].all() and not masks["encoder"][0, 7:].any()
    assert masks["decoder"].sum(1).tolist() == [3, 6]


def test_tracked_layers_are_every_linear_but_the_output_projection():
    model = tiny_random_whisper(seed=0).model
    layers = whisper_linear_layers(model)
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert "proj_out" in linears and sorted(layers) == sorted(n for n in linears if n != "proj_out")
    kinds = whisper_kinds(layers)
    assert kinds["model.decoder.layers.0.encoder_attn.k_proj"] == "encoder"
    assert {kinds[n] for n in layers if n.startswith("model.encoder.")} == {"encoder"}
