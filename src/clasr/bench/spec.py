"""What a synthetic benchmark is made of: domains of voices × topic × acoustic channel.

A domain is one task of the continual-learning sequence (or a held-out general set): its
sentences come from one topic of :mod:`clasr.bench.sentences` (so the vocabulary shifts
with the domain), they are spoken by its voices in turn (each voice is a ``speaker``),
and its transform chain (:mod:`clasr.transforms`) puts them through a channel — telephone,
noise, reverberation, a child-like voice. The spec is plain data, validated by pydantic,
and digests name the cache folders, so a changed domain is generated anew and an
unchanged one is reused by every spec that holds it.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clasr.bench.voices import Voice
from clasr.transforms import parse_chain

BENCHMARK_FORMAT = 2  # bump when the generator's output changes for the same spec


class DomainSpec(BaseModel):
    """One domain: ``train`` + ``dev`` + ``test`` utterances of ``topic`` sentences by ``voices``
    (splits in that order; the dev split is for tuning, never the test split)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    topic: str
    voices: tuple[Voice, ...] = Field(min_length=1)
    transforms: tuple[dict, ...] = ()
    train: int = Field(96, ge=0)
    dev: int = Field(0, ge=0)
    test: int = Field(32, ge=1)

    def digest(self, seed: int) -> str:
        """A short stable digest of this domain, the benchmark seed and the generator format:
        a domain's folder is reused by every spec that contains the same domain."""
        return _digest({"format": BENCHMARK_FORMAT, "seed": seed, "domain": self.model_dump(mode="json")})

    @property
    def size(self) -> int:
        return self.train + self.dev + self.test

    def split_of(self, index: int) -> str:
        """The split of the ``index``-th sentence."""
        if index < self.train:
            return "train"
        return "dev" if index < self.train + self.dev else "test"

    @field_validator("transforms")
    @classmethod
    def _valid_chain(cls, value: tuple[dict, ...]) -> tuple[dict, ...]:
        parse_chain(list(value))  # raises ValueError naming the item and key
        return value


class BenchmarkSpec(BaseModel):
    """The task sequence (``domains``, trained in order) and the held-out ``general`` sets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    domains: tuple[DomainSpec, ...]
    general: tuple[DomainSpec, ...] = ()

    @field_validator("domains")
    @classmethod
    def _at_least_one(cls, domains: tuple[DomainSpec, ...]) -> tuple[DomainSpec, ...]:
        if not domains:  # checked after the items, so a bad item is not also reported as "empty"
            raise ValueError("a benchmark needs at least one domain")
        return domains

    @field_validator("general")
    @classmethod
    def _unique_names(cls, general, info):
        names = [d.name for d in info.data.get("domains", ())] + [g.name for g in general]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"domain names must be unique (repeated: {', '.join(duplicates)})")
        return general

    def all_domains(self) -> tuple[DomainSpec, ...]:
        return self.domains + self.general

    def digest(self) -> str:
        """A short stable digest of the spec and the generator format."""
        return _digest({"format": BENCHMARK_FORMAT, "spec": self.model_dump(mode="json")})


def _digest(plain: dict) -> str:
    return hashlib.sha1(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:10]
