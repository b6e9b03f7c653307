"""BLoRA's ELBO scale (issue 14 item 1): with the per-token mean cross-entropy the training loop
minimises, the KL is divided by the training set's target tokens T (or by its utterances N with
``kl_scale: utterances``, the earlier scale), times β."""

import math

import pytest
import torch
from torch import nn

from clasr.adapters import BLoRAConfig, adapter_modules, extra_loss
from clasr.adapters.base import TrainingSet
from clasr.adapters.blora import BLoRALinear
from clasr.adapters.session import task_adapters, training_set
from clasr.data.batching import IGNORE_INDEX
from conftest import toy_task

# KL of one entry: log(σ_p/σ) + (σ² + μ²)/(2σ_p²) − 1/2, with σ_p = 0.5, σ = 0.1 and means
# A = [0.5, 0], B = [0, 0.2]ᵀ: 4·log 5 + (4·0.01 + 0.25 + 0.04)/0.5 − 4·0.5.
HAND_KL = 4 * math.log(5) + 0.66 - 2  # 5.0977516…


def hand_set_adapter(kl_scale: str) -> BLoRALinear:
    adapter = BLoRALinear(nn.Linear(2, 2), r=1, prior_std=0.5, init_std=0.1, beta=2.0, kl_scale=kl_scale)
    with torch.no_grad():
        adapter.mu_A.copy_(torch.tensor([[0.5, 0.0]]))
        adapter.mu_B.copy_(torch.tensor([[0.0], [0.2]]))
    return adapter


def test_the_kl_matches_the_hand_computed_value():
    assert hand_set_adapter("tokens").kl().item() == pytest.approx(HAND_KL, rel=1e-6)
    assert HAND_KL == pytest.approx(5.0977516497, abs=1e-9)


@pytest.mark.parametrize(("kl_scale", "divisor"), [("tokens", 7), ("utterances", 2)])
def test_the_extra_loss_is_beta_kl_over_the_training_sets_size(kl_scale, divisor):
    adapter = hand_set_adapter(kl_scale)
    adapter.prepare(TrainingSet(utterances=2, target_tokens=7))
    assert adapter.kl_divisor == divisor
    assert adapter.extra_loss().item() == pytest.approx(2.0 * HAND_KL / divisor, rel=1e-6)


def test_an_empty_training_set_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        hand_set_adapter("tokens").prepare(TrainingSet(utterances=0, target_tokens=0))


def test_the_default_is_the_elbo_scale():
    assert BLoRAConfig().kl_scale == "tokens" and BLoRAConfig().beta == 1.0


def test_a_task_counts_the_tokens_its_loss_scores(tmp_path, one_thread):
    bundle, utterances, collator = toy_task(tmp_path / "d", seed=3, n_train=6)
    labels = collator(utterances, list(range(len(utterances)))).labels
    scored = int((labels != IGNORE_INDEX).sum())  # the positions the cross-entropy averages over
    size = training_set(utterances, collator)
    assert size == TrainingSet(utterances=6, target_tokens=scored)
    assert scored > 2 * len(utterances)  # at least one word and the end token each

    config = BLoRAConfig(r=2, beta=0.5, targets={"preset": "attention_qv"})
    with task_adapters(bundle.model, config, size) as facts:
        adapters = list(adapter_modules(bundle.model).values())
        assert adapters and all(a.kl_divisor == scored for a in adapters)
        expected = sum(0.5 * a.kl() / scored for a in adapters)
        assert torch.allclose(extra_loss(bundle.model), expected)
    assert 0.0 <= facts["update_sparsity_below_1e-3"] <= 1.0
    assert facts["settings"][0]["kl_divisor"] == scored
