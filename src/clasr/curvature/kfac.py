"""K-FAC factors of Linear layers, averaged over real (non-padded) positions only.

A Linear layer s = W x + b runs at many positions p of a sequence (encoder frames,
decoder tokens). Over the N real positions of that sequence, across all batches::

    A = (1/N) Σ_p x_p x_pᵀ                    (in × in, the layer's inputs)
    G = (1/N) Σ_p ĝ_p ĝ_pᵀ,  ĝ_p = ∂L/∂s_p     (out × out, the pre-bias output gradients)

where L = Σ_i ℓ_i is the loss *summed* over the scored tokens of the batch (not their
mean: the 1/M of a mean loss would make G depend on how utterances are batched). With
the K-FAC "expand" approximation for weight sharing (Eschenhagen et al. 2023), the Fisher
block of W for the summed loss is F ≈ N · A ⊗ G (column-stacking vec(W)), and for a mean
loss over M tokens (N/M) · A ⊗ G. This is exactly curvlinops' ``KFACLinearOperator``
(``kfac_approx="expand"``, ``CrossEntropyLoss(reduction="mean")``) when every position is
real and scored. A carries no homogeneous 1 for the bias (curvlinops'
``separate_weight_and_bias=True``): IHR corrects only the weights.

Padding never enters: the input rows and output-gradient rows of a layer are selected by
a boolean mask of the layer's *sequence kind* (each tracked Linear has one kind, and each
batch brings one mask per kind), and the rows outside it are dropped, never weighted by 0.
This module knows only linear layers, their kinds, masks and a summed loss; which layers a
model has, which sequence each reads and which positions are real is the model's business
(Whisper's are in ``clasr.models``), as is the loss, with the labels of an empirical or a
sampled Fisher.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from clasr.atomic import atomic_path
from clasr.distributed import sum_across_processes, sum_counts

Masks = dict[str, torch.Tensor]  # sequence kind → boolean (B, T) mask, True at real positions
Batch = Any  # whatever the model's loss reads; must have .to(device)

_FORMAT = "clasr.kfac/1"


@dataclass
class KFACFactors:
    """Per-layer K-FAC factors (float32) and the number of real positions N behind each."""

    A: dict[str, torch.Tensor]
    G: dict[str, torch.Tensor]
    counts: dict[str, int]

    def memory_bytes(self) -> int:
        """Bytes held by the factors."""
        return sum(t.numel() * t.element_size() for t in [*self.A.values(), *self.G.values()])

    def __add__(self, other: KFACFactors) -> KFACFactors:
        """Factors summed layer by layer (IHR's "sum" over past tasks: each task, already an
        average over its own positions, weighs the same); counts add."""
        if self.A.keys() != other.A.keys():
            raise ValueError("cannot add K-FAC factors of different layer sets")
        return KFACFactors(
            {k: self.A[k] + other.A[k] for k in self.A},
            {k: self.G[k] + other.G[k] for k in self.G},
            {k: self.counts[k] + other.counts[k] for k in self.counts},
        )

    def __radd__(self, other: int) -> KFACFactors:
        """So that ``sum(list_of_factors)`` works (it starts from 0); any other number is a
        ``TypeError``, as for any unsupported operand."""
        return self if isinstance(other, int) and other == 0 else NotImplemented

    def save(self, path: str | os.PathLike) -> None:
        """Write the factors to one safetensors file, atomically (keys ``<layer>.A``/``<layer>.G``,
        counts in the metadata)."""
        tensors = {f"{k}.A": v.contiguous().cpu() for k, v in self.A.items()}
        tensors |= {f"{k}.G": v.contiguous().cpu() for k, v in self.G.items()}
        metadata = {"format": _FORMAT, "counts": json.dumps(self.counts)}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> KFACFactors:
        """Read factors written by :meth:`save`."""
        with safe_open(path, framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != _FORMAT:
                raise ValueError(f"{path} is not a K-FAC factor file ({_FORMAT})")
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        counts = json.loads(metadata["counts"])
        return cls({k: tensors[f"{k}.A"] for k in counts}, {k: tensors[f"{k}.G"] for k in counts}, counts)


class KFACCollector:
    """Accumulates the masked sums Σ x xᵀ and Σ ĝ ĝᵀ of tracked Linear layers, pass after pass.

    ``layers`` maps names to the Linear modules to track, ``kinds`` each name to its
    sequence kind. Each :meth:`step` installs the hooks, runs one forward/backward pass and
    removes them; the model's parameters, their ``.grad`` and ``requires_grad`` are left
    as they were. Each batch's products are computed in float32 (twice as fast as float64 on
    a CPU, relative error ~1e-7) and summed across batches in float64.
    """

    def __init__(self, layers: dict[str, nn.Linear], kinds: dict[str, str]):
        missing = layers.keys() - kinds.keys()
        if missing:
            raise ValueError(f"no sequence kind for layers {sorted(missing)}")
        self.layers = layers
        self.kinds = kinds
        zeros = lambda n, m: torch.zeros(n, n, dtype=torch.float64, device=m.weight.device)  # noqa: E731
        self._A = {name: zeros(m.in_features, m) for name, m in layers.items()}
        self._G = {name: zeros(m.out_features, m) for name, m in layers.items()}
        self._counts = dict.fromkeys(layers, 0)

    def step(self, masks: Masks, summed_loss: Callable[[], torch.Tensor]) -> None:
        """One pass: ``summed_loss()`` runs the model and returns L = Σ_i ℓ_i over the scored
        terms; ``masks`` gives each kind's real positions, shaped like the layer inputs
        without their feature dimension."""
        missing = {self.kinds[name] for name in self.layers} - masks.keys()
        if missing:
            raise ValueError(f"no mask for sequence kinds {sorted(missing)}")
        weights = [m.weight for m in self.layers.values()]
        with torch.enable_grad(), requiring_grad(weights), self._hooks(masks):
            torch.autograd.grad(summed_loss(), weights, allow_unused=True)

    def factors(self) -> KFACFactors:
        """The averages A = Σ x xᵀ / N and G = Σ ĝ ĝᵀ / N, as float32.

        In a multi-process run each process has passed its share of the batches: the sums and
        counts of all processes are added first (:mod:`clasr.distributed`), so every process
        gets the factors of all the batches. Every process must call this."""
        A, G, counts = sum_across_processes(self._A), sum_across_processes(self._G), sum_counts(self._counts)
        empty = [name for name, n in counts.items() if n == 0]
        if empty:
            raise ValueError(f"no real positions reached layers {empty}")
        average = lambda sums: {k: (v / counts[k]).float() for k, v in sums.items()}  # noqa: E731
        return KFACFactors(average(A), average(G), counts)

    @contextmanager
    def _hooks(self, masks: Masks) -> Iterator[None]:
        handles = [
            module.register_forward_hook(
                partial(self._on_forward, name, masks[self.kinds[name]].bool()), with_kwargs=True
            )
            for name, module in self.layers.items()
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _on_forward(
        self, name: str, mask: torch.Tensor, module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor
    ) -> None:
        x = args[0] if args else kwargs["input"]
        if x.shape[:-1] != mask.shape:
            kind = self.kinds[name]
            raise ValueError(f"{name}: input {tuple(x.shape)} does not match its {kind!r} mask {tuple(mask.shape)}")
        self._A[name] += _outer_sum(x.detach()[mask])
        self._counts[name] += int(mask.sum())
        output.register_hook(partial(self._on_output_grad, name, mask))

    def _on_output_grad(self, name: str, mask: torch.Tensor, grad: torch.Tensor) -> None:
        self._G[name] += _outer_sum(grad.detach()[mask])


def _outer_sum(rows: torch.Tensor) -> torch.Tensor:
    """Σ_p r_p r_pᵀ over the rows, formed in float32 even under bf16 autocast (the hooks run
    inside the autocast region, which would otherwise round the products to bfloat16 and
    make the factor indefinite), returned in float64 for the running sum."""
    with torch.autocast(rows.device.type, enabled=False):
        rows = rows.float()
        return (rows.T @ rows).double()


@contextmanager
def requiring_grad(params: list[nn.Parameter]) -> Iterator[None]:
    """Temporarily let frozen weights require grad (the output gradients need a graph)."""
    frozen = [p for p in params if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) for the collection; every module's own mode restored after."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


def collect_kfac(
    model: nn.Module,
    batches: Iterable[Batch],
    layers: dict[str, nn.Linear],
    kinds: dict[str, str],
    masks: Callable[[Batch], Masks],
    summed_loss: Callable[[Batch], torch.Tensor],
    max_batches: int | None = None,
    bf16: bool = False,
) -> KFACFactors:
    """K-FAC factors of ``layers`` (kinds ``kinds``) on (at most ``max_batches`` of) ``batches``.

    Each batch is moved to the model's device; ``masks(batch)`` gives each kind's real
    positions and ``summed_loss(batch)`` runs the model and returns the loss *summed* over
    the scored terms. Runs in eval mode; the model is left unchanged. ``bf16`` runs the
    forward and backward passes under bfloat16 autocast (as training does); the products
    are still formed in float32.
    """
    collector = KFACCollector(layers, kinds)
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    with eval_mode(model):
        for batch in islice(batches, max_batches):
            batch = batch.to(device)
            with autocast:
                collector.step(masks(batch), partial(summed_loss, batch))
    return collector.factors()
