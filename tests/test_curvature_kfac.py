"""K-FAC engine: masked factors against brute force and curvlinops, padding invariance,
sampled Fisher, π-damped eigen-inverse against numpy's Kronecker product, storage."""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from torch import nn

from clasr.curvature import (
    DAMPING_FLOOR,
    EigenInverse,
    KFACCollector,
    KFACFactors,
    damped_solve,
    kronecker_damping,
    kronecker_solve,
    mean_eigenvalue,
    pi_damping,
)
from clasr.data.batching import IGNORE_INDEX, SpeechBatch
from clasr.models.positions import whisper_linear_layers
from clasr.models.teacher_forcing import token_loss
from clasr.strategies.ihr import whisper_kfac

FRAMES = 40  # 0.4 s window → 20 encoder positions


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    from clasr.models.whisper import tiny_random_whisper

    return tiny_random_whisper(seed=0, window_seconds=FRAMES / 100).model


def utterance(seed: int, frames: int, n_scored: int) -> dict:
    """Random features (real for ``frames``) and a decoder sequence of n_scored + 1 inputs
    whose first position is not scored (like Whisper's prompt)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "features": torch.randn(80, FRAMES, generator=g),
        "frames": frames,
        "inputs": torch.randint(0, 51864, (n_scored + 1,), generator=g),
        "labels": torch.cat([torch.tensor([IGNORE_INDEX]), torch.randint(0, 51864, (n_scored,), generator=g)]),
    }


def speech_batch(utterances: list[dict], width: int | None = None, garbage_seed: int = 99) -> SpeechBatch:
    """Utterances padded to ``width`` decoder positions with garbage input ids (labels ignored)."""
    width = width or max(len(u["inputs"]) for u in utterances)
    g = torch.Generator().manual_seed(garbage_seed)
    inputs = torch.randint(0, 51864, (len(utterances), width), generator=g)
    labels = torch.full((len(utterances), width), IGNORE_INDEX)
    for row, u in enumerate(utterances):
        inputs[row, : len(u["inputs"])] = u["inputs"]
        labels[row, : len(u["labels"])] = u["labels"]
    return SpeechBatch(
        torch.stack([u["features"] for u in utterances]),
        torch.tensor([u["frames"] for u in utterances]),
        inputs,
        labels,
        list(range(len(utterances))),
    )


def relative_error(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x.double() - y.double()).norm() / y.double().norm())


def assert_same_factors(f: KFACFactors, g: KFACFactors, tol: float) -> None:
    assert f.counts == g.counts
    for name in g.A:
        assert relative_error(f.A[name], g.A[name]) <= tol, name
        assert relative_error(f.G[name], g.G[name]) <= tol, name


# ---------------------------------------------------------------- brute force, Whisper


def brute_force(model: nn.Module, batch: SpeechBatch) -> KFACFactors:
    """Per-position outer products from retained output gradients of the *mean* loss × M."""
    outputs = {}

    def keep(name):
        def hook(module, args, out):
            out.retain_grad()
            outputs[name] = (args[0].detach(), out)

        return hook

    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "proj_out"]
    handles = [model.get_submodule(n).register_forward_hook(keep(n)) for n in names]
    features, inputs = batch.input_features, batch.decoder_input_ids
    logits = model(input_features=features, decoder_input_ids=inputs, use_cache=False).logits
    for h in handles:
        h.remove()
    n_scored = int((batch.labels != IGNORE_INDEX).sum())
    token_loss(logits, batch.labels).backward()
    model.zero_grad(set_to_none=True)

    encoder_len = [(n + 2 - 3) // 2 + 1 for n in batch.feature_lengths.tolist()]  # conv2: k=3, s=2, p=1
    real = {
        "encoder": [(b, t) for b, n in enumerate(encoder_len) for t in range(n)],
        "decoder": [tuple(p) for p in (batch.labels != IGNORE_INDEX).nonzero().tolist()],
    }
    A, G, counts = {}, {}, {}
    for name in names:
        on_encoder = name.startswith("model.encoder.") or name.endswith(("encoder_attn.k_proj", "encoder_attn.v_proj"))
        positions = real["encoder" if on_encoder else "decoder"]
        x, out = outputs[name]
        grad = out.grad * n_scored
        A[name] = sum(torch.outer(x[p].double(), x[p].double()) for p in positions) / len(positions)
        G[name] = sum(torch.outer(grad[p].double(), grad[p].double()) for p in positions) / len(positions)
        counts[name] = len(positions)
    return KFACFactors(A, G, counts)


def test_factors_equal_brute_force_with_padding(model):
    """In float64, so that only the stored factors' float32 rounding separates the two routes."""
    model = copy.deepcopy(model).double()
    batch = speech_batch([utterance(1, 13, 3), utterance(2, 40, 6), utterance(3, 7, 1)], width=10)
    batch.input_features = batch.input_features.double()
    expected = brute_force(model, batch)
    factors = whisper_kfac(model, [batch])
    assert set(factors.A) == set(expected.A) and "proj_out" not in factors.A
    assert factors.counts["model.encoder.layers.0.fc1"] == 7 + 20 + 4
    assert factors.counts["model.decoder.layers.1.encoder_attn.k_proj"] == 7 + 20 + 4
    assert factors.counts["model.decoder.layers.1.encoder_attn.q_proj"] == 3 + 6 + 1
    assert_same_factors(factors, expected, 1e-6)


