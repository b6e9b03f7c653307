"""FT — plain sequential fine-tuning: θ_t = θ̃_t. The lower bound on forgetting."""

from __future__ import annotations

from typing import Literal

from clasr.strategies.base import Strategy, StrategySettings


class FineTuneConfig(StrategySettings):
    name: Literal["ft"] = "ft"


class FineTune(Strategy, settings=FineTuneConfig):
    """Sequential fine-tuning: the fine-tuned model of each task is deployed as it is."""

    def __init__(self, config: FineTuneConfig):
        self.config = config
