"""Task arithmetic, TIES-merging and DARE (clasr.strategies.merging and its three strategies):
hand-computed small cases, the papers' equations computed directly (stacked task vectors, no
running form) as the oracle, DARE's rescaling in expectation, and resume from the saved state."""

import math

import pytest
import torch
from pydantic import ValidationError

from clasr.strategies.base import TaskContext
from clasr.strategies.dare import Dare, DareConfig
from clasr.strategies.merging import TiesMerge, drop_and_rescale, trim_to_top_k
from clasr.strategies.task_arithmetic import TaskArithmetic, TaskArithmeticConfig
from clasr.strategies.ties import Ties, TiesConfig


def _task(index, seed=None):
    return TaskContext(index, f"t{index}", [], None, index if seed is None else seed)


def test_trim_keeps_the_top_k_share_of_the_whole_task_vector():
    vector = {"a": torch.tensor([0.5, -3.0, 1.0]), "b": torch.tensor([[2.0, -0.1], [0.2, 4.0]])}
    trimmed = trim_to_top_k(vector, 3 / 7)  # 7 entries, 3 kept: 4, −3, 2 (across both tensors)
    assert torch.equal(trimmed["a"], torch.tensor([0.0, -3.0, 0.0]))
    assert torch.equal(trimmed["b"], torch.tensor([[2.0, 0.0], [0.0, 4.0]]))
    assert torch.equal(trim_to_top_k(vector, 1 / 7)["b"], torch.tensor([[0.0, 0.0], [0.0, 4.0]]))
    assert trim_to_top_k(vector, 1.0) is vector


def test_trim_keeps_at_least_the_largest_entry_when_top_k_rounds_to_none():
    vector = {"a": torch.tensor([0.5, -3.0, 1.0])}
    assert torch.equal(trim_to_top_k(vector, 0.1)["a"], torch.tensor([0.0, -3.0, 0.0]))  # round(0.3) = 0 → 1 kept


def test_dare_refuses_a_trim_share_without_ties():
    with pytest.raises(ValidationError, match="top_k 0.3 trims only with merge: ties"):
        DareConfig(merge="task_arithmetic", top_k=0.3)
    assert DareConfig(merge="ties", top_k=0.3).top_k == 0.3


def test_trim_keeps_entries_tied_with_the_threshold():
    trimmed = trim_to_top_k({"a": torch.tensor([1.0, -1.0, 1.0, 0.5])}, 0.5)  # 2 asked, 3 tie at |1|
    assert torch.equal(trimmed["a"], torch.tensor([1.0, -1.0, 1.0, 0.0]))


def test_ties_elects_the_sign_of_the_summed_mass_and_averages_only_the_agreeing_entries():
    merge = TiesMerge()
    for row in ([1.0, -2.0, 3.0, 0.0, 1.0], [3.0, 1.0, -1.0, 0.0, -1.0], [0.0, 4.0, -4.0, 0.0, 0.0]):
        merge.add({"w": torch.tensor(row)})
    # sums 4, 3, −2, 0, 0 → signs +, +, −, 0, 0; agreeing entries {1, 3}, {1, 4}, {−1, −4}, none, tie
    assert torch.equal(merge.merged()["w"], torch.tensor([2.0, 2.5, -2.5, 0.0, 0.0]))


def _ties_oracle(vectors, top_k):
    """The paper's three steps on stacked task vectors (one tensor "w" per task)."""
    stacked = torch.stack([v["w"] for v in vectors])
    kept = max(1, round(top_k * stacked.shape[1]))
    trimmed = torch.zeros_like(stacked)
    for t, row in enumerate(stacked):
        order = row.abs().argsort(descending=True)[:kept]
        trimmed[t, order] = row[order]
    elected = torch.sign(trimmed.sum(0))
    agree = (torch.sign(trimmed) == elected) & (trimmed != 0)
    return (trimmed * agree).sum(0) / agree.sum(0).clamp(min=1)


