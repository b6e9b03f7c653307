"""TIES-merging (Yadav et al. 2023, "TIES-Merging: resolving interference when merging models").

Each task's vector τ_t = θ̃_t − θ_0 (each task trained from θ_0) is

    trimmed:   τ̂_t = τ_t with all but the top-k share of its entries (by magnitude) set to 0,
    elected:   γ^p = sgn(Σ_t τ̂_t^p),
    merged:    τ_m^p = (1/|A^p|) Σ_{t∈A^p} τ̂_t^p,   A^p = {t : sgn(τ̂_t^p) = γ^p}   (disjoint mean),

and the deployed model after task t is θ_t = θ_0 + λ τ_m over the tasks so far. The trim is
over the whole task vector at once (as the paper's code); the elect and disjoint mean keep an
exact running form (:class:`clasr.strategies.merging.TiesMerge`). Paper defaults: k = 20 %,
λ chosen on validation data (about 1).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clasr.strategies.base import StrategySettings, TaskContext
from clasr.strategies.merging import TaskVector, TaskVectorMerging, TiesMerge, trim_to_top_k


class TiesConfig(StrategySettings):
    name: Literal["ties"] = "ties"
    top_k: float = Field(0.2, gt=0, le=1, description="share of each task vector's entries kept by the trim (largest magnitudes)")
    scale: float = Field(1.0, gt=0, description="λ: the merged vector is scaled by it")


class Ties(TaskVectorMerging, settings=TiesConfig):
    """Trim each τ_t to its top-k entries, elect a sign per entry, average the agreeing entries."""

    def new_merge(self) -> TiesMerge:
        return TiesMerge()

    def prepare(self, vector: TaskVector, task: TaskContext) -> TaskVector:
        return trim_to_top_k(vector, self.config.top_k)