def test_collection_leaves_the_model_untouched(model):
    batch = speech_batch([utterance(1, 13, 3), utterance(2, 21, 2)])
    reference = whisper_kfac(model, [batch])
    frozen = model.get_submodule("model.decoder.layers.0.fc1").weight
    frozen.requires_grad_(False)
    sentinel = model.get_submodule("model.encoder.layers.0.fc2").weight
    sentinel.grad = torch.full_like(sentinel, 7.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    try:
        assert_same_factors(whisper_kfac(model, [batch]), reference, 1e-6)
        assert model.training and not frozen.requires_grad
        assert torch.equal(sentinel.grad, torch.full_like(sentinel, 7.0))
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
        assert not any(m._forward_hooks for m in model.modules())
    finally:
        frozen.requires_grad_(True)
        sentinel.grad = None
        model.eval()


# ---------------------------------------------------------------- padding invariance


def test_whisper_padding_and_batching_do_not_change_factors(model):
    u1, u2 = utterance(1, 13, 3), utterance(2, 33, 6)
    alone = whisper_kfac(model, [speech_batch([u1]), speech_batch([u2])])
    together = whisper_kfac(model, [speech_batch([u2, u1], width=12, garbage_seed=5)])
    assert_same_factors(together, alone, 1e-5)


class SeqMLP(nn.Module):
    """Per-position 2-layer MLP: (B, T, d) → logits (B, T, C)."""

    def __init__(self, d=5, h=7, c=4, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(d, h, dtype=dtype)
        self.fc2 = nn.Linear(h, c, dtype=dtype)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def summed_token_cross_entropy_of(net: SeqMLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(net(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")


def seq_factors(net: SeqMLP, data: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> KFACFactors:
    """Engine on (x, labels, mask) batches, every layer of kind "seq", summed CE."""
    collector = KFACCollector({"fc1": net.fc1, "fc2": net.fc2}, {"fc1": "seq", "fc2": "seq"})
    for x, y, mask in data:
        collector.step({"seq": mask}, partial(summed_token_cross_entropy_of, net, x, y))
    return collector.factors()


def test_garbage_in_padded_rows_does_not_change_factors():
    net = SeqMLP()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, generator=g)
    y = torch.randint(0, 4, (3, 4), generator=g)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    y_masked = y.masked_fill(~mask, IGNORE_INDEX)
    tight = seq_factors(net, [(x, y_masked, mask)])
    padded_x = torch.cat([x, torch.zeros(3, 5, 5)], 1)
    padded_mask = torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], 1)
    padded_x[~padded_mask] = 1e3 * torch.randn(int((~padded_mask).sum()), 5, generator=g)
    padded_y = torch.cat([y_masked, torch.full((3, 5), IGNORE_INDEX)], 1)
    assert_same_factors(seq_factors(net, [(padded_x, padded_y, padded_mask)]), tight, 1e-6)


# ---------------------------------------------------------------- curvlinops


class ChannelsSecond(nn.Module):
    """curvlinops' CrossEntropyLoss wants (B, C, T) outputs."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).transpose(1, 2)


def test_factors_match_curvlinops_kfac_expand_empirical():
    import curvlinops  # test oracle, installed by `make setup` (see Makefile: ORACLES)
    net = SeqMLP(dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    data = [
        (torch.randn(3, 4, 5, generator=g, dtype=torch.float64), torch.randint(0, 4, (3, 4), generator=g))
        for _ in range(2)
    ]
    wrapped = ChannelsSecond(net)
    operator = curvlinops.KFACLinearOperator(
        wrapped, nn.CrossEntropyLoss(), [net.fc1.weight, net.fc2.weight], data,
        fisher_type="empirical", kfac_approx="expand", check_deterministic=False, num_per_example_loss_terms=4,
    )
    operator.compute_kronecker_factors()
    state = operator.state_dict()
    ours = seq_factors(net, [(x, y, torch.ones_like(y, dtype=torch.bool)) for x, y in data])
    for name in ("fc1", "fc2"):
        assert relative_error(ours.A[name], state["input_covariances"][f"net.{name}"]) <= 1e-6
        assert relative_error(ours.G[name], state["gradient_covariances"][f"net.{name}"]) <= 1e-6


# ---------------------------------------------------------------- sampled Fisher


def test_sampled_fisher_is_seeded_and_differs_from_empirical(model):
    batch = speech_batch([utterance(1, 13, 3), utterance(2, 21, 4)])
    layers = {k: v for k, v in whisper_linear_layers(model).items() if k.startswith("model.decoder.layers.1")}
    sampled = whisper_kfac(model, [batch], layers=layers, fisher="sampled", seed=3)
    assert_same_factors(whisper_kfac(model, [batch], layers=layers, fisher="sampled", seed=3), sampled, 0.0)
    other_seed = whisper_kfac(model, [batch], layers=layers, fisher="sampled", seed=4)
    empirical = whisper_kfac(model, [batch], layers=layers)
    name = "model.decoder.layers.1.fc2"
    assert relative_error(other_seed.G[name], sampled.G[name]) > 1e-3
    assert relative_error(empirical.G[name], sampled.G[name]) > 1e-3
    assert torch.equal(empirical.A[name], sampled.A[name])
    with pytest.raises(ValueError):
        whisper_kfac(model, [batch], layers=layers, fisher="type-2")


# ---------------------------------------------------------------- damping and inverse


def psd(rng: np.random.Generator, n: int, rank: int, scale: float = 1.0) -> torch.Tensor:
    b = rng.standard_normal((n, rank))
    return torch.from_numpy(scale * b @ b.T)


@pytest.mark.parametrize("rank_a,rank_g", [(3, 4), (1, 2), (0, 4)])
def test_solve_equals_explicit_kronecker_inverse(rank_a, rank_g):
    rng = np.random.default_rng(rank_a + 10 * rank_g)
    A, G = psd(rng, 3, rank_a), psd(rng, 4, rank_g)
    dW = torch.from_numpy(rng.standard_normal((4, 3)))
    inverse = EigenInverse(A, G)
    lam_a, lam_g = inverse.damping(0.1)
    damped = np.kron(A.numpy() + lam_a * np.eye(3), G.numpy() + lam_g * np.eye(4))
    expected = np.linalg.solve(damped, dW.numpy().flatten(order="F")).reshape((4, 3), order="F")
    np.testing.assert_allclose(inverse.solve(dW, 0.1).numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(damped_solve(A, G, dW, 0.1).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_cholesky_solve_falls_back_when_round_off_makes_a_block_indefinite():
    rng = np.random.default_rng(3)
    A, G = psd(rng, 5, 2), psd(rng, 4, 4)
    A = A - 1e-3 * float(A.trace()) * torch.diag(torch.tensor([0.0, 0, 0, 0, 1], dtype=A.dtype))  # one eigenvalue below zero
    dW = torch.from_numpy(rng.standard_normal((4, 5)))
    expected = EigenInverse(A, G).solve(dW, 1e-8)  # negative eigenvalue clamped, damping far below it
    torch.testing.assert_close(damped_solve(A, G, dW, 1e-8), expected, rtol=1e-10, atol=1e-12)


def test_every_solve_damps_with_the_same_rule():
    """One (λ_A, λ_G) per pair, from the traces of the factors as stored — also for a factor
    whose round-off left a negative eigenvalue (the eigen path once took the clamped mean)."""
    rng = np.random.default_rng(5)
    A, G = psd(rng, 5, 2), psd(rng, 4, 4)
    A = A - 1e-2 * float(A.trace()) * torch.diag(torch.tensor([0.0, 0, 0, 0, 1], dtype=A.dtype))
    assert float(torch.linalg.eigvalsh(A).min()) < 0
    rule = kronecker_damping(A, G, 0.1)
    assert rule == pi_damping(float(A.trace()) / 5, float(G.trace()) / 4, 0.1)
    assert EigenInverse(A, G).damping(0.1) == rule


def test_conjugate_gradient_and_closed_form_agree_on_repeated_pairs():
    """Σ_k over two copies of one pair is twice the pair: CG must give half the closed form."""
    rng = np.random.default_rng(6)
    A, G = psd(rng, 5, 3), psd(rng, 4, 2)
    dW = torch.from_numpy(rng.standard_normal((4, 5)))
    closed, residual = kronecker_solve([(A, G)], dW, 1e-2)
    assert residual == 0.0
    torch.testing.assert_close(closed, EigenInverse(A, G).solve(dW, 1e-2), rtol=1e-9, atol=1e-12)
    X, residual = kronecker_solve([(A, G), (A, G)], dW, 1e-2, tolerance=1e-12, max_iterations=100)
    assert residual <= 1e-10
    torch.testing.assert_close(X, closed / 2, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="no Kronecker pair"):
        kronecker_solve([], dW, 1e-2)


def test_pi_damping_splits_total_damping():
    rng = np.random.default_rng(0)
    A, G, rho = psd(rng, 5, 5, 3.0), psd(rng, 3, 3, 0.01), 0.05
    m_a, m_g = mean_eigenvalue(A), mean_eigenvalue(G)
    lam, pi = rho * m_a * m_g, np.sqrt(m_a / m_g)
    assert pi_damping(m_a, m_g, rho) == pytest.approx((pi * np.sqrt(lam), np.sqrt(lam) / pi))
    assert pi_damping(0.0, m_g, rho) == pytest.approx((DAMPING_FLOOR, np.sqrt(rho) * m_g))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_in=st.integers(1, 6),
    n_out=st.integers(1, 6),
    kind=st.sampled_from(["zero", "rank1", "deficient", "full"]),
    log_scale=st.sampled_from([-30, -8, 0, 8, 30]),
    relative=st.sampled_from([0.0, 1e-8, 1e-3, 1.0]),
)
def test_solve_is_finite_for_degenerate_factors(seed, n_in, n_out, kind, log_scale, relative):
    rng = np.random.default_rng(seed)
    rank = {"zero": 0, "rank1": 1, "deficient": max(n_in // 2, 1), "full": n_in}[kind]
    A = psd(rng, n_in, min(rank, n_in), 10.0**log_scale).float()
    G = psd(rng, n_out, min(rank, n_out), 10.0**-log_scale).float()
    dW = torch.from_numpy(rng.standard_normal((n_out, n_in))).float()
    for X in (EigenInverse(A, G).solve(dW, relative), damped_solve(A, G, dW, relative)):
        assert X.dtype == torch.float32 and X.shape == dW.shape and torch.isfinite(X).all()


def test_non_finite_factor_is_refused():
    with pytest.raises(ValueError):
        EigenInverse(torch.tensor([[float("nan")]]), torch.eye(1))
    with pytest.raises(ValueError, match="non-finite"):
        damped_solve(torch.tensor([[float("nan")]]), torch.eye(1), torch.ones(1, 1), 1e-3)


# ---------------------------------------------------------------- storage and sums


def small_factors(seed: int) -> KFACFactors:
    g = torch.Generator().manual_seed(seed)
    return KFACFactors(
        {"a.fc": torch.rand(3, 3, generator=g), "b": torch.rand(2, 2, generator=g)},
        {"a.fc": torch.rand(4, 4, generator=g), "b": torch.rand(5, 5, generator=g)},
        {"a.fc": 10 + seed, "b": 7},
    )


def test_save_load_round_trip(tmp_path):
    factors = small_factors(0)
    factors.save(tmp_path / "task1.safetensors")
    loaded = KFACFactors.load(tmp_path / "task1.safetensors")
    assert loaded.counts == factors.counts
    for k in factors.A:
        assert torch.equal(loaded.A[k], factors.A[k]) and torch.equal(loaded.G[k], factors.G[k])
    assert [p.name for p in tmp_path.iterdir()] == ["task1.safetensors"]
    save_file({"x": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not a K-FAC factor file"):
        KFACFactors.load(tmp_path / "other.safetensors")


def test_memory_and_sum_over_tasks():
    f1, f2 = small_factors(1), small_factors(2)
    assert f1.memory_bytes() == 4 * (9 + 4 + 16 + 25)
    total = sum([f1, f2])
    assert torch.equal(total.A["a.fc"], f1.A["a.fc"] + f2.A["a.fc"])
    assert torch.equal(total.G["b"], f1.G["b"] + f2.G["b"])
    assert total.counts == {"a.fc": 23, "b": 14}
    with pytest.raises(ValueError):
        f1 + KFACFactors({"b": f1.A["b"]}, {"b": f1.G["b"]}, {"b": 1})


def test_bf16_autocast_factors_stay_close_to_fp32(model):
    batch = speech_batch([utterance(1, 13, 3), utterance(2, 21, 2)])
    exact = whisper_kfac(model, [batch])
    approx = whisper_kfac(model, [batch], bf16=True)
    assert approx.counts == exact.counts
    for name in exact.A:
        assert relative_error(approx.A[name], exact.A[name]) < 0.05
        assert relative_error(approx.G[name], exact.G[name]) < 0.1
        assert approx.A[name].dtype == torch.float32
        for factor in (approx.A[name], approx.G[name]):  # products formed in float32, not bfloat16
            eigenvalues = torch.linalg.eigvalsh(factor.double())
            assert eigenvalues.min() >= -1e-5 * eigenvalues.max()
