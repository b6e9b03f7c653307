"""How strongly IHR's damping rules correct an update, clasr's factor scale against the authors' code.

    .venv/bin/python benchmarks/ihr_reference_damping.py [--model tiny.en|tiny-random|PATH] [--batches 2]
                                                        [--delta random|gradient]

The authors' code (StevenVdEeckt/inverse-hessian-regularization, ``consolidate2.py``) stores
Q_b = mean over all B·T rows of x xᵀ and H_b = mean of g gᵀ, with g the gradient of a loss
divided by the batch size B, sums them over batches and divides by the number of utterances:
Q ≈ A/B and H ≈ G/B³ in clasr's units (A, G: means over real positions, G of the summed loss).
Its fixed damping 1e-3 on (Q, H) is therefore λ_A = 1e-3·B, λ_G = 1e-3·B³ on clasr's (A, G)
(B = 16 in its configs). This script collects clasr's factors on the bundled AN4 mini and, for
one ΔW per layer — seeded Gaussian (``random``), or the negative gradient of the summed token
loss on the bundled ARCTIC mini at the same weights (``gradient``: the direction a first
fine-tuning step on a second task takes) — reports per rule the damping relative to each factor's mean
eigenvalue (λ/m) and the cosine between the corrected X = (G + λ_G)⁻¹ ΔW (A + λ_A)⁻¹ and ΔW
(1: no correction; lower: a stronger correction), as medians over the layers:

- ``relative``: clasr's default, ρ = 1e-3, π-split (λ_A = √ρ·m_A, λ_G = √ρ·m_G);
- ``absolute``: clasr's ``damping_mode: absolute`` / ``preset: reference``, 1e-3 on A and G;
- ``reference-equivalent``: the authors' 1e-3 carried over to clasr's scale (B = 16).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from clasr.curvature.damping import kronecker_damping
from clasr.curvature.solve import EigenInverse
from clasr.data.batching import SpeechCollator, make_loader
from clasr.data.manifest import Selection, read_dataset
from clasr.models.positions import whisper_linear_layers
from clasr.models.teacher_forcing import fisher_loss
from clasr.models.whisper import load_whisper, tiny_random_whisper
from clasr.strategies.ihr import whisper_kfac

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
REFERENCE_BATCH = 16  # batch_size of the authors' training configs


def corrected(inverse: EigenInverse, dW: torch.Tensor, lam_a: float, lam_g: float) -> torch.Tensor:
    """(G + λ_G I)⁻¹ dW (A + λ_A I)⁻¹ from the stored eigendecompositions, float64."""
    rotated = inverse.q_g.T @ dW @ inverse.q_a
    scaled = rotated / ((inverse.e_g + lam_g)[:, None] * (inverse.e_a + lam_a)[None, :])
    return inverse.q_g @ scaled @ inverse.q_a.T


def gradient_updates(model: torch.nn.Module, loader, batches: int) -> dict[str, torch.Tensor]:
    """−∂L/∂W of every tracked Linear for the summed token loss L over ``batches`` batches."""
    layers = whisper_linear_layers(model)
    loss = fisher_loss(model, "empirical", 0)
    model.zero_grad()
    for index, batch in enumerate(loader):
        if index == batches:
            break
        loss(batch).backward()
    return {name: -layer.weight.grad.double().clone() for name, layer in layers.items()}


def cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x * y).sum() / (x.norm() * y.norm()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--delta", choices=("random", "gradient"), default="random")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = tiny_random_whisper(seed=0, window_seconds=args.window) if args.model == "tiny-random" else load_whisper(
        args.model, args.window)
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    def loader(name: str):
        utterances, _ = read_dataset(DATA / name, Selection(split="train", max_duration=args.window))
        return make_loader(utterances, collator, 4, shuffle=True, seed=0)

    factors = whisper_kfac(bundle.model, loader("an4_mini"), max_batches=args.batches)
    updates = gradient_updates(bundle.model, loader("arctic_kathleen_mini"), args.batches) if args.delta == "gradient" else {}
    generator = torch.Generator().manual_seed(0)
    rules = {"relative": None, "absolute": (1e-3, 1e-3),
             "reference-equivalent": (1e-3 * REFERENCE_BATCH, 1e-3 * REFERENCE_BATCH**3)}
    rows: dict[str, dict[str, list[float]]] = {rule: {"lam_a/m_a": [], "lam_g/m_g": [], "cos": []} for rule in rules}
    for layer in factors.A:
        A, G = factors.A[layer].double(), factors.G[layer].double()
        inverse = EigenInverse(A, G)
        dW = updates.get(layer)
        if dW is None:
            dW = torch.randn(G.shape[0], A.shape[0], generator=generator, dtype=torch.float64)
        for rule, lams in rules.items():
            lam_a, lam_g = lams or kronecker_damping(A, G, 1e-3)
            rows[rule]["lam_a/m_a"].append(lam_a / inverse.mean_a)
            rows[rule]["lam_g/m_g"].append(lam_g / inverse.mean_g)
            rows[rule]["cos"].append(cosine(corrected(inverse, dW, lam_a, lam_g), dW))
    medians = {rule: {k: statistics.median(v) for k, v in values.items()} for rule, values in rows.items()}
    print(json.dumps({"model": args.model, "delta": args.delta, "batches": args.batches, "layers": len(factors.A),
                      "medians_over_layers": medians}, indent=2))


if __name__ == "__main__":
    main()
