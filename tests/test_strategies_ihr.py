import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clasr.curvature.damping import kronecker_damping
from clasr.curvature.solve import EigenInverse, conjugate_gradient, psd_projection
from clasr.models.whisper import tiny_random_whisper
from clasr.strategies.base import TaskContext
from clasr.strategies.ihr import IHRConfig, InverseHessianRegularization, rescale
from conftest import nudge, toy_task


pytestmark = pytest.mark.usefixtures("one_thread")


def _spd(n, rng, rank=None):
    m = rng.standard_normal((n, rank or n))
    return torch.tensor(m @ m.T / n, dtype=torch.float64)


def _vec(M):  # column-stacking vec, as in vec(G X A) = (Aᵀ ⊗ G) vec(X)
    return M.T.reshape(-1)


def _damped(A, G, damping):
    lam_a, lam_g = EigenInverse(A, G).damping(damping)
    return A.numpy() + lam_a * np.eye(A.shape[0]), G.numpy() + lam_g * np.eye(G.shape[0])


def test_rescale_keeps_the_direction_and_sets_the_norm():
    X, dW = torch.randn(4, 3), torch.randn(4, 3)
    out = rescale(X, dW, alpha=0.7)
    assert float(out.norm()) == pytest.approx(0.7 * float(dW.norm()))
    assert torch.allclose(out / out.norm(), X / X.norm())
    assert torch.equal(rescale(torch.zeros(2, 2), dW[:2, :2], 1.0), torch.zeros(2, 2))


def test_exact_mode_solves_the_sum_of_kronecker_products():
    rng = np.random.default_rng(0)
    factors = [(_spd(5, rng), _spd(4, rng)) for _ in range(3)]
    dW = torch.tensor(rng.standard_normal((4, 5)))
    damping = 1e-3
    X, residual = conjugate_gradient(factors, dW, damping, 1e-10, 200)
    assert residual <= 1e-6
    operator = sum(np.kron(A_d, G_d) for A_d, G_d in (_damped(A, G, damping) for A, G in factors))
    expected = np.linalg.solve(operator, _vec(dW).numpy()).reshape(5, 4).T
    assert np.allclose(X.numpy(), expected, rtol=1e-6, atol=1e-9)


def test_exact_mode_converges_when_round_off_makes_a_factor_indefinite():
    """Low-rank factors with negative eigenvalues larger than the damping (as bf16 products
    once produced on real Whisper layers) must not make CG diverge: factors are projected
    onto the PSD cone first (damped by the one rule, from the factors' own traces), so the
    solution is that of the projected factors."""
    rng = np.random.default_rng(3)
    clean = [(_spd(6, rng, 2), _spd(5, rng, 1)) for _ in range(2)]
    noisy = []
    for A, G in clean:
        noise_a, noise_g = (torch.tensor(rng.standard_normal((n, n))) for n in (6, 5))
        noisy.append((A + 0.05 * (noise_a + noise_a.T), G + 0.05 * float(G.diagonal().mean()) * (noise_g + noise_g.T)))
    assert min(float(torch.linalg.eigvalsh(G).min()) for _, G in noisy) < -0.01
    dW = torch.tensor(rng.standard_normal((5, 6)))
    X, residual = conjugate_gradient(noisy, dW, 1e-3, 1e-10, 300)
    assert residual <= 1e-6
    operator = 0
    for A, G in noisy:
        lam_a, lam_g = kronecker_damping(A, G, 1e-3)
        A_d = psd_projection(A).numpy() + lam_a * np.eye(6)
        G_d = psd_projection(G).numpy() + lam_g * np.eye(5)
        operator = operator + np.kron(A_d, G_d)
    expected = np.linalg.solve(operator, _vec(dW).numpy()).reshape(6, 5).T
    assert np.allclose(X.numpy(), expected, rtol=1e-6, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    rank_a=st.sampled_from([0, 1, 3]),
    rank_g=st.sampled_from([0, 1, 4]),
    scale=st.sampled_from([1e-20, 1.0, 1e20]),
    damping=st.sampled_from([0.0, 1e-6, 1e-2]),
)
def test_singular_factors_never_give_non_finite_updates(rank_a, rank_g, scale, damping):
    rng = np.random.default_rng(rank_a * 7 + rank_g)
    make = lambda n, r: scale * (_spd(n, rng, r) if r else torch.zeros(n, n, dtype=torch.float64))  # noqa: E731
    factors = [(make(3, rank_a), make(4, rank_g)), (make(3, rank_a), make(4, rank_g))]
    dW = torch.tensor(rng.standard_normal((4, 3)))
    X, residual = conjugate_gradient(factors, dW, damping, 1e-8, 50)
    assert torch.isfinite(X).all() and np.isfinite(residual)
    assert torch.isfinite(rescale(X, dW, 1.0)).all()


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    return toy_task(tmp_path_factory.mktemp("ihr") / "d", seed=3)


def _run_task(strategy, model, setting, index):
    _, utts, collator = setting
    task = TaskContext(index, f"t{index}", utts, collator, seed=index)
    strategy.before_task(model, task)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    nudge(model, index)
    tuned = {n: p.detach().clone() for n, p in model.named_parameters()}
    facts = strategy.after_task(model, task)
    return before, tuned, facts