def test_ties_running_form_equals_the_papers_equations_on_random_vectors():
    g = torch.Generator().manual_seed(0)
    vectors = [{"w": torch.randn(500, generator=g)} for _ in range(4)]
    merge = TiesMerge()
    for k, vector in enumerate(vectors):
        merge.add(trim_to_top_k(vector, 0.3))
        torch.testing.assert_close(merge.merged()["w"], _ties_oracle(vectors[: k + 1], 0.3), rtol=1e-6, atol=1e-7)


def _toy_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))


def _train(model, strategy, index, vector):
    """before_task, then 'fine-tuning' that adds ``vector`` (a dict of tensors) to the parameters, then after_task."""
    strategy.before_task(model, _task(index))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, delta in vector.items():
            params[name].add_(delta)
    return strategy.after_task(model, _task(index))


def _random_vector(model, seed):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}


def _weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_task_arithmetic_trains_each_task_from_the_foundation_and_deploys_the_scaled_sum():
    model = _toy_model()
    theta0 = _weights(model)
    strategy = TaskArithmetic(TaskArithmeticConfig(scale=0.3))
    tau1, tau2 = _random_vector(model, 1), _random_vector(model, 2)
    _train(model, strategy, 1, tau1)
    for name, value in _weights(model).items():
        torch.testing.assert_close(value, theta0[name] + 0.3 * tau1[name])
    strategy.before_task(model, _task(2))
    assert all(torch.equal(v, theta0[n]) for n, v in _weights(model).items())  # task 2 starts from θ_0
    _train(model, strategy, 2, {})  # before_task again is harmless: the model already is θ_0
    strategy.before_task(model, _task(2))
    facts = _train(model, strategy, 2, tau2)
    for name, value in _weights(model).items():
        torch.testing.assert_close(value, theta0[name] + 0.3 * (tau1[name] + tau2[name]))
    assert facts["task_vector_nonzero_share"] == 1.0


def test_ties_strategy_deploys_foundation_plus_scale_times_the_ties_merge():
    model = _toy_model()
    theta0 = _weights(model)
    strategy = Ties(TiesConfig(top_k=0.4, scale=1.3))
    vectors = [_random_vector(model, s) for s in (5, 6, 7)]
    for index, vector in enumerate(vectors, start=1):
        facts = _train(model, strategy, index, vector)
    flat = [{"w": torch.cat([v[n].flatten() for n in theta0])} for v in vectors]
    expected = 1.3 * _ties_oracle(flat, 0.4)
    deployed = torch.cat([(_weights(model)[n] - theta0[n]).flatten() for n in theta0])
    torch.testing.assert_close(deployed, expected, rtol=1e-5, atol=1e-6)
    n = sum(v.numel() for v in theta0.values())  # 14
    assert facts["task_vector_nonzero_share"] == pytest.approx(round(0.4 * n) / n)


def test_dare_keeps_or_zeroes_each_entry_and_rescales_the_kept_ones_by_one_over_one_minus_p():
    vector = {"w": torch.randn(1000, generator=torch.Generator().manual_seed(1))}
    dropped = drop_and_rescale(vector, 0.75, seed=3)["w"]
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], vector["w"][kept] / 0.25)
    assert torch.equal(drop_and_rescale(vector, 0.75, seed=3)["w"], dropped)  # the seed repeats the draw
    assert not torch.equal(drop_and_rescale(vector, 0.75, seed=4)["w"], dropped)
    assert drop_and_rescale(vector, 0.0, seed=3) is vector


@pytest.mark.parametrize("p", [0.5, 0.9])
def test_dare_is_unbiased_within_its_variance(p):
    """Each entry of τ̃ is τ/(1−p) with probability 1−p, else 0: mean τ, variance τ² p/(1−p).
    Over n entries of a constant τ = c the sample mean has standard deviation c·√(p/((1−p) n));
    it must lie within 4 of them (fixed seed), and the kept share within 4 binomial deviations."""
    n, c = 200_000, 0.7
    dropped = drop_and_rescale({"w": torch.full((n,), c)}, p, seed=11)["w"]
    sd_mean = c * math.sqrt(p / ((1 - p) * n))
    assert abs(dropped.mean().item() - c) < 4 * sd_mean
    kept_share = (dropped != 0).double().mean().item()
    assert abs(kept_share - (1 - p)) < 4 * math.sqrt(p * (1 - p) / n)


