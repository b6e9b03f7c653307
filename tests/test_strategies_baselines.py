import math
import random
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clasr.adapters.inject import inject_adapters, remove_adapters
from clasr.adapters.lora import LoRAConfig
from clasr.data.batching import IGNORE_INDEX
from clasr.data.manifest import Utterance
from clasr.models.whisper import tiny_random_whisper
from clasr.strategies.base import TaskContext
from clasr.curvature.fisher import diagonal_fisher
from clasr.strategies.ewc import ElasticWeightConsolidation, EWCConfig, accumulate, ewc_penalty
from clasr.strategies.frozen import FrozenPart, FrozenPartConfig
from clasr.strategies.joint import JointConfig, JointTraining
from clasr.strategies.lwf import LearningWithoutForgetting, LwFConfig, distillation_loss
from clasr.strategies.replay import ExperienceReplay, ExperienceReplayConfig, reservoir_sample
from conftest import nudge, toy_task


pytestmark = pytest.mark.usefixtures("one_thread")


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        self.b = torch.nn.Parameter(torch.tensor([3.0]))


# --- EWC ---------------------------------------------------------------------------


def test_ewc_penalty_matches_a_hand_computed_value():
    model = Toy()
    strategy = ElasticWeightConsolidation(EWCConfig(strength=4.0))
    strategy.load_state_dict({
        "fisher.w": torch.tensor([0.5, 2.0]), "anchor.w": torch.tensor([0.0, -1.0]),
        "fisher.b": torch.tensor([1.0]), "anchor.b": torch.tensor([1.0]),
    })
    penalty = strategy.extra_loss(model, None, None)
    # (λ/2) Σ F (θ − θ*)² = 2 · (0.5·1² + 2·(−1)² + 1·2²) = 2 · 6.5
    assert float(penalty.detach()) == pytest.approx(13.0)
    penalty.backward()
    # ∂/∂θ = λ F (θ − θ*)
    assert model.w.grad.tolist() == pytest.approx([4 * 0.5 * 1, 4 * 2.0 * -1])
    assert model.b.grad.tolist() == pytest.approx([4 * 1.0 * 2])


def test_ewc_penalty_ignores_parameters_without_fisher_and_is_none_before_any_task():
    model = Toy()
    only_w = ewc_penalty(model.named_parameters(), {"w": torch.ones(2)}, {"w": torch.zeros(2)}, strength=2.0)
    assert float(only_w.detach()) == pytest.approx(1 + 4)
    assert ElasticWeightConsolidation(EWCConfig()).extra_loss(model, None, None) is None


def test_online_accumulation_decays_the_past_fisher():
    first = {"w": torch.tensor([1.0, 2.0])}
    second = {"w": torch.tensor([3.0, 4.0]), "b": torch.tensor([5.0])}
    merged = accumulate(first, second, gamma=0.5)
    assert merged["w"].tolist() == [0.5 * 1 + 3, 0.5 * 2 + 4]
    assert merged["b"].tolist() == [5.0]
    assert accumulate(merged, {"w": torch.zeros(2)}, gamma=1.0)["w"].tolist() == [3.5, 5.0]