def test_first_task_is_plain_fine_tuning_then_factors_are_kept(setting):
    model = tiny_random_whisper(seed=3).model
    strategy = InverseHessianRegularization(IHRConfig(curvature_batches=1))
    _, tuned, facts = _run_task(strategy, model, setting, 1)
    assert all(torch.equal(p, tuned[n]) for n, p in model.named_parameters())
    assert facts["merged_with_past_tasks"] == 0 and facts["factor_memory_bytes"] > 0
    assert len(strategy.past) == 1


def test_second_task_merges_with_the_past_curvature(setting):
    model = tiny_random_whisper(seed=3).model
    config = IHRConfig(curvature_batches=1, alpha=0.8, rest_alpha=0.5)
    strategy = InverseHessianRegularization(config)
    _run_task(strategy, model, setting, 1)
    past = strategy.past[0]
    before, tuned, facts = _run_task(strategy, model, setting, 2)
    assert facts["layers_corrected"] == len(past.A)
    params = dict(model.named_parameters())
    layer = "model.decoder.layers.0.fc1"
    dW = (tuned[f"{layer}.weight"] - before[f"{layer}.weight"]).double()
    X = rescale(EigenInverse(past.A[layer], past.G[layer]).solve(dW, config.damping), dW, config.alpha)
    moved = (params[f"{layer}.weight"].detach() - before[f"{layer}.weight"]).double()
    assert torch.allclose(moved, X, atol=1e-6)
    assert float(moved.norm()) == pytest.approx(0.8 * float(dW.norm()), rel=1e-4)
    for name in (f"{layer}.bias", "model.encoder.layer_norm.weight", "model.encoder.conv1.weight"):
        expected = before[name] + 0.5 * (tuned[name] - before[name])
        assert torch.allclose(params[name], expected, atol=1e-7), name


@pytest.mark.parametrize("past,kept", [("last", 1), ("sum", 1), ("exact", 2)])
def test_past_modes_keep_the_right_factors_and_survive_a_resume(setting, past, kept):
    model = tiny_random_whisper(seed=3).model
    strategy = InverseHessianRegularization(IHRConfig(curvature_batches=1, past=past))
    _run_task(strategy, model, setting, 1)
    first = strategy.past[0]
    _, _, facts = _run_task(strategy, model, setting, 2)
    assert len(strategy.past) == kept
    if past == "sum":
        layer = next(iter(first.A))
        assert strategy.past[0].counts[layer] == 2 * first.counts[layer]
    if past == "exact":
        assert facts["cg_max_relative_residual"] <= 1e-6
    resumed = InverseHessianRegularization(IHRConfig(past=past))
    resumed.load_state_dict(strategy.state_dict())
    for mine, theirs in zip(resumed.past, strategy.past):
        assert mine.counts == theirs.counts
        assert all(torch.equal(mine.A[k], theirs.A[k]) and torch.equal(mine.G[k], theirs.G[k]) for k in mine.A)


def test_with_an_adapter_the_correction_applies_to_the_merged_update(setting):
    from clasr.adapters import LoRAConfig, adapter_modules
    from clasr.adapters.session import task_adapters, training_set
    from clasr.curvature.solve import damped_solve

    model = tiny_random_whisper(seed=4).model
    config = IHRConfig(curvature_batches=1)
    strategy = InverseHessianRegularization(config)
    _run_task(strategy, model, setting, 1)
    past = strategy.past[0]
    _, utts, collator = setting
    task = TaskContext(2, "t2", utts, collator, seed=2)
    strategy.before_task(model, task)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    with task_adapters(model, LoRAConfig(type="lora", r=2), training_set(utts, collator)):
        for adapter in adapter_modules(model).values():  # stand-in for training: B moves off zero
            adapter.lora_B.data.copy_(0.1 * torch.randn(adapter.lora_B.shape, generator=generator))
    merged = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy.after_task(model, task)
    changed = {n for n in before if not torch.equal(merged[n], before[n])}
    assert changed and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed)
    for name, param in model.named_parameters():
        if name not in changed:
            assert torch.equal(param, before[name]), name  # nothing else moves
            continue
        layer = name.removesuffix(".weight")
        dW = (merged[name] - before[name]).double()
        X = rescale(damped_solve(past.A[layer], past.G[layer], dW, config.damping), dW, config.alpha)
        assert torch.allclose((param.detach() - before[name]).double(), X, atol=1e-6), name


def test_a_state_saved_before_any_task_restores_to_no_past_entries():
    """A run interrupted before task 1 ends saves an IHR state with no past factors and no past
    embedding Fisher; restoring it must give empty lists (not entries made up from nothing)."""
    empty = InverseHessianRegularization(IHRConfig())
    restored = InverseHessianRegularization(IHRConfig())
    restored.load_state_dict(empty.state_dict())
    assert restored.past == [] and restored.past_embedding == []
    assert restored.state_dict().keys() == empty.state_dict().keys()
