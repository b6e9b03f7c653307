"""The one teacher-forced forward and token loss: reductions against per-position sums by hand,
the forward against the model's own call, the Fisher loss's labels (true or sampled, seeded)."""

from __future__ import annotations

import pytest
import torch

from clasr.data.batching import IGNORE_INDEX
from clasr.models.teacher_forcing import (
    fisher_loss,
    sample_labels,
    scored_tokens,
    teacher_forced_logits,
    token_loss,
)
from conftest import toy_task

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = torch.tensor([[1, IGNORE_INDEX, 4], [IGNORE_INDEX, 0, IGNORE_INDEX]])
PICKED = [(0, 0, 1), (0, 2, 4), (1, 1, 0)]  # (row, position, label) of the scored positions


def _nll(logits: torch.Tensor, row: int, position: int, label: int) -> torch.Tensor:
    return -torch.log_softmax(logits[row, position].double(), -1)[label]


def test_reductions_equal_the_per_position_sums():
    logits = torch.randn(2, 3, 5)
    terms = [_nll(logits, *p) for p in PICKED]
    assert scored_tokens(LABELS) == 3
    torch.testing.assert_close(token_loss(logits, LABELS).double(), sum(terms) / 3)
    torch.testing.assert_close(token_loss(logits, LABELS, "sum").double(), sum(terms))
    per_utterance = token_loss(logits, LABELS, "utterance")
    assert per_utterance.shape == (2,)
    torch.testing.assert_close(per_utterance.double(), torch.stack([terms[0] + terms[1], terms[2]]))
    with pytest.raises(ValueError, match="reduction"):
        token_loss(logits, LABELS, "token")


def test_bf16_logits_give_a_float32_loss():
    logits = torch.randn(2, 3, 5).bfloat16()
    for reduction in ("mean", "sum", "utterance"):
        assert token_loss(logits, LABELS, reduction).dtype == torch.float32


def test_sampled_labels_keep_ignored_positions():
    drawn = sample_labels(torch.randn(2, 3, 6), LABELS, torch.Generator().manual_seed(0))
    assert torch.equal(drawn == IGNORE_INDEX, LABELS == IGNORE_INDEX)
    assert ((drawn >= 0) & (drawn < 6)).sum() == 3


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    bundle, utterances, collator = toy_task(tmp_path_factory.mktemp("tf") / "d", seed=4, n_train=3)
    return bundle.model.eval(), collator(utterances, list(range(len(utterances))))


def test_teacher_forced_logits_are_the_models_own(whisper):
    model, batch = whisper
    with torch.no_grad():
        expected = model(input_features=batch.input_features, decoder_input_ids=batch.decoder_input_ids).logits
        assert torch.equal(teacher_forced_logits(model, batch), expected)


def test_fisher_loss_uses_true_or_seeded_sampled_labels(whisper):
    model, batch = whisper
    with torch.no_grad():
        logits = teacher_forced_logits(model, batch)
        assert torch.equal(fisher_loss(model, "empirical", 0)(batch), token_loss(logits, batch.labels, "sum"))
        sampled = fisher_loss(model, "sampled", 7)
        first, second = sampled(batch), sampled(batch)  # one generator: the second call draws anew
        again = fisher_loss(model, "sampled", 7)(batch)
        expected = token_loss(logits, sample_labels(logits, batch.labels, torch.Generator().manual_seed(7)), "sum")
    assert torch.equal(first, again) and torch.equal(first, expected)
    assert not torch.equal(first, second)
    with pytest.raises(ValueError, match="fisher"):
        fisher_loss(model, "type-2", 0)
