"""Adapters on single Linear layers: identity at init, exact merge/unmerge, the equations, counts."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from clasr.adapters import (
    AdapterConfig,
    BLoRALinear,
    DoRALinear,
    LoRALinear,
    PiSSALinear,
    SSVDLinear,
    split_budget,
)
from clasr.adapters.base import TrainingSet
from clasr.adapters.ssvd import rotation, skew, ssvd_params

IN, OUT = 24, 16
CONFIGS = {
    "lora": {"type": "lora", "r": 4},
    "lora_rs_dropout": {"type": "lora", "r": 4, "rslora": True, "dropout": 0.1, "init": "gaussian"},
    "dora": {"type": "dora", "r": 4},
    "pissa": {"type": "pissa", "r": 4, "alpha": 8.0},
    "pissa_fast": {"type": "pissa", "r": 4, "svd": "randomized", "niter": 2},
    "ssvd": {"type": "ssvd", "k": 6},
    "ssvd_expm": {"type": "ssvd", "budget": 40, "rotation": "expm"},
    "ssvd_o": {"type": "ssvd_o", "k_in": 6, "k_out": 4},
    "ssvd_o_budget": {"type": "ssvd_o", "budget_rank": 1, "ratio": 0.5},
    "blora": {"type": "blora", "r": 4, "prior_std": 0.05},
}

parse = TypeAdapter(AdapterConfig).validate_python


pytestmark = pytest.mark.usefixtures("one_thread")


def make(name: str, seed: int = 0, bias: bool = True):
    torch.manual_seed(seed)
    linear = nn.Linear(IN, OUT, bias=bias)
    reference = nn.Linear(IN, OUT, bias=bias)
    reference.load_state_dict(linear.state_dict())
    adapter = parse(CONFIGS[name]).build(linear)
    return adapter, reference


def train_steps(adapter, steps: int = 5, lr: float = 0.05) -> None:
    """A few Adam steps towards a random target, so every adapter moves away from its init."""
    generator = torch.Generator().manual_seed(1)
    x, target = torch.randn(32, IN, generator=generator), torch.randn(32, OUT, generator=generator)
    optimizer = torch.optim.Adam(adapter.trainable_parameters(), lr=lr)
    adapter.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (adapter(x) - target).square().mean()
        extra = adapter.extra_loss()
        if extra is not None:
            loss = loss + extra
        loss.backward()
        optimizer.step()
    adapter.eval()


def set_blora_n_train(adapter) -> None:
    adapter.prepare(TrainingSet(utterances=10, target_tokens=100))


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("bias", [True, False])
def test_identity_at_init(name, bias):
    adapter, reference = make(name, bias=bias)
    adapter.eval()
    x = torch.randn(8, 5, IN)
    assert (adapter(x) - reference(x)).abs().max().item() <= 1e-6
    assert adapter.delta_weight().abs().max().item() <= 1e-6
    assert torch.equal(adapter.base.weight, reference.weight)


@pytest.mark.parametrize("name", CONFIGS)
def test_merge_unmerge_after_training(name):
    adapter, reference = make(name)
    set_blora_n_train(adapter)
    train_steps(adapter)
    assert adapter.delta_weight().abs().max().item() > 1e-3, "training should move the adapter"
    x = torch.randn(16, IN)
    unmerged = adapter(x)
    with torch.no_grad():
        by_weight = nn.functional.linear(x, adapter.adapted_weight(), adapter.base.bias)
    assert (unmerged - by_weight).abs().max().item() <= 1e-5

    adapter.merge()
    assert adapter.merged
    assert (adapter(x) - unmerged).abs().max().item() <= 1e-5
    assert (adapter.base.weight - reference.weight - adapter.delta_weight()).abs().max().item() <= 1e-5
    with pytest.raises(RuntimeError):
        adapter.merge()

    adapter.unmerge()
    assert (adapter.base.weight - reference.weight).abs().max().item() <= 1e-6
    assert torch.equal(adapter.base.weight, reference.weight)
    assert torch.equal(adapter(x), unmerged)
    with pytest.raises(RuntimeError):
        adapter.unmerge()


@pytest.mark.parametrize("name", CONFIGS)
def test_frozen_weight_never_trained(name):
    adapter, reference = make(name)
    set_blora_n_train(adapter)
    assert not any(p.requires_grad for p in adapter.base.parameters())
    train_steps(adapter)
    for _ in range(3):
        adapter.merge()
        adapter.unmerge()
    assert torch.equal(adapter.base.weight, reference.weight)
    assert torch.equal(adapter.base.bias, reference.bias)


def test_trainable_counts_by_hand():
    r, k_in, k_out = 4, 6, 4
    expected = {
        "lora": r * (IN + OUT),
        "dora": r * (IN + OUT) + OUT,
        "pissa": r * (IN + OUT),
        "ssvd": 6 * 5 // 2 + 6,
        "ssvd_o": k_in * (k_in - 1) // 2 + k_out * (k_out - 1) // 2 + max(k_in, k_out),
        "blora": 2 * r * (IN + OUT),
    }
    for name, count in expected.items():
        adapter, _ = make(name)
        assert adapter.num_trainable() == count == sum(p.numel() for p in adapter.trainable_parameters()), name
        assert adapter.describe()["params"] == count


def test_registry_and_config_union():
    for name in CONFIGS:
        adapter, _ = make(name)
        assert type(adapter) is parse(CONFIGS[name]).module
    assert {c["type"] for c in CONFIGS.values() if parse(c).module.peft_exportable} == {"lora", "dora"}
    config = parse({"type": "lora", "targets": {"preset": "all_linear", "scope": "decoder"}})
    assert config.targets.scope == "decoder"
    with pytest.raises(ValidationError):
        parse({"type": "nope"})
    with pytest.raises(ValidationError):
        parse({"type": "lora", "rank": 4})
    with pytest.raises(ValidationError):
        parse({"type": "ssvd_o", "k_in": 3})


def test_lora_scaling_and_dropout_only_on_adapter_path():
    torch.manual_seed(0)
    assert LoRALinear(nn.Linear(IN, OUT), r=4, alpha=8).scaling == 2.0
    assert LoRALinear(nn.Linear(IN, OUT), r=4, alpha=8, rslora=True).scaling == 4.0
    adapter = LoRALinear(nn.Linear(IN, OUT), r=4, alpha=8, dropout=0.5)
    adapter.train()
    x = torch.randn(4, IN)
    assert torch.equal(adapter(x), adapter.base(x)), "B = 0: dropout must not touch the frozen path"
    with torch.no_grad():
        adapter.lora_B.normal_()
    adapter.eval()
    expected = adapter.base(x) + 2.0 * x @ adapter.lora_A.T @ adapter.lora_B.T
    assert torch.allclose(adapter(x), expected, atol=1e-5)


def test_dora_magnitude_and_direction():
    adapter, reference = make("dora")
    assert torch.equal(adapter.magnitude.detach(), reference.weight.norm(dim=1))
    train_steps(adapter)
    with torch.no_grad():
        direction = reference.weight + adapter.scaling * adapter.lora_B @ adapter.lora_A
        expected = adapter.magnitude[:, None] * direction / direction.norm(dim=1, keepdim=True)
    assert torch.allclose(adapter.adapted_weight(), expected, atol=1e-6)
    # The row norms of W' are the magnitudes: the direction is normalised.
    assert torch.allclose(adapter.adapted_weight().norm(dim=1), adapter.magnitude, atol=1e-5)


def test_dora_norm_is_constant_in_backward():
    adapter, _ = make("dora")
    with torch.no_grad():
        adapter.lora_B.normal_(std=0.1)
    x = torch.randn(6, IN)
    adapter(x).sum().backward()
    got = adapter.lora_B.grad.clone()
    # By hand: y = c ⊙ (x Wᵀ + s x Aᵀ Bᵀ) + b with c = m / ‖W + sBA‖ held constant.
    with torch.no_grad():
        c = adapter.magnitude / (adapter.base.weight + adapter.scaling * adapter.lora_B @ adapter.lora_A).norm(dim=1)
        expected = adapter.scaling * c[:, None] * torch.ones(6, OUT).T @ (x @ adapter.lora_A.T)
    assert torch.allclose(got, expected, atol=1e-5)


def test_pissa_factors_reconstruct_weight():
    adapter, reference = make("pissa")
    s = adapter.scaling
    assert s == 2.0
    u, sv, vh = torch.linalg.svd(reference.weight.detach())
    principal = u[:, :4] @ torch.diag(sv[:4]) @ vh[:4]
    assert torch.allclose(s * adapter.pissa_B0 @ adapter.pissa_A0, principal, atol=1e-5)
    residual = reference.weight - s * adapter.pissa_B0 @ adapter.pissa_A0
    assert torch.allclose(residual + s * adapter.lora_B @ adapter.lora_A, reference.weight, atol=1e-6)
    assert torch.linalg.matrix_rank(residual.detach(), atol=1e-4) == min(IN, OUT) - 4


def test_pissa_randomized_svd_finds_principal_part():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    with torch.no_grad():  # a clear spectral gap after the 4th singular value
        low_rank = torch.randn(48, 4) @ torch.randn(4, 64)
        linear.weight.copy_(low_rank + 1e-3 * torch.randn(48, 64))
    fast = PiSSALinear(linear, r=4, svd="randomized", niter=2)
    exact = PiSSALinear(linear, r=4, svd="exact")
    product = lambda a: a.pissa_B0 @ a.pissa_A0  # noqa: E731
    assert torch.allclose(product(fast), product(exact), atol=1e-3)


def test_ssvd_rotations_orthogonal_after_training():
    for name in ("ssvd", "ssvd_expm", "ssvd_o", "ssvd_o_budget"):
        adapter, _ = make(name)
        train_steps(adapter, steps=10, lr=0.2)
        g_in, g_out = adapter.rotations()
        assert g_in.shape == (adapter.k_in, adapter.k_in) and g_out.shape == (adapter.k_out, adapter.k_out)
        for g in (g_in, g_out):
            eye = torch.eye(g.shape[0])
            assert (g.T @ g - eye).norm().item() <= 1e-5
            if g.shape[0]:
                assert torch.linalg.det(g).item() == pytest.approx(1.0, abs=1e-5)
        if adapter.inner is not None:
            assert (g_in - torch.eye(adapter.k_in)).abs().max().item() > 1e-3, "the rotation should have moved"


def test_cayley_and_expm_are_rotations():
    torch.manual_seed(0)
    upper = torch.randn(10 * 9 // 2, dtype=torch.float64)
    for how in ("cayley", "expm"):
        g = rotation(upper, 10, how)
        assert torch.allclose(g.T @ g, torch.eye(10, dtype=torch.float64), atol=1e-12)
        assert torch.linalg.det(g).item() == pytest.approx(1.0)


def test_ssvd_o_formula_and_spectrum():
    """For k = k' the update is the paper's; for k ≠ k' W' keeps W's lower singular values."""
    torch.manual_seed(0)
    linear = nn.Linear(IN, OUT)
    square = SSVDLinear(linear, k_in=5, k_out=5)
    with torch.no_grad():
        for p in square.trainable_parameters():
            p.normal_(std=0.3)
    u, s, v = square.svd_U, square.svd_S, square.svd_V
    g_in, g_out = square.rotations()
    expected = u @ (g_out @ torch.diag(s + square.shift) @ g_in.T - torch.diag(s)) @ v.T
    assert torch.allclose(square.delta_weight(), expected, atol=1e-6)

    mixed = SSVDLinear(linear, k_in=6, k_out=3)
    with torch.no_grad():
        for p in mixed.trainable_parameters():
            p.normal_(std=0.3)
    full = torch.linalg.svdvals(linear.weight.detach())
    new = torch.linalg.svdvals(mixed.adapted_weight().detach())
    shifted = (mixed.svd_S + mixed.shift).abs().detach()
    expected_spectrum = torch.cat([shifted, full[6:]]).sort(descending=True).values
    assert torch.allclose(new, expected_spectrum, atol=1e-5)
    # G_out only touches the first k' left vectors, G_in the first k right vectors.
    assert mixed.shift.shape == (6,)


