"""DARE (Yu et al. 2024, "Language models are Super Mario"): drop and rescale, then merge.

Each task's vector τ_t = θ̃_t − θ_0 (each task trained from θ_0) loses a random share p of its
entries and the rest is rescaled so that its expectation is unchanged,

    m_t ~ Bernoulli(p) per entry,   τ̃_t = (1 − m_t) ⊙ τ_t / (1 − p),   E[τ̃_t] = τ_t,

and the τ̃_t are merged as the paper does, with task arithmetic (θ_t = θ_0 + λ Σ τ̃_i) or with
TIES-merging (trim to ``top_k``, elect, disjoint mean; ``top_k: 1`` skips the trim, leaving
DARE's drop as the only sparsification). The drop is drawn from the task's seed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from clasr.strategies.base import StrategySettings, TaskContext
from clasr.strategies.merging import (
    SumMerge,
    TaskVector,
    TaskVectorMerging,
    TiesMerge,
    drop_and_rescale,
    trim_to_top_k,
)


class DareConfig(StrategySettings):
    name: Literal["dare"] = "dare"
    drop_rate: float = Field(0.9, ge=0, lt=1, description="p: share of each task vector's entries dropped")
    merge: Literal["task_arithmetic", "ties"] = Field("task_arithmetic", description="how the rescaled vectors are merged")
    scale: float = Field(0.5, gt=0, description="λ: the merged vector is scaled by it")
    top_k: float = Field(1.0, gt=0, le=1, description="with merge: ties, share of entries its trim keeps")

    @model_validator(mode="after")
    def _top_k_only_with_ties(self) -> "DareConfig":
        if self.top_k < 1.0 and self.merge != "ties":
            raise ValueError(f"top_k {self.top_k} trims only with merge: ties (merge is {self.merge}); drop it or set merge: ties")
        return self


class Dare(TaskVectorMerging, settings=DareConfig):
    """Drop a share p of each τ_t, rescale by 1/(1 − p), merge by task arithmetic or TIES."""

    def new_merge(self) -> SumMerge | TiesMerge:
        return TiesMerge() if self.config.merge == "ties" else SumMerge()

    def prepare(self, vector: TaskVector, task: TaskContext) -> TaskVector:
        dropped = drop_and_rescale(vector, self.config.drop_rate, task.seed)
        return trim_to_top_k(dropped, self.config.top_k) if self.config.merge == "ties" else dropped
