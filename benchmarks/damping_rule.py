"""How much the single damping rule moves IHR's corrected updates, old rule against new, in one run.

    .venv/bin/python benchmarks/damping_rule.py [--model tiny-random|tiny.en|PATH] [--bf16] [--batches 2]

Before issue 16, λ came from two different means: the Cholesky path from the stored factors'
traces, the eigen path and IHR's conjugate gradient (``past: exact``) from the mean of the
clamped eigenvalues (the PSD part). Now every path takes the traces
(:func:`clasr.curvature.damping.kronecker_damping`). The two differ only by the factors'
round-off negative eigenvalues, so this script measures, on the K-FAC factors of two tasks
(the bundled AN4 and ARCTIC minis), with one random ΔW per layer (seeded):

- the largest relative change of λ_A, λ_G between the rules;
- ``exact`` (CG over both tasks): the largest relative change of the rescaled update X;
- ``last`` (closed form): how many layers fell back from Cholesky to the eigen path, and the
  largest relative change of X over those (elsewhere the closed form was already on traces).

The old rule is reproduced exactly by handing the solves PSD-projected factors, whose traces
are the clamped eigenvalue sums.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from clasr.curvature.damping import kronecker_damping
from clasr.curvature.solve import EigenInverse, _damped_cholesky, conjugate_gradient, damped_solve, psd_projection
from clasr.data.batching import SpeechCollator, make_loader
from clasr.data.manifest import Selection, read_dataset
from clasr.models.whisper import load_whisper, tiny_random_whisper
from clasr.strategies.ihr import rescale, whisper_kfac

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
RHO = 1e-3  # IHR's default relative damping


def relative(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x - y).norm() / y.norm()) if float(y.norm()) > 0 else float(x.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="collect under bf16 autocast (products still float32)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = tiny_random_whisper(seed=0, window_seconds=args.window) if args.model == "tiny-random" else load_whisper(
        args.model, args.window)
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    tasks = []
    for name in ("an4_mini", "arctic_kathleen_mini"):
        utterances, _ = read_dataset(DATA / name, Selection(split="train", max_duration=args.window))
        loader = make_loader(utterances, collator, 4, shuffle=True, seed=0)
        tasks.append(whisper_kfac(bundle.model, loader, max_batches=args.batches, bf16=args.bf16))
    generator = torch.Generator().manual_seed(0)
    lam_change, exact_change, fallbacks, fallback_change, negative = 0.0, 0.0, 0, 0.0, 0
    for layer in tasks[0].A:
        pairs = [(f.A[layer].double(), f.G[layer].double()) for f in tasks]
        projected = [(psd_projection(A), psd_projection(G)) for A, G in pairs]
        negative += sum(int(torch.linalg.eigvalsh(m).min() < 0) for pair in pairs for m in pair)
        for (A, G), (PA, PG) in zip(pairs, projected):
            new, old = kronecker_damping(A, G, RHO), kronecker_damping(PA, PG, RHO)
            lam_change = max(lam_change, *(abs(n - o) / o for n, o in zip(new, old)))
        dW = torch.randn(pairs[0][1].shape[0], pairs[0][0].shape[0], generator=generator, dtype=torch.float64)
        new_x, _ = conjugate_gradient(pairs, dW, RHO, 1e-10, 500)
        old_x, _ = conjugate_gradient(projected, dW, RHO, 1e-10, 500)
        exact_change = max(exact_change, relative(rescale(new_x, dW, 1.0), rescale(old_x, dW, 1.0)))
        A, G = pairs[-1]
        lam_a, lam_g = kronecker_damping(A, G, RHO)
        if _damped_cholesky(A, lam_a)[1] or _damped_cholesky(G, lam_g)[1]:
            fallbacks += 1
            old_last = EigenInverse(*projected[-1]).solve(dW, RHO)
            fallback_change = max(fallback_change, relative(damped_solve(A, G, dW, RHO), old_last))
    print(json.dumps({
        "model": args.model, "bf16_collection": args.bf16, "batches_per_task": args.batches, "layers": len(tasks[0].A),
        "factors_with_a_negative_eigenvalue": negative,
        "max_relative_lambda_change": lam_change,
        "exact_max_relative_update_change": exact_change,
        "last_cholesky_fallbacks": fallbacks,
        "last_max_relative_update_change_on_fallbacks": fallback_change,
    }, indent=2))


if __name__ == "__main__":
    main()