def test_budget_split_by_hand():
    # LoRA rank 8 on 384 x 384: 6144 parameters.
    assert split_budget(6144, 1.0, 384) == (110, 0)  # 110·109/2 + 110 = 6105 <= 6144 < 111·110/2 + 111
    k_in, k_out = split_budget(6144, 0.5, 384)
    assert (k_in, k_out) == (77, 78)  # 77·78/2 = 3003 <= 3072; 78·77/2 + 1 = 3004 <= 3072 < 79·78/2 + 2
    assert ssvd_params(77, 78) == 6007 <= 6144
    # the default ratio (0.25, chosen on dev): inner share 1536, 54·53/2 + 54 = 1485 <= 1536 < 55·54/2 + 55;
    # outer share 4608: 96·95/2 + (96 − 54) = 4602 <= 4608 < 97·96/2 + 43
    assert split_budget(6144, parse({"type": "ssvd_o"}).ratio, 384) == (54, 96)
    assert split_budget(6144, 0.0, 384) == (0, 110)
    assert split_budget(10_000, 0.5, 8) == (8, 8)  # capped by the rank
    adapter, _ = make("ssvd_o_budget")  # budget 1·(24 + 16) = 40, half inner
    info = adapter.describe()
    # inner share 20: 5·4/2 + 5 = 15 <= 20 < 21; outer share 20: 6·5/2 + 1 = 16 <= 20 < 7·6/2 + 2
    assert (info["k_in"], info["k_out"], info["budget"]) == (5, 6, 40)
    assert info["params"] == ssvd_params(5, 6) == 10 + 15 + 6


