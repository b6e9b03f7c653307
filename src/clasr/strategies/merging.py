"""Model merging as a continual strategy: the bookkeeping task arithmetic, TIES and DARE share.

Every task trains from the foundation model θ_0 (with an ``adapter:`` section, a fresh adapter
on θ_0), as the merging papers fine-tune each task independently; its task vector

    τ_t = θ̃_t − θ_0

(with an adapter: the merged ΔW of each adapted layer) is prepared by the method (DARE's drop,
TIES's trim) and folded into a running merge, and the model deployed after task t is

    θ_t = θ_0 + λ · merge(τ_1, …, τ_t).

Nothing per task is kept: each method's merge has an exact running form (a sum for task
arithmetic; per-entry positive and negative sums and counts for TIES), so the state is θ_0
plus one (task arithmetic) or four (TIES) tensors the size of the trained parameters,
whatever the number of tasks.
"""

from __future__ import annotations

import torch

from clasr.strategies.base import Strategy, TaskContext, interpolate_, reset_to_base, update_from

TaskVector = dict[str, torch.Tensor]


class SumMerge:
    """Task arithmetic's merge (Ilharco et al. 2023): Σ_t τ_t, kept as a running sum."""

    def __init__(self) -> None:
        self.total: TaskVector = {}

    def add(self, vector: TaskVector) -> None:
        for name, value in vector.items():
            self.total[name] = self.total[name] + value if name in self.total else value.clone()

    def merged(self) -> TaskVector:
        return self.total

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"sum.{n}": t for n, t in self.total.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.total = {k.removeprefix("sum."): v for k, v in state.items() if k.startswith("sum.")}


class TiesMerge:
    """TIES-merging's elect and disjoint mean (Yadav et al. 2023) over trimmed task vectors τ̂_t:

        γ^p = sgn(Σ_t τ̂_t^p),   A^p = {t : sgn(τ̂_t^p) = γ^p},   τ_m^p = (1/|A^p|) Σ_{t∈A^p} τ̂_t^p

    (τ_m^p = 0 where γ^p = 0). Running form, exact: per entry the positive mass P = Σ_t max(τ̂_t, 0),
    the negative mass N = Σ_t min(τ̂_t, 0) and their counts n₊, n₋; then γ = sgn(P + N) and
    τ_m = P / n₊ where γ > 0, N / n₋ where γ < 0. Counts are int16 (up to 32767 tasks).
    """

    PARTS = ("positive", "negative", "n_positive", "n_negative")

    def __init__(self) -> None:
        self.parts: dict[str, TaskVector] = {part: {} for part in self.PARTS}

    def add(self, vector: TaskVector) -> None:
        for name, value in vector.items():
            contributions = {
                "positive": value.clamp(min=0),
                "negative": value.clamp(max=0),
                "n_positive": (value > 0).to(torch.int16),
                "n_negative": (value < 0).to(torch.int16),
            }
            for part, contribution in contributions.items():
                stored = self.parts[part]
                stored[name] = stored[name] + contribution if name in stored else contribution

    def merged(self) -> TaskVector:
        merged = {}
        for name, positive in self.parts["positive"].items():
            negative = self.parts["negative"][name]
            elected = torch.sign(positive + negative)
            mean_positive = positive / self.parts["n_positive"][name].clamp(min=1)
            mean_negative = negative / self.parts["n_negative"][name].clamp(min=1)
            merged[name] = torch.where(elected > 0, mean_positive, torch.where(elected < 0, mean_negative, 0.0))
        return merged

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{part}.{n}": t for part, tensors in self.parts.items() for n, t in tensors.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.parts = {part: {} for part in self.PARTS}
        for key, value in state.items():
            part, _, name = key.partition(".")
            if part in self.parts:
                self.parts[part][name] = value


def trim_to_top_k(vector: TaskVector, top_k: float) -> TaskVector:
    """TIES's trim: keep the ``top_k`` share of τ's entries largest in magnitude, over the whole
    task vector (all its tensors at once, as the paper's code), and zero the rest. Entries tied
    with the threshold (the m-th largest magnitude, m = max(1, round(top_k · n))) are kept."""
    if top_k >= 1.0:
        return vector
    magnitudes = torch.cat([value.abs().flatten() for value in vector.values()])
    kept = max(1, round(top_k * magnitudes.numel()))
    threshold = magnitudes.kthvalue(magnitudes.numel() - kept + 1).values
    return {name: torch.where(value.abs() >= threshold, value, 0.0) for name, value in vector.items()}


def drop_and_rescale(vector: TaskVector, drop_rate: float, seed: int) -> TaskVector:
    """DARE (Yu et al. 2024): m ~ Bernoulli(p) per entry, τ̃ = (1 − m) ⊙ τ / (1 − p), so that
    E[τ̃] = τ. The draws come from ``seed`` (tensors in name order), so a run repeats them."""
    if drop_rate == 0.0:
        return vector
    generator = torch.Generator().manual_seed(seed)
    dropped = {}
    for name in sorted(vector):
        value = vector[name]
        keep = torch.rand(value.shape, generator=generator) >= drop_rate
        dropped[name] = torch.where(keep.to(value.device), value / (1.0 - drop_rate), 0.0)
    return dropped


class TaskVectorMerging(Strategy):
    """Each task trained from θ_0; θ_t = θ_0 + λ · merge(prepared τ_1..τ_t). Subclasses name the
    merge (:meth:`new_merge`) and how a task vector is prepared before it (:meth:`prepare`);
    their config has ``scale`` (λ)."""

    def __init__(self, config) -> None:
        self.config = config
        self.base: TaskVector = {}
        self.merge = self.new_merge()

    def new_merge(self) -> SumMerge | TiesMerge:
        raise NotImplementedError

    def prepare(self, vector: TaskVector, task: TaskContext) -> TaskVector:
        """τ_t as it enters the merge (default: as it is)."""
        return vector

    def before_task(self, model: torch.nn.Module, task: TaskContext) -> None:
        self.base = reset_to_base(model, self.base)

    @torch.no_grad()
    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        vector = self.prepare(update_from(model, self.base), task)
        entries = sum(v.numel() for v in vector.values())
        nonzero = sum(int(v.count_nonzero()) for v in vector.values())
        self.merge.add(vector)
        interpolate_(model, self.base, 0.0)
        parameters = dict(model.named_parameters())
        for name, merged in self.merge.merged().items():
            parameters[name].add_(self.config.scale * merged)
        return {
            "deployed": "foundation + scale · merge of the task vectors so far",
            "task_vector_entries": entries,
            "task_vector_nonzero_share": nonzero / entries if entries else 0.0,
            "stored_values": sum(t.numel() for t in self.state_dict().values()),
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"base.{n}": t for n, t in self.base.items()} | {f"merge.{k}": t for k, t in self.merge.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.base = {k.removeprefix("base."): v for k, v in state.items() if k.startswith("base.")}
        self.merge = self.new_merge()
        self.merge.load_state_dict({k.removeprefix("merge."): v for k, v in state.items() if k.startswith("merge.")})
