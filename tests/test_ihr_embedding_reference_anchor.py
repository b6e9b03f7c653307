"""IHR beyond the Linear layers: the tied token embedding (free | frozen | diagonal), the
reference code's settings (absolute damping, every batch) and an anchor set before task 1."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clasr.curvature.damping import Damping, diagonal_damping, kronecker_damping
from clasr.curvature.solve import EigenInverse, damped_solve, diagonal_solve
from clasr.data.batching import batch_stream, duration_batches
from clasr.models.whisper import tiny_random_whisper
from clasr.strategies.base import TaskContext, trainable_snapshot
from clasr.strategies.ihr import (
    REFERENCE_SETTINGS,
    IHRConfig,
    InverseHessianRegularization,
    embedding_name,
    rescale,
    whisper_kfac,
)
from conftest import nudge, toy_task

pytestmark = pytest.mark.usefixtures("one_thread")

EMBEDDING = "model.decoder.embed_tokens.weight"


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    return toy_task(tmp_path_factory.mktemp("ihr_embedding") / "d", seed=3)


def _task(setting, index, anchor=()):
    _, utts, collator = setting
    return TaskContext(index, f"t{index}", utts, collator, seed=index, anchor=anchor,
                       anchor_collator=collator if anchor else None)


def _run_task(strategy, model, task):
    strategy.before_task(model, task)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    nudge(model, task.index)
    tuned = {n: p.detach().clone() for n, p in model.named_parameters()}
    facts = strategy.after_task(model, task)
    return before, tuned, facts


# --- curvature: absolute damping and the diagonal solve, by hand ---------------------------------


def test_absolute_damping_adds_the_value_to_both_factors():
    A, G = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64)), torch.diag(torch.tensor([9.0, 3.0, 0.0], dtype=torch.float64))
    assert kronecker_damping(A, G, Damping(1e-3, "absolute")) == (1e-3, 1e-3)
    assert kronecker_damping(A, G, Damping(0.0, "absolute")) == (1e-8, 1e-8)  # floored
    assert kronecker_damping(A, G, Damping(0.25)) == kronecker_damping(A, G, 0.25) == (0.5 * 2.5, 0.5 * 4.0)
    dW = torch.arange(6, dtype=torch.float64).reshape(3, 2) + 1
    e_g, e_a = torch.tensor([9.0, 3.0, 0.0], dtype=torch.float64), torch.tensor([4.0, 1.0], dtype=torch.float64)
    expected = dW / ((e_g + 0.1)[:, None] * (e_a + 0.1)[None, :])
    for X in (damped_solve(A, G, dW, Damping(0.1, "absolute")), EigenInverse(A, G).solve(dW, Damping(0.1, "absolute"))):
        torch.testing.assert_close(X, expected, rtol=1e-12, atol=0)
    with pytest.raises(ValueError):
        Damping(-1.0)
    with pytest.raises(ValueError):
        Damping(1.0, "fixed")


def test_diagonal_solve_divides_by_the_summed_damped_diagonals():
    F1 = torch.tensor([[1.0, 3.0], [0.0, -1e-9]])  # a round-off negative entry is clamped to 0
    F2 = torch.tensor([[2.0, 2.0], [4.0, 0.0]])
    dW = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    # relative ρ = 0.5: λ_1 = 0.5 · mean(F1) ≈ 0.5, λ_2 = 0.5 · 2 = 1
    lam1, lam2 = 0.5 * float(F1.double().mean()), 1.0
    assert diagonal_damping(F1, 0.5) == pytest.approx(lam1) and diagonal_damping(F2, 0.5) == lam2
    expected = dW / (torch.tensor([[1.0, 3.0], [0.0, 0.0]]).double() + lam1 + F2.double() + lam2)
    torch.testing.assert_close(diagonal_solve([F1, F2], dW, 0.5), expected, rtol=1e-12, atol=0)
    absolute = dW / (torch.tensor([[1.0, 3.0], [0.0, 0.0]]).double() + 0.1)
    torch.testing.assert_close(diagonal_solve([F1], dW, Damping(0.1, "absolute")), absolute, rtol=1e-12, atol=0)
    with pytest.raises(ValueError):
        diagonal_solve([], dW, 0.5)


# --- (a) the token embedding ---------------------------------------------------------------------


def _hand_embedding_fisher(model, utterances, batches, collator):
    """Σ_n (∂ℓ_n/∂E)² / Σ_n M_n, written out: one utterance, its summed token cross-entropy by
    F.cross_entropy, its gradient w.r.t. the embedding weight (tied to the output projection)."""
    weight = model.get_input_embeddings().weight
    total, tokens = torch.zeros_like(weight, dtype=torch.float64), 0
    model.eval()
    for i in [i for indices in batches for i in indices]:
        batch = collator([utterances[i]], [i])
        logits = model(input_features=batch.input_features, decoder_input_ids=batch.decoder_input_ids).logits
        loss = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), ignore_index=-100, reduction="sum")
        (grad,) = torch.autograd.grad(loss, [weight])
        total += grad.double().square()
        tokens += int((batch.labels != -100).sum())
    return total / tokens


def test_diagonal_embedding_correction_equals_the_hand_computed_one_and_moves_only_the_embedding(setting):
    _, utts, collator = setting
    config = IHRConfig(curvature_batches=1, curvature_batch_size=3, curvature_bf16=False, embedding="diagonal",
                       alpha=1.5, rest_alpha=0.5, damping=1e-2)
    models = {mode: tiny_random_whisper(seed=3).model for mode in ("diagonal", "free")}
    strategies = {mode: InverseHessianRegularization(config.model_copy(update={"embedding": mode})) for mode in models}
    for mode, model in models.items():
        _run_task(strategies[mode], model, _task(setting, 1))
    model = models["diagonal"]
    assert embedding_name(model) == EMBEDDING
    first_batches = duration_batches([u.duration for u in utts], 3, shuffle=True, seed=1)[:1]
    # F_E of task 1 at θ_1 (= θ̃_1), against the written-out oracle
    reference = tiny_random_whisper(seed=3).model
    nudge(reference, 1)
    F_hand = _hand_embedding_fisher(reference, utts, first_batches, collator)
    (F_kept,) = strategies["diagonal"].past_embedding
    torch.testing.assert_close(F_kept[EMBEDDING].double(), F_hand, rtol=1e-4, atol=1e-12)
    results = {}
    for mode, model in models.items():
        before, tuned, facts = _run_task(strategies[mode], model, _task(setting, 2))
        results[mode] = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert facts["embedding_corrected"] is False  # the free run
    dE = (tuned[EMBEDDING] - before[EMBEDDING]).double()
    lam = config.damping * float(F_hand.mean())
    expected = rescale(dE / (F_hand + lam), dE, config.alpha)
    moved = (results["diagonal"][EMBEDDING] - before[EMBEDDING]).double()
    assert float((moved - expected).norm() / expected.norm()) < 1e-4
    assert float(moved.norm()) == pytest.approx(1.5 * float(dE.norm()), rel=1e-5)
    assert not torch.allclose(moved, 1.5 * dE, rtol=1e-2)  # the correction is not a plain scaling
    torch.testing.assert_close(results["free"][EMBEDDING], before[EMBEDDING] + 0.5 * (tuned[EMBEDDING] - before[EMBEDDING]))
    changed = [n for n in results["free"] if not torch.equal(results["free"][n], results["diagonal"][n])]
    assert changed == [EMBEDDING]  # proj_out is the same tensor (tied): it moves with it


def test_frozen_embedding_does_not_train_and_stays_after_the_merge(setting):
    model = tiny_random_whisper(seed=3).model
    strategy = InverseHessianRegularization(IHRConfig(curvature_batches=1, embedding="frozen"))
    foundation = model.get_input_embeddings().weight.detach().clone()
    for index in (1, 2):
        task = _task(setting, index)
        strategy.before_task(model, task)
        assert not model.get_input_embeddings().weight.requires_grad and model.proj_out.weight.requires_grad is False
        assert EMBEDDING not in trainable_snapshot(model)
        nudge(model, index)  # moves every trainable parameter: the embedding is not one
        strategy.after_task(model, task)
    assert torch.equal(model.get_input_embeddings().weight, foundation)


def test_diagonal_embedding_state_survives_a_resume(setting):
    model = tiny_random_whisper(seed=3).model
    config = IHRConfig(curvature_batches=1, curvature_batch_size=2, past="exact", embedding="diagonal")
    strategy = InverseHessianRegularization(config)
    for index in (1, 2):
        _run_task(strategy, model, _task(setting, index))
    assert len(strategy.past_embedding) == 2 == len(strategy.past)
    resumed = InverseHessianRegularization(config)
    resumed.load_state_dict(strategy.state_dict())
    assert len(resumed.past) == 2 and len(resumed.past_embedding) == 2
    for mine, theirs in zip(resumed.past_embedding, strategy.past_embedding):
        assert torch.equal(mine[EMBEDDING], theirs[EMBEDDING])
    summed = InverseHessianRegularization(config.model_copy(update={"past": "sum"}))
    fresh = tiny_random_whisper(seed=3).model
    for index in (1, 2):
        _run_task(summed, fresh, _task(setting, index))
    [total] = summed.past_embedding  # Σ_k F_E,k: task 1's and task 2's, as the exact run kept them apart
    torch.testing.assert_close(total[EMBEDDING], sum(F[EMBEDDING] for F in strategy.past_embedding))


# --- (b) the reference code's settings -----------------------------------------------------------


def test_reference_preset_fills_the_authors_settings_and_explicit_keys_win():
    config = IHRConfig.model_validate({"name": "ihr", "preset": "reference"})
    assert (config.alpha, config.rest_alpha, config.damping, config.damping_mode, config.curvature_batches) == (
        1.0, 0.5, 1e-3, "absolute", None)
    assert {k: getattr(config, k) for k in REFERENCE_SETTINGS} == REFERENCE_SETTINGS
    mine = IHRConfig.model_validate({"name": "ihr", "preset": "reference", "alpha": 2.0, "curvature_batches": 3})
    assert (mine.alpha, mine.curvature_batches, mine.damping_mode) == (2.0, 3, "absolute")
    assert IHRConfig.model_validate(config.model_dump()) == config  # a stored config reads back the same
    plain = IHRConfig()
    assert (plain.damping_mode, plain.curvature_batches, plain.preset, plain.embedding, plain.anchor) == (
        "relative", 4, None, "free", None)
    with pytest.raises(ValueError):
        IHRConfig.model_validate({"name": "ihr", "preset": "paper"})


def test_reference_merge_uses_absolute_damping_and_every_batch(setting):
    _, utts, collator = setting
    model = tiny_random_whisper(seed=3).model
    config = IHRConfig(preset="reference", curvature_batch_size=3, curvature_bf16=False)
    strategy = InverseHessianRegularization(config)
    _run_task(strategy, model, _task(setting, 1))
    past = strategy.past[0]
    every = duration_batches([u.duration for u in utts], 3, shuffle=True, seed=1)
    assert len(every) == 3  # 8 utterances in batches of 3: all of them, not 4 … or 1
    tuned_1 = tiny_random_whisper(seed=3).model
    nudge(tuned_1, 1)
    oracle = whisper_kfac(tuned_1, batch_stream(utts, every, collator), "empirical", 1)
    layer = "model.decoder.layers.0.fc1"
    assert past.counts == oracle.counts
    torch.testing.assert_close(past.A[layer], oracle.A[layer])
    before, tuned, _ = _run_task(strategy, model, _task(setting, 2))
    dW = (tuned[f"{layer}.weight"] - before[f"{layer}.weight"]).double()
    A, G = past.A[layer].double(), past.G[layer].double()
    eye = lambda n: torch.eye(n, dtype=torch.float64)  # noqa: E731
    X = torch.linalg.solve(G + 1e-3 * eye(len(G)), dW) @ torch.linalg.inv(A + 1e-3 * eye(len(A)))
    moved = (dict(model.named_parameters())[f"{layer}.weight"].detach() - before[f"{layer}.weight"]).double()
    torch.testing.assert_close(moved, rescale(X, dW, 1.0), rtol=1e-4, atol=1e-6)
    relative = rescale(damped_solve(A, G, dW, 1e-3), dW, 1.0)
    assert float((relative - moved).norm()) > 1e-3 * float(moved.norm())  # not the relative rule's answer
    bias = f"{layer}.bias"
    torch.testing.assert_close(dict(model.named_parameters())[bias].detach(), before[bias] + 0.5 * (tuned[bias] - before[bias]))


# --- (c) an anchor set protects the foundation model ----------------------------------------------


def test_anchor_corrects_task_one_which_is_plain_fine_tuning_without_it(setting):
    _, utts, collator = setting
    anchor = utts[:4]
    config = IHRConfig(curvature_batches=1, curvature_batch_size=4, curvature_bf16=False, alpha=1.0)
    plain = tiny_random_whisper(seed=3).model
    _, tuned, facts = _run_task(InverseHessianRegularization(config), plain, _task(setting, 1))
    assert all(torch.equal(p, tuned[n]) for n, p in plain.named_parameters()) and facts["merged_with_past_tasks"] == 0
    with pytest.raises(ValueError, match="anchor"):
        InverseHessianRegularization(config.model_copy(update={"anchor": "general"})).before_task(plain, _task(setting, 1))

    model = tiny_random_whisper(seed=3).model
    strategy = InverseHessianRegularization(config.model_copy(update={"anchor": "general", "past": "exact"}))
    before, tuned, facts = _run_task(strategy, model, _task(setting, 1, anchor=anchor))
    assert facts["anchor_utterances"] == 4 and facts["merged_with_past_tasks"] == 1
    foundation = tiny_random_whisper(seed=3).model
    batches = duration_batches([u.duration for u in anchor], 4, shuffle=True, seed=1)[:1]
    at_theta0 = whisper_kfac(foundation, batch_stream(anchor, batches, collator), "empirical", 1)
    assert len(strategy.past) == 2  # exact: the anchor's factors stay beside task 1's
    layer = "model.encoder.layers.0.fc2"
    torch.testing.assert_close(strategy.past[0].A[layer], at_theta0.A[layer])
    torch.testing.assert_close(strategy.past[0].G[layer], at_theta0.G[layer])
    dW = (tuned[f"{layer}.weight"] - before[f"{layer}.weight"]).double()
    expected = rescale(damped_solve(at_theta0.A[layer], at_theta0.G[layer], dW, config.damping), dW, 1.0)
    moved = (dict(model.named_parameters())[f"{layer}.weight"].detach() - before[f"{layer}.weight"]).double()
    torch.testing.assert_close(moved, expected, rtol=1e-4, atol=1e-6)
    assert float((moved - dW).norm()) > 1e-2 * float(dW.norm())  # task 1 is no longer plain fine-tuning
    # the anchor is collected once: a resumed strategy with task 1's state does not collect it again
    resumed = InverseHessianRegularization(strategy.config)
    resumed.load_state_dict(strategy.state_dict())
    resumed.before_task(model, _task(setting, 2, anchor=anchor))
    assert len(resumed.past) == 2 and not resumed.anchor_facts


# --- (c) through the runner: the anchor sets of a config ------------------------------------------


def _anchor_config(tmp_path, checkpoint, anchor, general_dev=True):
    import yaml

    from conftest import write_dataset

    a = write_dataset(tmp_path / "a", seed=1)
    general = {"name": "g", "data": "a", "test": {"split": "test"}}
    if general_dev:
        general["dev"] = {"split": "train", "max_utterances": 3}
    data = {
        "output_dir": str(tmp_path / "out"),
        "model": {"name": str(checkpoint), "window_seconds": 2.0},
        "strategy": {"name": "ihr", "curvature_batches": 1, "curvature_batch_size": 4, "anchor": anchor},
        "train": {"learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.0, "max_steps": 1, "bf16": False},
        "evaluation": {"batch_size": 8, "limits": {"max_new_tokens": 2}},
        "tasks": [{"name": "t", "data": str(a), "train": {"split": "train"}, "test": {"split": "test"}}],
        "general": [general],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_anchor_sets_of_a_config(tmp_path, tiny_checkpoint):
    from clasr.experiment.config import ConfigError, load_config

    config = load_config(_anchor_config(tmp_path, tiny_checkpoint, "general"))
    assert [(name, folder, sel.split, sel.max_utterances) for name, folder, sel, _ in config.anchor_sets()] == [
        ("g", (tmp_path / "a").resolve(), "train", 3)]
    named = load_config(_anchor_config(tmp_path, tiny_checkpoint, {"data": "a", "split": "test", "language": "en"}))
    assert named.strategy.anchor.data == (tmp_path / "a").resolve()  # relative to the config file
    assert [(name, sel.split) for name, _, sel, _ in named.anchor_sets()] == [("anchor", "test")]
    with pytest.raises(ConfigError, match="strategy.anchor: general"):
        load_config(_anchor_config(tmp_path, tiny_checkpoint, "general", general_dev=False))
    with pytest.raises(ConfigError, match="anchor"):
        load_config(_anchor_config(tmp_path, tiny_checkpoint, "foundation"))


def test_a_run_with_an_anchor_corrects_task_one(tmp_path, tiny_checkpoint):
    from clasr.experiment.checkpoint import load_state
    from clasr.experiment.config import load_config
    from clasr.experiment.runner import run_experiment

    config = load_config(_anchor_config(tmp_path, tiny_checkpoint, "general"))
    run_experiment(config)
    state = load_state(config.output_dir)
    facts = state.rows[1]["strategy"]
    assert facts["anchor_utterances"] == 3 and facts["merged_with_past_tasks"] == 1
    assert facts["layers_corrected"] > 0
    assert "anchor/g" in state.data  # a changed anchor set is refused on resume like any other set


def test_an_anchor_row_that_cannot_be_teacher_forced_is_a_bad_row(tmp_path, tiny_checkpoint):
    import json

    from clasr.experiment.checkpoint import load_state
    from clasr.experiment.config import load_config
    from clasr.experiment.runner import run_experiment

    path = _anchor_config(tmp_path, tiny_checkpoint, {"data": "a", "split": "train", "max_utterances": 4})
    manifest = tmp_path / "a" / "metadata.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["text"] = " ".join(["seventeen"] * 600)  # row 2, a train row: too long for the decoder
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(path)
    run_experiment(config)
    report = json.loads((tmp_path / "out" / "data_report.json").read_text())["sets"]
    assert [(b["row"], b["reason"]) for b in report["anchor/anchor"]["bad_rows"]] == [(2, "transcript_too_long")]
    assert load_state(config.output_dir).rows[1]["strategy"]["anchor_utterances"] == 3