def test_dare_is_unbiased_entry_by_entry_over_seeds():
    tau = torch.tensor([1.0, -2.0, 0.5, 3.0])
    draws = torch.stack([drop_and_rescale({"w": tau}, 0.8, seed=s)["w"] for s in range(4000)])
    sd_mean = tau.abs() * math.sqrt(0.8 / (0.2 * 4000))
    assert bool(((draws.mean(0) - tau).abs() < 4 * sd_mean).all())


def test_dare_with_task_arithmetic_merges_the_rescaled_vectors_of_each_tasks_seed():
    model = _toy_model()
    theta0 = _weights(model)
    strategy = Dare(DareConfig(drop_rate=0.5, merge="task_arithmetic", scale=0.4))
    tau1, tau2 = _random_vector(model, 1), _random_vector(model, 2)
    _train(model, strategy, 1, tau1)
    _train(model, strategy, 2, tau2)
    d1, d2 = drop_and_rescale(tau1, 0.5, seed=1), drop_and_rescale(tau2, 0.5, seed=2)
    for name, value in _weights(model).items():
        torch.testing.assert_close(value, theta0[name] + 0.4 * (d1[name] + d2[name]))


def test_dare_with_ties_drops_then_trims_then_elects():
    model = _toy_model()
    theta0 = _weights(model)
    strategy = Dare(DareConfig(drop_rate=0.3, merge="ties", top_k=0.5, scale=1.0))
    vectors = [_random_vector(model, s) for s in (3, 4)]
    for index, vector in enumerate(vectors, start=1):
        _train(model, strategy, index, vector)
    names = list(theta0)
    flat = [{"w": torch.cat([drop_and_rescale(v, 0.3, seed=i)[n].flatten() for n in names])}
            for i, v in enumerate(vectors, start=1)]
    deployed = torch.cat([(_weights(model)[n] - theta0[n]).flatten() for n in names])
    # the oracle trims to the top half of the nonzero-or-not entries as the strategy does
    torch.testing.assert_close(deployed, _ties_oracle(flat, 0.5), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: TaskArithmetic(TaskArithmeticConfig(scale=0.7)),
    lambda: Ties(TiesConfig(top_k=0.3)),
    lambda: Dare(DareConfig(drop_rate=0.6, merge="ties", top_k=0.8)),
])
def test_a_restored_state_continues_exactly_like_the_original(make):
    model_a, model_b = _toy_model(), _toy_model()
    original = make()
    _train(model_a, original, 1, _random_vector(model_a, 1))
    _train(model_a, original, 2, _random_vector(model_a, 2))
    restored = make()
    restored.load_state_dict({k: v.clone() for k, v in original.state_dict().items()})
    model_b.load_state_dict(model_a.state_dict())  # a resumed run loads the deployed θ_0 + λ·merge, not θ_0
    _train(model_a, original, 3, _random_vector(model_a, 3))
    _train(model_b, restored, 3, _random_vector(model_b, 3))
    assert all(torch.equal(a, b) for a, b in zip(_weights(model_a).values(), _weights(model_b).values()))
    assert original.state_dict().keys() == restored.state_dict().keys()


def test_ties_state_is_four_tensors_per_parameter_whatever_the_number_of_tasks():
    model = _toy_model()
    strategy = Ties(TiesConfig())
    sizes = []
    for index in (1, 2, 3):
        facts = _train(model, strategy, index, _random_vector(model, index))
        sizes.append(facts["stored_values"])
    n = sum(p.numel() for p in model.parameters())
    assert sizes == [n * 5] * 3  # θ_0 plus positive, negative and their two counts
    assert strategy.state_dict()["merge.n_positive.0.weight"].dtype == torch.int16