def test_blora_kl_matches_monte_carlo():
    torch.manual_seed(0)
    adapter = BLoRALinear(nn.Linear(6, 5), r=2, prior_std=0.3)
    with torch.no_grad():
        for mean in (adapter.mu_A, adapter.mu_B):
            mean.normal_(std=0.4)
        for log_std in (adapter.log_std_A, adapter.log_std_B):
            log_std.uniform_(math.log(0.05), math.log(0.6))
    closed = adapter.kl().item()
    draws = 20_000
    total = torch.zeros(draws, dtype=torch.float64)
    for mean, log_std in ((adapter.mu_A, adapter.log_std_A), (adapter.mu_B, adapter.log_std_B)):
        q = torch.distributions.Normal(mean.detach().double(), log_std.detach().double().exp())
        p = torch.distributions.Normal(0.0, 0.3)
        sample = q.sample((draws,))
        total += (q.log_prob(sample) - p.log_prob(sample)).flatten(1).sum(1)
    estimate, error = total.mean().item(), total.std().item() / math.sqrt(draws)
    assert abs(closed - estimate) <= 4 * error, (closed, estimate, error)


def test_blora_extra_loss_sampling_and_sparsity():
    torch.manual_seed(0)
    adapter = BLoRALinear(nn.Linear(IN, OUT), r=4, prior_std=1e-3, beta=0.5)
    with pytest.raises(RuntimeError):
        adapter.extra_loss()
    adapter.prepare(TrainingSet(utterances=25, target_tokens=250))
    assert torch.allclose(adapter.extra_loss(), 0.5 * adapter.kl() / 250)
    assert adapter.kl().item() > 0
    x = torch.randn(3, IN)
    adapter.train()
    assert not torch.equal(adapter(x), adapter(x)), "training forward draws samples"
    adapter.eval()
    assert torch.equal(adapter(x), adapter(x)), "eval forward uses the posterior means"
    assert torch.equal(adapter(x), adapter.base(x))
    with torch.no_grad():
        adapter.mu_B[:2] = 0.5
    share = adapter.sparsity(1e-3)
    assert share["delta_w"] == pytest.approx(1 - 2 / OUT)
    assert share["params"] == pytest.approx((OUT - 2) * 4 / (4 * IN + 4 * OUT))


