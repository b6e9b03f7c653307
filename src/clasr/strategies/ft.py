"""FT — plain sequential fine-tuning: θ_t = θ̃_t. The lower bound on forgetting."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from clasr.strategies.base import Strategy


class FineTuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["ft"] = "ft"


class FineTune(Strategy):
    """Sequential fine-tuning: the fine-tuned model of each task is deployed as it is."""

    name = "ft"

    def __init__(self, config: FineTuneConfig):
        self.config = config
