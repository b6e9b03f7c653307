"""IHR's task-3 merge (two past tasks) against an explicit Kronecker-sum solve.

With two past tasks, ``past: sum`` must solve with A₁ + A₂, G₁ + G₂ and ``past: exact``
must solve Σ_k (G_k + λ_G,k I) X (A_k + λ_A,k I) = ΔW by CG; both are checked here against
dense ``numpy.linalg.solve`` of the Kronecker-product system in column-stacking vec. Each
task has its own data, so solving with the last task's factors only, or with one task's
factors counted twice, gives a different X.
"""

import numpy as np
import pytest
import scipy.linalg
import torch

from clasr.curvature import solve
from clasr.curvature.damping import kronecker_damping
from clasr.data.batching import SpeechCollator
from clasr.data.manifest import Selection, read_dataset
from clasr.models.whisper import tiny_random_whisper
from clasr.strategies.base import TaskContext
from clasr.strategies.ihr import IHRConfig, InverseHessianRegularization
from conftest import nudge, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

# also solved densely (a 4096 × 4096 Kronecker system); every tracked layer is checked
# against scipy's Sylvester solver
CHECKED = ("model.decoder.layers.0.encoder_attn.k_proj",)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """Three tasks with different audio and transcripts (dataset seeds 11, 12, 13)."""
    bundle = tiny_random_whisper(seed=5)
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    root = tmp_path_factory.mktemp("ihr3")
    out = []
    for index in (1, 2, 3):
        folder = write_dataset(root / f"t{index}", n_train=6, n_test=1, seed=10 + index)
        utterances, _ = read_dataset(folder, Selection(split="train"))
        out.append(TaskContext(index, f"t{index}", utterances, collator, seed=index))
    return out


def _damped(A: torch.Tensor, G: torch.Tensor, damping: float) -> tuple[np.ndarray, np.ndarray]:
    a, g = A.double(), G.double()
    lam_a, lam_g = kronecker_damping(a, g, damping)
    return a.numpy() + lam_a * np.eye(len(a)), g.numpy() + lam_g * np.eye(len(g))


def _kronecker_solve(pairs: list[tuple[np.ndarray, np.ndarray]], dW: np.ndarray) -> np.ndarray:
    """X with Σ_k G_k X A_k = dW, from vec(G X A) = (Aᵀ ⊗ G) vec(X), column-stacking vec."""
    operator = sum(np.kron(A.T, G) for A, G in pairs)
    return np.linalg.solve(operator, dW.T.reshape(-1)).reshape(dW.shape[1], dW.shape[0]).T


def _sylvester_solve(pairs: list[tuple[np.ndarray, np.ndarray]], dW: np.ndarray) -> np.ndarray:
    """The same X by scipy's Bartels–Stewart solver, cheap enough for every layer: one term is
    G X A = dW; two terms G₁ X A₁ + G₂ X A₂ = dW become G₂⁻¹G₁ X + X A₂A₁⁻¹ = G₂⁻¹ dW A₁⁻¹."""
    if len(pairs) == 1:
        (A, G), = pairs
        return np.linalg.solve(A.T, np.linalg.solve(G, dW).T).T
    (A1, G1), (A2, G2) = pairs
    right = np.linalg.solve(A1.T, np.linalg.solve(G2, dW).T).T
    return scipy.linalg.solve_sylvester(np.linalg.solve(G2, G1), np.linalg.solve(A1.T, A2.T).T, right)


def _direction_gap(M: torch.Tensor, N: torch.Tensor) -> float:
    return float((M / M.norm() - N / N.norm()).norm())


def _rescaled(X: np.ndarray, dW: np.ndarray, alpha: float) -> np.ndarray:
    return alpha * X * np.linalg.norm(dW) / np.linalg.norm(X)


@pytest.mark.parametrize("past", ["sum", "exact"])
def test_third_task_merge_equals_the_kronecker_sum_solve(tasks, past, monkeypatch):
    config = IHRConfig(past=past, alpha=1.5, rest_alpha=0.5, curvature_batches=2, curvature_batch_size=3,
                       curvature_bf16=False, cg_tolerance=1e-10, cg_max_iterations=500)
    strategy = InverseHessianRegularization(config)
    collected = []  # each task's own factors, as collected after it
    collect = strategy._collect
    monkeypatch.setattr(strategy, "_collect", lambda *args: collected.append(collect(*args)) or collected[-1])
    cg_calls = []
    cg = solve.conjugate_gradient
    monkeypatch.setattr(solve, "conjugate_gradient", lambda *a, **k: cg_calls.append(1) or cg(*a, **k))
    model = tiny_random_whisper(seed=5).model
    for task in tasks:
        strategy.before_task(model, task)
        before = {n: p.detach().double().clone() for n, p in model.named_parameters()}
        nudge(model, 100 + task.index)  # a different "fine-tuning" step per task
        tuned = {n: p.detach().double().clone() for n, p in model.named_parameters()}
        facts = strategy.after_task(model, task)
    (first, _), (second, _) = collected[0], collected[1]
    for layer in first.A:  # the tasks' data differ: their factors are not proportional
        assert _direction_gap(first.A[layer], second.A[layer]) > 0.05 and _direction_gap(first.G[layer], second.G[layer]) > 0.05
    if past == "exact":
        assert cg_calls and facts["merged_with_past_tasks"] == 2
    params = dict(model.named_parameters())
    for layer in first.A:
        name = f"{layer}.weight"
        dW = (tuned[name] - before[name]).numpy()
        if past == "sum":
            pairs = [_damped(first.A[layer] + second.A[layer], first.G[layer] + second.G[layer], config.damping)]
        else:
            pairs = [_damped(f.A[layer], f.G[layer], config.damping) for f in (first, second)]
        moved = (params[name].detach().double() - before[name]).numpy()
        expected = _rescaled(_sylvester_solve(pairs, dW), dW, config.alpha)
        error = np.linalg.norm(moved - expected) / np.linalg.norm(expected)
        assert error <= 1e-4, (layer, error)
        if layer in CHECKED:  # the Sylvester oracle itself against the dense Kronecker system
            dense = _rescaled(_kronecker_solve(pairs, dW), dW, config.alpha)
            assert np.linalg.norm(dense - expected) <= 1e-8 * np.linalg.norm(dense)
    bias = "model.decoder.layers.1.fc1.bias"
    assert torch.allclose(params[bias].double(), before[bias] + 0.5 * (tuned[bias] - before[bias]), atol=1e-7)