def test_adapters_reject_bad_settings():
    with pytest.raises(TypeError):
        LoRALinear(nn.Conv1d(2, 2, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LoRALinear(nn.Linear(IN, OUT), r=OUT + 1)
    with pytest.raises(ValueError):
        SSVDLinear(nn.Linear(IN, OUT), k_in=0, k_out=0)
    assert isinstance(DoRALinear(nn.Linear(IN, OUT), r=2), LoRALinear)


def test_lora_a_initialisations_have_their_distributions():
    """Kaiming-uniform with a = √5 (nn.Linear's default): U(−b, b) with b = √(6 / ((1 + 5) fan_in))
    = 1/√fan_in, std b/√3; gaussian: N(0, 1/r²). A (r × fan_in) = 64 × 1024, so each std is
    estimated to about 1 %."""
    from clasr.adapters.lora import init_lora_a

    torch.manual_seed(0)
    r, fan_in = 64, 1024
    kaiming, gaussian = torch.empty(r, fan_in), torch.empty(r, fan_in)
    init_lora_a(kaiming, "kaiming")
    init_lora_a(gaussian, "gaussian")
    bound = 1 / math.sqrt(fan_in)
    assert kaiming.abs().max() <= bound and kaiming.abs().max() > 0.99 * bound
    assert kaiming.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    assert gaussian.std().item() == pytest.approx(1 / r, rel=0.03)
    assert gaussian.abs().max() > 3 / r  # unbounded tails, not a uniform


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_lora_config_builds_the_layer_it_describes(kind):
    """Every key of the ``adapter:`` section reaches the layer: rank, α and rsLoRA's scaling
    α/√r, the dropout on the adapter's input, A's initialisation, and describe()'s facts."""
    config = TypeAdapter(AdapterConfig).validate_python(
        {"type": kind, "r": 16, "alpha": 8.0, "dropout": 0.25, "rslora": True, "init": "gaussian"})
    torch.manual_seed(0)
    layer = config.build(nn.Linear(1024, 512))
    assert (layer.r, layer.alpha, layer.scaling) == (16, 8.0, pytest.approx(2.0))
    assert isinstance(layer.dropout, nn.Dropout) and layer.dropout.p == 0.25
    assert layer.lora_A.std().item() == pytest.approx(1 / 16, rel=0.05)  # gaussian, not Kaiming's 1/√(3·1024)
    facts = layer.describe()
    assert (facts["r"], facts["alpha"], facts["scaling"]) == (16, 8.0, pytest.approx(2.0))
    default = TypeAdapter(AdapterConfig).validate_python({"type": kind, "r": 16}).build(nn.Linear(1024, 512))
    assert default.lora_A.abs().max() <= 1 / math.sqrt(1024)  # Kaiming-uniform, A's default


def test_lora_layer_defaults_to_kaiming_and_takes_the_base_dtype():
    """LoRALinear built directly (as PiSSA, DoRA and the tests do): A Kaiming-uniform within
    ±1/√fan_in, B zero, both in the base layer's dtype (a float64 model stays float64)."""
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(1024, 256).double(), r=64)
    assert layer.lora_A.dtype == layer.lora_B.dtype == torch.float64
    assert (LoRALinear(nn.Linear(16, 16)).r, LoRALinear(nn.Linear(16, 16)).alpha) == (8, 16.0)  # peft's r, clasr's α
    bound = 1 / math.sqrt(1024)
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    assert not layer.lora_B.any()


def test_lora_rank_bounds_are_inclusive_of_min_dimension_and_exclusive_of_zero():
    """1 ≤ r ≤ min(in, out): the full rank is allowed, 0 and one past it are refused by name."""
    assert LoRALinear(nn.Linear(8, 4), r=4).lora_A.shape == (4, 8)
    for r in (0, 5):
        with pytest.raises(ValueError, match=rf"rank {r} outside 1\.\.4"):
            LoRALinear(nn.Linear(8, 4), r=r)


@pytest.fixture
def svd_sketches(monkeypatch):
    """The (q, niter) of every ``torch.svd_lowrank`` call, which still runs."""
    calls = []
    original = torch.svd_lowrank

    def spy(matrix, q, niter):
        calls.append((q, niter))
        return original(matrix, q=q, niter=niter)

    monkeypatch.setattr(torch, "svd_lowrank", spy)
    return calls


def test_pissa_config_builds_the_layer_it_describes(svd_sketches):
    """Every key of a PiSSA ``adapter:`` section reaches the layer: rsLoRA's α/√r, the dropout,
    the SVD method with its iterations and oversampling, and describe()'s facts."""
    settings = {"type": "pissa", "r": 4, "alpha": 2.0, "dropout": 0.25, "rslora": True,
                "svd": "randomized", "niter": 1, "oversample": 2}
    layer = parse(settings).build(nn.Linear(64, 48))
    assert svd_sketches == [(4 + 2, 1)]
    assert layer.scaling == pytest.approx(1.0)  # α/√r = 2/2, not α/r = 0.5
    assert isinstance(layer.dropout, nn.Dropout) and layer.dropout.p == 0.25
    facts = layer.describe()
    assert (facts["svd"], facts["scaling"], facts["type"]) == ("randomized", pytest.approx(1.0), "pissa")
    assert parse({"type": "pissa", "r": 4}).build(nn.Linear(64, 48)).describe()["svd"] == "exact"
    assert svd_sketches == [(6, 1)]  # the exact SVD does not sketch


@pytest.mark.parametrize(("shape", "oversample", "sketch"), [((48, 64), 3, 7), ((6, 64), 8, 6)])
def test_pissa_randomized_svd_sketches_r_plus_oversample_columns_capped_by_the_shape(svd_sketches, shape, oversample, sketch):
    """torch.svd_lowrank gets q = min(r + oversample, out, in) and the layer's niter; the
    direct constructor's defaults are r 8, niter 4, oversample 8."""
    PiSSALinear(nn.Linear(shape[1], shape[0]), r=4, svd="randomized", niter=3, oversample=oversample)
    PiSSALinear(nn.Linear(64, 48), svd="randomized")
    assert svd_sketches == [(sketch, 3), (16, 4)]
    assert PiSSALinear(nn.Linear(64, 48)).r == 8


def test_pissa_principal_factors_take_the_base_dtype():
    layer = PiSSALinear(nn.Linear(24, 16).double(), r=4)
    assert layer.pissa_B0.dtype == layer.pissa_A0.dtype == layer.lora_A.dtype == torch.float64
    assert torch.equal(layer.delta_weight(), torch.zeros(16, 24, dtype=torch.float64))


def test_adapters_refuse_a_layer_that_is_not_linear_by_its_type():
    with pytest.raises(TypeError, match=r"^adapters wrap nn\.Linear, got Conv1d$"):
        LoRALinear(nn.Conv1d(4, 4, 1), r=1)


def test_describe_and_repr_name_the_type_shape_and_trainable_count():
    adapter, _ = make("lora")
    expected = {"type": "lora", "in": IN, "out": OUT, "params": 4 * (IN + OUT)}
    assert {key: adapter.describe()[key] for key in expected} == expected
    assert adapter.extra_repr().startswith(f"type=lora, in={IN}, out={OUT}, params={4 * (IN + OUT)}, ")
    assert f"  type=lora, in={IN}" in repr(adapter)


def test_a_merged_adapter_keeps_w_in_a_buffer_that_moves_with_the_module_and_is_not_saved():
    """While merged, W is a non-persistent buffer: ``.to()`` converts it with the module (a
    merged model moved to another device or dtype can still unmerge there), and the state dict
    does not carry it (a merged adapter's checkpoint loads into an unmerged one)."""
    adapter, reference = make("lora")
    train_steps(adapter)
    adapter.merge()
    assert "unmerged_weight" not in adapter.state_dict()
    adapter.to(torch.float64)
    assert adapter.unmerged_weight.dtype == torch.float64
    adapter.unmerge()
    assert torch.equal(adapter.base.weight, reference.weight.double())


def test_blora_training_draws_factors_from_the_posterior_and_eval_uses_the_means():
    """A = μ^A + σ^A ⊙ ε, B likewise: over many draws the standardised factors are N(0, 1)
    (a sign-flipped ε has the same law; anything else, e.g. σ / ε, does not)."""
    torch.manual_seed(0)
    layer = BLoRALinear(nn.Linear(IN, OUT), r=4)
    with torch.no_grad():
        layer.mu_A.fill_(0.3), layer.log_std_A.fill_(math.log(0.5))
        layer.mu_B.fill_(-1.0), layer.log_std_B.fill_(math.log(2.0))
    layer.train()
    draws = [layer.factors() for _ in range(400)]
    for index, (mean, std) in enumerate(((0.3, 0.5), (-1.0, 2.0))):
        z = (torch.stack([draw[index] for draw in draws]) - mean) / std
        assert abs(z.mean().item()) < 0.02 and z.std().item() == pytest.approx(1.0, abs=0.02)
    layer.eval()
    a, b = layer.factors()
    assert a is layer.mu_A and b is layer.mu_B


def test_blora_layer_defaults_and_every_config_key_reach_the_layer():
    """BLoRALinear's defaults (r 8, α 16 with s = α/r, σ_p 1, σ 1e-3, β 1, KL / tokens) are the
    config's; μ^A Kaiming-uniform, μ^B 0, all four tensors in the base layer's dtype; every key
    of an ``adapter:`` section reaches the layer and its facts."""
    torch.manual_seed(0)
    layer = BLoRALinear(nn.Linear(1024, 64).double())
    facts = layer.describe()
    expected = {"type": "blora", "r": 8, "alpha": 16.0, "prior_std": 1.0, "beta": 1.0, "kl_scale": "tokens",
                "kl_divisor": None}
    assert {key: facts[key] for key in expected} == expected
    assert layer.scaling == 2.0  # α/r, not rsLoRA's α/√r
    assert parse({"type": "blora"}).build(nn.Linear(1024, 64)).describe() == facts
    tensors = (layer.mu_A, layer.log_std_A, layer.mu_B, layer.log_std_B)
    assert all(t.dtype == torch.float64 for t in tensors)
    assert torch.all(layer.log_std_A == math.log(1e-3)) and torch.all(layer.log_std_B == math.log(1e-3))
    bound = 1 / math.sqrt(1024)
    assert layer.mu_A.abs().max() <= bound and layer.mu_A.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert not layer.mu_B.any()

    settings = {"type": "blora", "r": 4, "alpha": 2.0, "prior_std": 0.1, "init_std": 0.01, "beta": 3.0,
                "kl_scale": "utterances"}
    built = parse(settings).build(nn.Linear(IN, OUT))
    facts = built.describe()
    assert {key: facts[key] for key in ("r", "alpha", "prior_std", "beta", "kl_scale")} == \
        {key: settings[key] for key in ("r", "alpha", "prior_std", "beta", "kl_scale")}
    assert built.scaling == 0.5 and torch.allclose(built.log_std_A, torch.tensor(math.log(0.01)))


@pytest.mark.parametrize("scale", ["tokens", "utterances"])
def test_blora_kl_divisor_accepts_a_one_item_training_set_and_refuses_an_empty_one(scale):
    layer = BLoRALinear(nn.Linear(IN, OUT), r=2, kl_scale=scale)
    with pytest.raises(RuntimeError, match=r"^call prepare\(\) with the task's training set before using the BLoRA KL term$"):
        layer.extra_loss()
    layer.prepare(TrainingSet(utterances=1, target_tokens=1))
    assert layer.kl_divisor == 1 and torch.equal(layer.extra_loss(), layer.kl())
    empty = TrainingSet(utterances=0, target_tokens=0)
    with pytest.raises(ValueError, match="non-empty training set"):
        layer.prepare(empty)


def test_blora_sparsity_facts_by_hand():
    """task_facts and sparsity() count |entries| below the threshold, by hand on set means."""
    layer = BLoRALinear(nn.Linear(4, 2), r=2)
    with torch.no_grad():
        layer.mu_A.copy_(torch.tensor([[1e-4, 0.2, 0.6, 1.0], [0.0, -0.4, 2e-3, 0.3]]))
        layer.mu_B.copy_(torch.tensor([[0.7, 0.0], [0.0, 0.0]]))
    # ΔW = s·μ^B μ^A with s = 8: row 0 = 5.6 · μ^A[0] (1e-4 → 5.6e-4 is the only one below 1e-3), row 1 = 0
    assert BLoRALinear.task_facts([layer]) == {"update_sparsity_below_1e-3": 5 / 8,
                                              "posterior_mean_sparsity_below_1e-3": 5 / 12}
    assert layer.sparsity(threshold=0.5) == {"delta_w": 5 / 8, "params": 9 / 12}  # 5.6e-4 and row 1; 6 of μ^A, 3 of μ^B


def test_rotation_maps_against_their_closed_forms_in_two_dimensions():
    """K = [[0, θ], [−θ, 0]]: exp(K) = [[cos θ, sin θ], [−sin θ, cos θ]] and the Cayley map
    (I + K)⁻¹(I − K) = [[1 − θ², −2θ], [2θ, 1 − θ²]] / (1 + θ²)."""
    theta = 0.7
    upper = torch.tensor([theta])
    c, s = math.cos(theta), math.sin(theta)
    assert torch.allclose(rotation(upper, 2, "expm"), torch.tensor([[c, s], [-s, c]], dtype=torch.float64))
    cayley = torch.tensor([[1 - theta**2, -2 * theta], [2 * theta, 1 - theta**2]], dtype=torch.float64) / (1 + theta**2)
    assert torch.allclose(rotation(upper, 2, "cayley"), cayley)


@pytest.mark.parametrize("settings", [{"type": "ssvd", "k": 3, "rotation": "expm"},
                                      {"type": "ssvd", "budget": 40, "rotation": "expm"},
                                      {"type": "ssvd_o", "k_in": 3, "k_out": 3, "rotation": "expm"},
                                      {"type": "ssvd_o", "budget_rank": 1, "rotation": "expm"}])
def test_ssvd_rotation_setting_reaches_both_rotations(settings):
    layer = parse(settings).build(nn.Linear(IN, OUT))
    assert layer.describe()["rotation"] == "expm"
    with torch.no_grad():
        for upper in (layer.inner, layer.outer):
            if upper is not None:
                upper.copy_(torch.linspace(0.2, 0.9, upper.numel()))
    for upper, k, g in zip((layer.inner, layer.outer), (layer.k_in, layer.k_out), layer.rotations()):
        expected = torch.eye(k) if upper is None else torch.linalg.matrix_exp(skew(upper.detach().double(), k)).float()
        assert torch.allclose(g, expected, atol=1e-6)
        if upper is not None:
            assert not torch.allclose(g, torch.eye(k), atol=1e-2)


def test_ssvd_layer_facts_defaults_bounds_and_dtype():
    """Type (ssvd without k', ssvd_o with it), the budget recorded only when it chose k, the
    direct constructor's defaults (k' = 0, Cayley), k from 1 to the layer's rank, no
    parameter where nothing rotates, and every tensor in the base layer's dtype."""
    assert parse({"type": "ssvd", "k": 3}).build(nn.Linear(IN, OUT)).describe()["budget"] is None
    budgeted = parse({"type": "ssvd", "budget_rank": 1}).build(nn.Linear(IN, OUT)).describe()
    assert (budgeted["type"], budgeted["budget"]) == ("ssvd", IN + OUT)
    assert parse({"type": "ssvd_o", "k_in": 3, "k_out": 2}).build(nn.Linear(IN, OUT)).describe()["type"] == "ssvd_o"
    direct = SSVDLinear(nn.Linear(8, 4), 3)
    assert (direct.kind, direct.k_out, direct.rotation_map, direct.outer) == ("ssvd", 0, "cayley", None)
    assert {name for name, _ in direct.named_parameters() if not name.startswith("base.")} == {"inner", "shift"}
    assert SSVDLinear(nn.Linear(8, 4), 1).inner is None and SSVDLinear(nn.Linear(8, 4), 4).shift.shape == (4,)
    for k_in, k_out in ((0, 0), (5, 0), (2, 5), (-1, 2)):
        with pytest.raises(ValueError, match=rf"^need 0 <= k_in, k_out and 1 <= max\(k_in, k_out\) <= 4; got {k_in}, {k_out}$"):
            SSVDLinear(nn.Linear(8, 4), k_in, k_out)
    wide = SSVDLinear(nn.Linear(8, 4).double(), 3, 1)
    assert {t.dtype for t in (wide.svd_U, wide.svd_S, wide.svd_V, wide.shift, wide.inner, *wide.rotations())} == {torch.float64}
    half = SSVDLinear(nn.Linear(8, 4).to(torch.bfloat16), 2)
    assert half.delta_weight().dtype == torch.bfloat16


@pytest.mark.parametrize(("budget", "ratio", "expected"), [
    (12, 0.5, (3, 3)),  # inner share 6 = ssvd_params(3, 0) exactly: k = 3 fits
    (9, 0.0, (0, 3)),   # all to the outer: ssvd_params(0, 4) = 10 > 9
    (4, 0.0, (0, 2)),   # k' = 2 is the smallest outer rotation kept
    (2, 0.0, (0, 0)),   # k' = 1 rotates nothing: dropped
])
def test_split_budget_by_hand(budget, ratio, expected):
    assert split_budget(budget, ratio, max_k=10) == expected
