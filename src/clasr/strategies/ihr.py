"""IHR — inverse-Hessian regularised merging (arXiv 2601.14751), memory-free.

With θ_{t−1} the model deployed before task t and θ̃_t the model fine-tuned on task t,
each tracked Linear weight (every Linear but the tied output projection) moves by its
update corrected with the K-FAC curvature of past tasks, and rescaled::

    ΔW = W̃_t − W_{t−1}
    X  = (G + λ_G I)⁻¹ ΔW (A + λ_A I)⁻¹            past = "last" (task t−1's factors)
                                                   or "sum" (A = Σ_k A_k, G = Σ_k G_k)
    X  solves Σ_k (G_k + λ_G,k I) X (A_k + λ_A,k I) = ΔW       past = "exact" (CG)
    X ← α · X · ‖ΔW‖_F / ‖X‖_F
    W_t = W_{t−1} + X

Directions that past tasks' curvature marks as important (large eigenvalues of A, G) are
shrunk, the others kept; the rescaling keeps the size of the step. Every other trainable
parameter (biases, norms, convolutions, embeddings) moves by
θ_t = θ_{t−1} + rest_α (θ̃_t − θ_{t−1}). The paper's code uses α = 1, rest_α = 0.5; the
defaults here, α = 2 and rest_α = 1, were chosen on the built-in benchmark's dev splits
(tiny.en): α = 1 under-learns the new task (the corrected step of the same norm carries
less of it), α = 2 learns nearly as much as fine-tuning with no dev forgetting, α = 4
starts forgetting. Damping is by default relative to each factor's mean eigenvalue and π-split
(:mod:`clasr.curvature.damping`, the same λ for every solve) instead of the reference code's
fixed 1e-3 (``damping_mode: absolute``); every solve, closed form or CG, is :func:`clasr.curvature.solve.kronecker_solve`:
this module keeps only the merge rule.

After the merge, the factors of task t are collected at θ_t on (a bounded number of
batches of) task t's training data; only the factors are kept, never the data. Task 1 has
no past factors, so θ_1 = θ̃_1 (plain fine-tuning): the foundation model's own training
data is not available to a memory-free method. (In the paper the starting model was trained
by the authors on an initial task, whose data give the factors of the first adaptation;
``anchor`` below is the nearest equivalent for a foundation model.)

The token embedding E (tied to the output projection: 19.9 M of tiny.en's 37.2 M
parameters) is no Linear layer of the correction (in the authors' ESPnet model the output
layer is an untied Linear and is corrected; only its 1.3 M-entry embedding moves by rest_α);
``embedding`` says what happens to it:
``free`` (default, as the paper) moves it by rest_α like every other parameter; ``frozen``
keeps it at the foundation model's value (it does not train); ``diagonal`` corrects its
update with the diagonal of its empirical Fisher, collected with the factors from each
utterance of the same batches (its own backward pass, so the squares are of per-utterance
gradients; ℓ_n the utterance's summed token loss, M_n its scored tokens)::

    F_E = Σ_n (∂ℓ_n/∂E)² / Σ_n M_n                 (shaped like E: 4 bytes a parameter)
    X_E = ΔE ⊘ Σ_k (F_E,k + λ_k)                    (closed form for last, sum and exact)
    X_E ← α · X_E · ‖ΔE‖_F / ‖X_E‖_F,   E_t = E_{t−1} + X_E

with λ_k = ρ · mean(F_E,k) (relative) or the absolute value (:func:`diagonal_damping`):
vocabulary rows and features that past tasks' data lean on are shrunk, the others kept,
exactly as the Kronecker correction does for the Linear weights.

``damping_mode: absolute`` damps every factor by the fixed value instead (λ_A = λ_G =
``damping``), and ``curvature_batches: null`` collects the factors over every batch of the
training set; ``preset: reference`` (:func:`reference_preset`) takes the authors' code's
settings together. ``anchor`` protects the foundation model (beyond the paper): before task
1, factors of θ_0 are collected on an anchor set (the general sets' dev selections, or any
data the user names), so that task 1's update is corrected too; with ``past: last`` they
are replaced by task 1's after it, with ``sum``/``exact`` they stay among the past factors.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Sequence

import torch
from pydantic import AfterValidator, Field, model_validator

from clasr.curvature.damping import Damping, DampingMode
from clasr.curvature.fisher import diagonal_fisher
from clasr.curvature.kfac import KFACFactors, collect_kfac, eval_mode, requiring_grad
from clasr.curvature.solve import diagonal_solve, kronecker_solve
from clasr.data.batching import SpeechBatch, SpeechCollator, batch_stream, duration_batches
from clasr.data.manifest import Utterance
from clasr.data.selection import Selection
from clasr.distributed import shard
from clasr.models.language import check_language_code
from clasr.models.positions import whisper_kinds, whisper_linear_layers, whisper_masks
from clasr.models.teacher_forcing import FisherType, fisher_loss, scored_tokens
from clasr.precision import BF16Setting, use_bf16
from clasr.strategies.base import Strategy, StrategySettings, TaskContext, trainable_snapshot


class AnchorSet(Selection):
    """Data the user names for the foundation model's curvature: a dataset folder (relative to
    the config file) and a selection of its rows (``split``, ``max_utterances``, …)."""

    data: Path
    language: Annotated[str, AfterValidator(check_language_code)] | None = Field(
        None, description="prompt language of the anchor set (ISO code); default: evaluation's"
    )

    def selection(self) -> Selection:
        return Selection(**self.model_dump(exclude={"data", "language"}))


# The authors' code: α = 1, rest_α = 0.5, absolute damping 1e-3, the whole previous task's data.
# Their factors are scaled differently (per-batch means over padded rows of a batch-mean loss,
# divided by the number of utterances: ≈ A/B and G/B³ for batches of B), so the same 1e-3 damps
# far less here than there (docs/benchmarks.md, "Method fidelity against the papers").
REFERENCE_SETTINGS = {"alpha": 1.0, "rest_alpha": 0.5, "damping": 1e-3, "damping_mode": "absolute", "curvature_batches": None}


def reference_preset(plain: Any) -> Any:
    """IHR settings (plain dict) with ``preset: reference``: :data:`REFERENCE_SETTINGS` filled in
    where the settings do not set them themselves (keys set explicitly win); others as they are."""
    if isinstance(plain, dict) and plain.get("preset") == "reference":
        return {**REFERENCE_SETTINGS, **plain}
    return plain


class IHRConfig(StrategySettings):
    name: Literal["ihr"] = "ihr"
    alpha: float = Field(2.0, gt=0, description="step size α of the corrected Linear-weight update (dev-tuned)")
    rest_alpha: float = Field(1.0, ge=0, le=1, description="interpolation weight of all other parameters (dev-tuned)")
    past: Literal["last", "sum", "exact"] = "last"
    damping: float = Field(1e-3, ge=0, description="damping: ρ (relative) or the value added to every factor (absolute)")
    damping_mode: DampingMode = Field(
        "relative", description="relative: ρ × each factor's mean eigenvalue, π-split; absolute: the reference code's fixed value"
    )
    fisher: Literal["empirical", "sampled"] = "empirical"
    curvature_batches: int | None = Field(
        4, ge=1, description="training batches used to collect a task's factors (4 and 8 gave identical dev WER); "
        "null: every batch (the reference code)"
    )
    curvature_batch_size: int = Field(8, ge=1)
    curvature_bf16: BF16Setting = Field(
        "auto", description="collect factors under bfloat16 autocast (1.7× faster on a CPU with native bf16; factors "
        "within ~4 % of fp32); 'auto': only where the device has native bf16 (clasr.precision)"
    )
    cg_tolerance: float = Field(1e-6, gt=0, description="relative residual at which CG stops (past: exact)")
    cg_max_iterations: int = Field(200, ge=1)
    embedding: Literal["free", "frozen", "diagonal"] = Field(
        "free", description="the tied token embedding: moved by rest_α (free), not trained (frozen), or its update "
        "corrected by its diagonal empirical Fisher (diagonal)"
    )
    anchor: Literal["general"] | AnchorSet | None = Field(
        None, description="curvature of the foundation model before task 1, so task 1 is corrected too: general (the "
        "general sets' dev selections) or {data: folder, split: …}; null: task 1 is plain fine-tuning (the paper)"
    )
    preset: Literal["reference"] | None = Field(None, description="reference: the authors' code's settings (reference_preset)")

    @model_validator(mode="before")
    @classmethod
    def _reference_preset(cls, data: Any) -> Any:
        """``preset: reference`` fills in the authors' code's settings."""
        return reference_preset(data)

    def damping_rule(self) -> Damping:
        return Damping(self.damping, self.damping_mode)


def whisper_kfac(
    model: torch.nn.Module, batches: Iterable[SpeechBatch], fisher: FisherType = "empirical", seed: int = 0,
    max_batches: int | None = None, bf16: bool = False, layers: dict[str, torch.nn.Linear] | None = None,
) -> KFACFactors:
    """K-FAC factors of a Whisper model's ``layers`` (default: every Linear but ``proj_out``), over
    its real encoder and decoder positions, for the summed token loss of the true labels
    (``empirical``) or of labels sampled from the model with ``seed`` (``sampled``)."""
    layers = whisper_linear_layers(model) if layers is None else layers
    return collect_kfac(
        model, batches, layers, whisper_kinds(layers), whisper_masks, fisher_loss(model, fisher, seed),
        max_batches=max_batches, bf16=bf16,
    )


def rescale(X: torch.Tensor, dW: torch.Tensor, alpha: float) -> torch.Tensor:
    """α · X · ‖ΔW‖_F / ‖X‖_F (zero when X is zero)."""
    norm_x = float(X.norm())
    return X * (alpha * float(dW.norm()) / norm_x) if norm_x > 0 else X


def embedding_name(model: torch.nn.Module) -> str:
    """The name under which the model lists its (tied) token embedding weight."""
    weight = model.get_input_embeddings().weight
    return next(name for name, p in model.named_parameters() if p is weight)


def embedding_fisher(
    model: torch.nn.Module, utterances: Sequence[Utterance], batches: Sequence[Sequence[int]],
    collator: SpeechCollator, fisher: FisherType, seed: int,
) -> dict[str, torch.Tensor]:
    """F_E = Σ_n (∂ℓ_n/∂E)² / Σ_n M_n of the token embedding E over every utterance of ``batches``,
    each its own backward pass (:func:`clasr.curvature.fisher.diagonal_fisher`), in eval mode."""
    weight = model.get_input_embeddings().weight
    device = weight.device
    summed_loss = fisher_loss(model, fisher, seed)

    def example(index: int) -> tuple[torch.Tensor, int]:
        batch = collator([utterances[index]], [index]).to(device)
        return summed_loss(batch), scored_tokens(batch.labels)

    examples = (partial(example, i) for indices in batches for i in indices)
    with eval_mode(model), torch.enable_grad(), requiring_grad([weight]):
        return diagonal_fisher({embedding_name(model): weight}, examples)


class InverseHessianRegularization(Strategy, settings=IHRConfig):
    """IHR merging after every task, with the K-FAC factors of past tasks (and of an anchor set)."""

    def __init__(self, config: IHRConfig):
        self.config = config
        self.damping = config.damping_rule()
        self.past: list[KFACFactors] = []  # last: [t−1]; sum: [Σ_k]; exact: [1, …, t−1] (anchor first)
        self.past_embedding: list[dict[str, torch.Tensor]] = []  # embedding: diagonal — F_E, kept like self.past
        self.previous: dict[str, torch.Tensor] = {}
        self.anchor_facts: dict = {}

    def before_task(self, model: torch.nn.Module, task: TaskContext) -> None:
        if self.config.embedding == "frozen":
            model.get_input_embeddings().requires_grad_(False)
        self.previous = trainable_snapshot(model)
        if self.config.anchor is not None and task.index == 1 and not self.past:
            self._collect_anchor(model, task)

    def _collect_anchor(self, model: torch.nn.Module, task: TaskContext) -> None:
        """The factors (and F_E) of the foundation model θ_0 on the anchor set, as past factors of task 1."""
        if not task.anchor or task.anchor_collator is None:
            raise ValueError("ihr: anchor is set but the task brings no anchor utterances (TaskContext.anchor)")
        start = time.perf_counter()
        self._remember(*self._collect(model, task.anchor, task.anchor_collator, task.seed))
        self.anchor_facts = {"anchor_utterances": len(task.anchor), "anchor_curvature_seconds": time.perf_counter() - start}

    def after_task(self, model: torch.nn.Module, task: TaskContext) -> dict:
        start = time.perf_counter()
        facts: dict = {"merged_with_past_tasks": len(self.past) if self.config.past == "exact" else min(len(self.past), 1)}
        facts |= self.anchor_facts
        self.anchor_facts = {}
        if self.past:
            facts.update(self._merge(model))
        self.previous = {}
        facts["merge_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        self._remember(*self._collect(model, task.train_utterances, task.collator, task.seed))
        facts["curvature_seconds"] = time.perf_counter() - start
        facts["factor_memory_bytes"] = sum(f.memory_bytes() for f in self.past) + sum(
            t.numel() * t.element_size() for F in self.past_embedding for t in F.values()
        )
        return facts

    @torch.no_grad()
    def _merge(self, model: torch.nn.Module) -> dict:
        tracked = {f"{name}.weight" for name in whisper_linear_layers(model)}
        embedding = embedding_name(model) if self.past_embedding else None
        residuals = []
        for name, param in model.named_parameters():
            if name not in self.previous:
                continue
            before = self.previous[name]
            delta = param - before
            if name in tracked:
                X, residual = self._corrected(name.removesuffix(".weight"), delta)
                residuals.append(residual)
                param.copy_(before + X.to(param.dtype))
            elif name == embedding:
                dE = delta.double()
                X = rescale(diagonal_solve([F[name] for F in self.past_embedding], dE, self.damping), dE, self.config.alpha)
                param.copy_(before + X.to(param.dtype))
            else:
                param.copy_(before + self.config.rest_alpha * delta)
        facts = {"layers_corrected": len(residuals), "embedding_corrected": embedding in self.previous}
        if self.config.past == "exact":
            facts["cg_max_relative_residual"] = max(residuals, default=0.0)
        return facts

    def _corrected(self, layer: str, delta: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The rescaled corrected update X of one layer, and the CG residual (0 for closed forms)."""
        dW = delta.double()
        pairs = [(f.A[layer], f.G[layer]) for f in self.past]
        X, residual = kronecker_solve(pairs, dW, self.damping, self.config.cg_tolerance, self.config.cg_max_iterations)
        return rescale(X, dW, self.config.alpha), residual

    def _collect(
        self, model: torch.nn.Module, utterances: Sequence[Utterance], collator: SpeechCollator, seed: int
    ) -> tuple[KFACFactors, dict[str, torch.Tensor] | None]:
        """The factors (and, with ``embedding: diagonal``, F_E) over the first ``curvature_batches``
        shuffled batches of ``utterances`` (all of them when null); with several processes each
        passes its share of them and the sums are added (:meth:`KFACCollector.factors`)."""
        durations = [u.duration for u in utterances]
        batches = duration_batches(durations, self.config.curvature_batch_size, shuffle=True, seed=seed)
        mine = shard(batches[: self.config.curvature_batches])
        bf16 = use_bf16(self.config.curvature_bf16, next(model.parameters()).device)
        factors = whisper_kfac(model, batch_stream(utterances, mine, collator), self.config.fisher, seed, bf16=bf16)
        if self.config.embedding != "diagonal":
            return factors, None
        return factors, embedding_fisher(model, utterances, mine, collator, self.config.fisher, seed)

    def _remember(self, factors: KFACFactors, embedding: dict[str, torch.Tensor] | None) -> None:
        self.past = self._kept(self.past, factors)
        if embedding is not None:
            self.past_embedding = self._kept(self.past_embedding, embedding)

    def _kept(self, past: list, current):
        """The past curvature to keep with ``current`` added: last, summed, or all of them."""
        if self.config.past == "last" or not past:
            return [current]
        if self.config.past == "sum":
            summed = current + past[0] if isinstance(current, KFACFactors) else {k: v + past[0][k] for k, v in current.items()}
            return [summed]
        return [*past, current]

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {}
        for k, factors in enumerate(self.past):
            for layer in factors.A:
                state[f"past.{k}.A.{layer}"] = factors.A[layer]
                state[f"past.{k}.G.{layer}"] = factors.G[layer]
                state[f"past.{k}.count.{layer}"] = torch.tensor(factors.counts[layer])
        for k, fisher in enumerate(self.past_embedding):
            state |= {f"embedding.{k}.{name}": F for name, F in fisher.items()}
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        factor_keys = [key for key in state if key.startswith("past.")]
        embedding_keys = [key for key in state if key.startswith("embedding.")]
        self.past = [KFACFactors({}, {}, {}) for _ in range(_entries(factor_keys))]
        for key in factor_keys:
            _, k, kind, layer = key.split(".", 3)
            factors = self.past[int(k)]
            if kind == "count":
                factors.counts[layer] = int(state[key])
            else:
                getattr(factors, kind)[layer] = state[key]
        self.past_embedding = [{} for _ in range(_entries(embedding_keys))]
        for key in embedding_keys:
            _, k, name = key.split(".", 2)
            self.past_embedding[int(k)][name] = state[key]


def _entries(keys: list[str]) -> int:
    """How many past entries keys ``<kind>.<k>.…`` number."""
    return 1 + max((int(key.split(".")[1]) for key in keys), default=-1)