def _run_config(tmp_path, checkpoint, strategy, adapter=None):
    import yaml

    from conftest import write_dataset

    a, b = write_dataset(tmp_path / "a", seed=1), write_dataset(tmp_path / "b", seed=2)
    config = {
        "output_dir": str(tmp_path / "out"),
        "model": {"name": str(checkpoint), "window_seconds": 2.0},
        "strategy": strategy,
        "train": {"learning_rate": 3e-3, "max_steps": 2, "batch_size": 4, "warmup_ratio": 0.0},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 4}},
        "tasks": [{"name": "a", "data": str(a), "train": {"split": "train"}, "test": {"split": "test"}},
                  {"name": "b", "data": str(b), "train": {"split": "train"}, "test": {"split": "test"}}],
    } | ({"adapter": adapter} if adapter else {})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _clasr_run(path):
    from typer.testing import CliRunner

    from clasr.cli import app

    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output


def test_clasr_run_task_arithmetic_with_lora_deploys_the_foundation_plus_the_scaled_adapter_products(
    tmp_path, tiny_checkpoint, one_thread
):
    """Independent of the strategy's bookkeeping: the exported q/v weights are θ_0 + λ Σ_t s·B_t A_t
    from the two saved adapters, every other weight is θ_0's."""
    import json

    from safetensors.torch import load_file

    _clasr_run(_run_config(tmp_path, tiny_checkpoint, {"name": "task_arithmetic", "scale": 0.6}, {"type": "lora", "r": 2, "alpha": 4}))
    out = tmp_path / "out"
    foundation = load_file(str(tiny_checkpoint / "model.safetensors"))
    exported = load_file(str(out / "model" / "model.safetensors"))
    adapters = [load_file(str(out / "adapters" / task / "adapters.safetensors")) for task in ("task1_a", "task2_b")]
    layers = sorted(k.removesuffix(".lora_A") for k in adapters[0] if k.endswith(".lora_A"))
    assert layers and all(k.endswith(("q_proj", "v_proj")) for k in layers)
    for layer in layers:
        update = sum((4 / 2) * a[f"{layer}.lora_B"] @ a[f"{layer}.lora_A"] for a in adapters)
        torch.testing.assert_close(exported[f"{layer}.weight"], foundation[f"{layer}.weight"] + 0.6 * update, rtol=1e-5, atol=1e-6)
    untouched = [k for k in foundation if k in exported and k.removesuffix(".weight") not in layers]
    assert untouched and all(torch.equal(exported[k], foundation[k]) for k in untouched)
    rows = json.loads((out / "progress" / "state.json").read_text())["rows"]
    assert rows[2]["strategy"]["deployed"].startswith("foundation + scale")


@pytest.mark.parametrize("strategy", [
    {"name": "ties", "top_k": 0.2, "scale": 1.0},
    pytest.param({"name": "dare", "drop_rate": 0.9, "merge": "ties", "top_k": 1.0, "scale": 0.8}, marks=pytest.mark.slow),
])
def test_clasr_run_ties_and_dare_with_full_fine_tuning(tmp_path, tiny_checkpoint, one_thread, strategy):
    """Full fine-tuning: each task's vector keeps its top 20 % (TIES) or about 10 % (DARE, p = 0.9)
    of its entries, and the exported model is the saved θ_0 plus λ times the saved running merge."""
    import json

    from safetensors.torch import load_file

    from clasr.strategies.merging import TiesMerge

    _clasr_run(_run_config(tmp_path, tiny_checkpoint, strategy))
    out = tmp_path / "out"
    rows = json.loads((out / "progress" / "state.json").read_text())["rows"]
    shares = [row["strategy"]["task_vector_nonzero_share"] for row in rows[1:]]
    assert all(abs(share - 0.1 if strategy["name"] == "dare" else share - 0.2) < 0.01 for share in shares), shares
    state = load_file(str(out / "progress" / "strategy.safetensors"))
    merge = TiesMerge()
    merge.load_state_dict({k.removeprefix("merge."): v for k, v in state.items() if k.startswith("merge.")})
    exported = load_file(str(out / "model" / "model.safetensors"))
    merged = merge.merged()
    assert len(merged) > 50  # every trained tensor of the tiny model moved
    for name, value in merged.items():
        torch.testing.assert_close(exported[name], state[f"base.{name}"] + strategy["scale"] * value, rtol=1e-5, atol=1e-6)