def test_diagonal_fisher_squares_per_example_gradients():
    """Softmax regression: ∂ℓ_n/∂W = Σ_rows (p − e_y) xᵀ in closed form, squared per example."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4)
    x, y = torch.randn(5, 2, 3), torch.randint(0, 4, (5, 2))  # 5 examples of 2 scored rows each

    def example(n):
        return lambda: (F.cross_entropy(model(x[n]), y[n], reduction="sum"), 2)

    fisher = diagonal_fisher(dict(model.named_parameters()), [example(n) for n in range(5)])
    with torch.no_grad():
        residual = model(x).softmax(-1) - F.one_hot(y, 4)  # (5, 2, 4)
        grad_w = torch.einsum("nro,nri->noi", residual, x)
        grad_b = residual.sum(1)
    assert torch.allclose(fisher["weight"], grad_w.square().sum(0) / 10, atol=1e-6)
    assert torch.allclose(fisher["bias"], grad_b.square().sum(0) / 10, atol=1e-6)
    assert model.weight.grad is None
    batch_mean = (grad_w.sum(0) / 10).square()  # what squaring one batch's mean gradient gives
    assert not torch.allclose(fisher["weight"], batch_mean)


# --- LwF ---------------------------------------------------------------------------


def test_distillation_loss_matches_a_hand_computed_kl():
    # T = 2; position 0: teacher softmax(z/T) = (3/4, 1/4), student (1/2, 1/2);
    # position 1: equal logits (KL 0); position 2: not scored, wildly different logits.
    teacher = torch.tensor([[[2 * math.log(3), 0.0], [1.0, 2.0], [50.0, -50.0]]])
    student = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [-50.0, 50.0]]])
    labels = torch.tensor([[0, 1, IGNORE_INDEX]])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    expected = 2.0**2 * (kl + 0.0) / 2
    assert float(distillation_loss(student, teacher, labels, 2.0)) == pytest.approx(expected, rel=1e-6)
    assert float(distillation_loss(teacher, teacher, labels, 2.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(distillation_loss(student.bfloat16(), teacher, labels, 2.0)) == pytest.approx(expected, rel=1e-2)
    # T = 3 (T² ≠ 2T): teacher softmax(z/3) at position 0 = (3^(2/3), 1) / (3^(2/3) + 1)
    p = 3 ** (2 / 3) / (3 ** (2 / 3) + 1)
    kl3 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    assert float(distillation_loss(student, teacher, labels, 3.0)) == pytest.approx(3.0**2 * kl3 / 2, rel=1e-6)


# --- ER and joint ------------------------------------------------------------------


def test_reservoir_is_bounded_and_deterministic_by_seed():
    runs = {}
    for seed in (0, 0, 1):
        memory = []
        seen = reservoir_sample(memory, 0, range(100), 10, random.Random(seed))
        assert len(memory) == 10 and seen == 100 and len(set(memory)) == 10
        runs.setdefault(seed, []).append(memory)
    assert runs[0][0] == runs[0][1] != runs[1][0]
    small = []
    assert reservoir_sample(small, 0, range(3), 10, random.Random(0)) == 3 and small == [0, 1, 2]


def test_reservoir_is_uniform_over_a_stream_fed_in_two_tasks():
    n, capacity, runs = 20, 5, 3000
    counts = [0] * n
    for run in range(runs):
        memory = []
        seen = reservoir_sample(memory, 0, range(12), capacity, random.Random(2 * run))
        reservoir_sample(memory, seen, range(12, n), capacity, random.Random(2 * run + 1))
        for item in memory:
            counts[item] += 1
    expected = runs * capacity / n  # 750
    sigma = math.sqrt(runs * (capacity / n) * (1 - capacity / n))
    assert max(abs(c - expected) for c in counts) < 5 * sigma
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 50  # about 19 degrees of freedom (p ≈ 1e-4 at 45)


def _utterances(task: int, n: int) -> list[Utterance]:
    return [Utterance(f"t{task}u{i}", Path(f"t{task}/{i}.wav"), "x", 1.0 + i, None, "train", i + 2) for i in range(n)]


def _contexts(sizes):
    tasks = [(f"t{k}", _utterances(k, n)) for k, n in enumerate(sizes, start=1)]
    return [
        TaskContext(k, name, utts, None, seed=10 + k, earlier_tasks=tasks[: k - 1])
        for k, (name, utts) in enumerate(tasks, start=1)
    ]


def test_replay_mixes_the_memory_and_survives_a_resume():
    first, second, third = _contexts([30, 20, 5])
    strategy = ExperienceReplay(ExperienceReplayConfig(memory_size=8))
    assert list(strategy.training_utterances(first)) == first.train_utterances
    facts = strategy.after_task(None, first)
    assert facts["stored_utterances"] == 8 and facts["stored_per_task"] == {"t1": 8}
    mixed = strategy.training_utterances(second)
    assert mixed[:20] == second.train_utterances and set(mixed[20:]) <= set(first.train_utterances)
    facts = strategy.after_task(None, second)
    replayed = strategy.training_utterances(third)[5:]
    assert len(replayed) == 8 and facts["stored_audio_seconds"] == round(sum(u.duration for u in replayed), 2)
    assert facts["stored_per_task"] == {f"t{k}": n for k, n in Counter(k for k, _ in strategy.memory).items()}
    resumed = ExperienceReplay(ExperienceReplayConfig(memory_size=8))
    resumed.load_state_dict(strategy.state_dict())
    assert resumed.training_utterances(third) == strategy.training_utterances(third)
    assert resumed.after_task(None, third) == strategy.after_task(None, third)
    assert resumed.memory == strategy.memory and resumed.seen == strategy.seen == 55


def test_joint_trains_on_the_union_in_task_order():
    first, second, third = _contexts([2, 3, 1])
    strategy = JointTraining(JointConfig())
    expected = first.train_utterances + second.train_utterances + third.train_utterances
    assert strategy.training_utterances(third) == expected
    assert strategy.training_utterances(first) == first.train_utterances
    assert strategy.after_task(None, third)["stored_utterances"] == 6


# --- frozen part -------------------------------------------------------------------


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_frozen_part_trains_only_the_chosen_part(part):
    model = tiny_random_whisper(seed=0).model
    strategy = FrozenPart(FrozenPartConfig(part=part))
    for index in (1, 2):  # the freezing persists from task to task
        strategy.before_task(model, TaskContext(index, "t", [], None, 0))
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        expected = {name for name, _ in model.named_parameters() if name.startswith(f"model.{part}.")}
        assert trainable == expected - {"model.encoder.embed_positions.weight"}
    assert model.proj_out.weight.requires_grad == (part == "decoder")
    facts = strategy.after_task(model, TaskContext(2, "t", [], None, 0))
    assert facts["trainable_parameters"] == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


# --- every strategy's hooks on the tiny random Whisper -----------------------------


@pytest.fixture(scope="module")
def whisper_task(tmp_path_factory):
    return toy_task(tmp_path_factory.mktemp("baselines") / "d", seed=1, n_train=4)


def _train_step_loss(strategy, model, task):
    utts = strategy.training_utterances(task)
    batch = task.collator(list(utts[:2]), [0, 1])
    features, inputs = batch.input_features, batch.decoder_input_ids
    logits = model(input_features=features, decoder_input_ids=inputs, use_cache=False).logits
    return strategy.extra_loss(model, batch, logits)


def _assert_finite_with_grad(loss, model):
    assert loss is not None and loss.ndim == 0 and torch.isfinite(loss) and float(loss.detach()) > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_ewc_hooks_on_whisper(whisper_task):
    bundle, utts, collator = whisper_task
    model = tiny_random_whisper(seed=1).model
    strategy = ElasticWeightConsolidation(EWCConfig(fisher_utterances=2, gamma=0.5))
    tasks = [TaskContext(k, f"t{k}", utts, collator, seed=k) for k in (1, 2)]
    strategy.before_task(model, tasks[0])
    assert _train_step_loss(strategy, model, tasks[0]) is None
    nudge(model, 1)
    facts = strategy.after_task(model, tasks[0])
    first = {n: f.clone() for n, f in strategy.fisher.items()}
    assert facts["fisher_utterances"] == 2 and facts["fisher_mean"] > 0
    entries = sum(f.numel() for f in first.values())
    assert facts["fisher_mean"] == pytest.approx(float(sum(f.double().sum() for f in first.values())) / entries)
    assert facts["state_bytes"] == 2 * 4 * entries  # the Fisher and θ*, float32
    assert first.keys() == {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(torch.equal(strategy.anchor[n], p) for n, p in model.named_parameters() if n in first)
    assert all(p.grad is None for p in model.parameters())
    strategy.before_task(model, tasks[1])
    assert float(_train_step_loss(strategy, model, tasks[1]).detach()) == 0.0  # θ = θ*
    nudge(model, 2)
    _assert_finite_with_grad(_train_step_loss(strategy, model, tasks[1]), model)
    resumed = ElasticWeightConsolidation(EWCConfig(fisher_utterances=2, gamma=0.5))
    resumed.load_state_dict(strategy.state_dict())
    model.zero_grad()
    current = strategy._fisher_of(model, tasks[1])
    again = strategy._fisher_of(model, tasks[1])  # the task's seed draws the same subset of its utterances
    assert all(torch.equal(current[n], again[n]) for n in current)
    strategy.after_task(model, tasks[1])
    resumed.after_task(model, tasks[1])
    for name, f in strategy.fisher.items():
        assert torch.allclose(f, 0.5 * first[name] + current[name])
        assert torch.equal(f, resumed.fisher[name]) and torch.equal(strategy.anchor[name], resumed.anchor[name])


def test_ewc_penalty_reads_adapted_weights_as_the_merged_model(whisper_task):
    bundle, utts, collator = whisper_task
    model = tiny_random_whisper(seed=1).model
    strategy = ElasticWeightConsolidation(EWCConfig(fisher_utterances=1))
    task = TaskContext(1, "t1", utts, collator, seed=1)
    strategy.before_task(model, task)
    strategy.after_task(model, task)
    adapters = inject_adapters(model, LoRAConfig(r=2, targets={"preset": "attention_all"}))
    with torch.no_grad():
        for adapter in adapters.values():
            adapter.lora_B.normal_(0, 1e-2, generator=torch.Generator().manual_seed(0))
    with_adapters = strategy.extra_loss(model, None, None)
    with_adapters.backward()
    assert all(a.lora_B.grad.abs().sum() > 0 for a in adapters.values())
    remove_adapters(model, merge=True)
    merged = strategy.extra_loss(model, None, None)
    assert float(with_adapters.detach()) > 0
    assert float(with_adapters.detach()) == pytest.approx(float(merged.detach()), rel=1e-4)


def test_ewc_sampled_fisher_is_seeded(whisper_task):
    bundle, utts, collator = whisper_task
    model = tiny_random_whisper(seed=1).model
    strategy = ElasticWeightConsolidation(EWCConfig(fisher="sampled", fisher_utterances=1))
    task = TaskContext(1, "t", utts, collator, seed=5)
    a, b = strategy._fisher_of(model, task), strategy._fisher_of(model, task)
    assert all(torch.equal(a[n], b[n]) and torch.isfinite(a[n]).all() for n in a)


@pytest.mark.parametrize("from_first_task", [True, False])
def test_lwf_hooks_on_whisper(whisper_task, from_first_task):
    bundle, utts, collator = whisper_task
    model = tiny_random_whisper(seed=1).model
    strategy = LearningWithoutForgetting(LwFConfig(strength=0.5, from_first_task=from_first_task))
    task = TaskContext(1, "t1", utts, collator, seed=1)
    strategy.before_task(model, task)
    if not from_first_task:
        assert _train_step_loss(strategy, model, task) is None
        assert strategy.after_task(model, task) == {"distilled": False}
        task = TaskContext(2, "t2", utts, collator, seed=2, earlier_tasks=[("t1", utts)])
        strategy.before_task(model, task)
    assert float(_train_step_loss(strategy, model, task).detach()) == pytest.approx(0.0, abs=1e-6)  # student = teacher
    nudge(model, 3)
    _assert_finite_with_grad(_train_step_loss(strategy, model, task), model)
    assert all(p.grad is None for p in strategy.teacher.parameters())
    assert strategy.after_task(model, task) == {"distilled": True} and strategy.teacher is None


@pytest.mark.parametrize(
    "make_strategy",
    [
        lambda: ExperienceReplay(ExperienceReplayConfig(memory_size=2)),
        lambda: JointTraining(JointConfig()),
        lambda: FrozenPart(FrozenPartConfig()),
    ],
    ids=["er", "joint", "frozen"],
)
def test_data_and_freezing_strategies_run_their_hooks_on_whisper(whisper_task, make_strategy):
    strategy = make_strategy()  # a fresh one per run: ER's memory would carry over to a rerun in the same process
    bundle, utts, collator = whisper_task
    model = tiny_random_whisper(seed=1).model
    first = TaskContext(1, "t1", utts[:2], collator, seed=1)
    second = TaskContext(2, "t2", utts[2:], collator, seed=2, earlier_tasks=[("t1", utts[:2])])
    sizes = []
    for task in (first, second):
        strategy.before_task(model, task)
        sizes.append(len(strategy.training_utterances(task)))
        assert _train_step_loss(strategy, model, task) is None
        assert isinstance(strategy.after_task(model, task), dict)
    assert sizes == ([2, 2] if isinstance(strategy, FrozenPart) else [2, 4])
