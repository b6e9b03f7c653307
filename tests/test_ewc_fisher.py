"""EWC's ``fisher: sampled`` against its expectation in closed form, on a tiny random Whisper.

For the bias b of the decoder's final layer norm, the logits are z = E · (… + b) with E the
(tied) token embeddings, so ∂z/∂b = Eᵀ at every position and the gradient of
−log p(y | x, y_<i) is g_i(y) = E_y − Eᵀ p_i. With a label drawn from p_i at each scored
position (teacher forcing: the contexts do not depend on the draws), the cross terms of
(Σ_i g_i)² vanish in expectation, so

    E[F_b] = Σ_n Σ_i ( Σ_y p_iy E_y² − (Eᵀ p_i)² ) / Σ_n M_n,

the mean per-token Fisher. The strategy's sampled Fisher, averaged over many seeds, must
match it; the empirical Fisher (true labels) and a Fisher without the division by the
number of tokens must not.
"""

import numpy as np
import pytest
import torch

from clasr.curvature.kfac import eval_mode
from clasr.data.batching import IGNORE_INDEX
from clasr.models.whisper import tiny_random_whisper
from clasr.strategies.base import TaskContext
from clasr.strategies.ewc import ElasticWeightConsolidation, EWCConfig
from conftest import toy_task

pytestmark = pytest.mark.usefixtures("one_thread")

BIAS = "model.decoder.layer_norm.bias"
DRAWS = 48


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    _, utterances, collator = toy_task(tmp_path_factory.mktemp("ewc_fisher") / "d", seed=2, n_train=3)
    model = tiny_random_whisper(seed=2).model
    for name, p in model.named_parameters():
        p.requires_grad_(name == BIAS)  # the Fisher of the one parameter with a closed form
    return model, utterances, collator


@torch.no_grad()
def expected_sampled_fisher(model, utterances, collator) -> torch.Tensor:
    """Σ_n Σ_i (Σ_y p_iy E_y² − (Eᵀ p_i)²) / Σ_n M_n, in float64."""
    embeddings = model.get_output_embeddings().weight.double()  # (V, d)
    total, tokens = torch.zeros(embeddings.shape[1], dtype=torch.float64), 0
    with eval_mode(model):
        for index, utterance in enumerate(utterances):
            batch = collator([utterance], [index])
            logits = model(input_features=batch.input_features, decoder_input_ids=batch.decoder_input_ids,
                           use_cache=False).logits
            p = logits[batch.labels != IGNORE_INDEX].double().softmax(-1)  # (M_n, V)
            total += (p @ embeddings.square() - (p @ embeddings).square()).sum(0)
            tokens += p.shape[0]
    return total / tokens


def _strategy_fisher(model, utterances, collator, fisher: str, seed: int) -> torch.Tensor:
    strategy = ElasticWeightConsolidation(EWCConfig(fisher=fisher, fisher_utterances=len(utterances)))
    return strategy._fisher_of(model, TaskContext(1, "t", utterances, collator, seed=seed))[BIAS].double()


def test_sampled_fisher_is_the_mean_per_token_fisher_in_expectation(setting):
    model, utterances, collator = setting
    expected = expected_sampled_fisher(model, utterances, collator)
    draws = torch.stack([_strategy_fisher(model, utterances, collator, "sampled", seed) for seed in range(DRAWS)])
    # the trace (the sum over the bias's entries) is tight: its standard error is ~1.5 % here
    traces = draws.sum(1)
    trace_error = float(traces.std()) / np.sqrt(DRAWS)
    assert trace_error <= 0.03 * float(expected.sum()), "too few draws to tell the Fishers apart"
    assert abs(float(traces.mean()) - float(expected.sum())) <= 4 * trace_error
    mean = draws.mean(0)  # entry by entry, within the (looser) noise of the draws
    assert float((mean - expected).norm()) <= 4 * float(draws.var(0).sum().sqrt()) / np.sqrt(DRAWS)
    assert not torch.equal(draws[0], draws[1]), "each seed draws its own labels"

    empirical = _strategy_fisher(model, utterances, collator, "empirical", 0)
    assert abs(float(empirical.sum()) - float(expected.sum())) > 10 * trace_error, "true labels give another Fisher"
    tokens = sum(int((collator([u], [i]).labels != IGNORE_INDEX).sum()) for i, u in enumerate(utterances))
    assert tokens > 3  # so that a Fisher not divided by the number of tokens is far off
