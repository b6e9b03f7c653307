"""A declarative transform chain: a list of steps, each a validated mapping with a ``type``.

Written in a config as, e.g.::

    - {type: telephone}
    - {type: noise, color: pink, snr_db: [5, 15]}

A value given as a range ``[lo, hi]`` is drawn uniformly per utterance from the chain's
random generator; a single number is used as is. Steps check their parameters against the
same bounds as the functions they call, so a valid chain never fails on its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from clasr.transforms.channel import TELEPHONE_NYQUIST_HZ, telephone
from clasr.transforms.noise import MAX_SNR_DB, MIN_SNR_DB, NOISE_GENERATORS, add_noise
from clasr.transforms.reverb import (
    MAX_DIRECT_RATIO_DB,
    MAX_PREDELAY_MS,
    MAX_RT60,
    MIN_DIRECT_RATIO_DB,
    MIN_RT60,
    reverberate,
)
from clasr.transforms.voice import MAX_FACTOR, MIN_FACTOR, child_voice, speed, tempo

Factor = Annotated[float, Field(ge=MIN_FACTOR, le=MAX_FACTOR, allow_inf_nan=False)]


def _value_or_range(low: float, high: float) -> BeforeValidator:
    """Accepts a number in [low, high] or a list [lo, hi] with low ≤ lo ≤ hi ≤ high."""

    def check(value: Any) -> float | tuple[float, float]:
        if _is_number(value) and low <= value <= high:
            return float(value)
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_number, value)):
            if low <= value[0] <= value[1] <= high:
                return float(value[0]), float(value[1])
        raise ValueError(
            f"expected a number in [{low:g}, {high:g}] or a range [lo, hi] with "
            f"{low:g} ≤ lo ≤ hi ≤ {high:g}"
        )

    return BeforeValidator(check)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def draw(value: float | tuple[float, float], rng: np.random.Generator) -> float:
    """``value`` itself, or a uniform draw from [lo, hi] when it is a range."""
    return rng.uniform(*value) if isinstance(value, tuple) else value


def _format_value(value: float | tuple[float, float]) -> str:
    """``10`` or ``5–15``."""
    return f"{value[0]:g}–{value[1]:g}" if isinstance(value, tuple) else f"{value:g}"


SnrDb = Annotated[float | tuple[float, float], _value_or_range(MIN_SNR_DB, MAX_SNR_DB)]
Rt60 = Annotated[float | tuple[float, float], _value_or_range(MIN_RT60, MAX_RT60)]


class _Step(BaseModel):
    """A chain step: unknown keys are errors and a validated step is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TelephoneStep(_Step):
    """Telephone line (:func:`clasr.transforms.channel.telephone`)."""

    type: Literal["telephone"] = "telephone"
    low_hz: float = Field(300.0, gt=0, allow_inf_nan=False)
    high_hz: float = Field(3400.0, lt=TELEPHONE_NYQUIST_HZ, allow_inf_nan=False)
    codec: Literal["mulaw", "none"] = "mulaw"

    @model_validator(mode="after")
    def _band_is_ordered(self) -> TelephoneStep:
        if self.low_hz >= self.high_hz:
            raise ValueError(f"low_hz ({self.low_hz:g}) must be below high_hz ({self.high_hz:g})")
        return self

    def apply(self, audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        return telephone(audio, sample_rate, self.low_hz, self.high_hz, self.codec)

    def describe(self) -> str:
        codec = " μ-law" if self.codec == "mulaw" else ""
        return f"telephone {self.low_hz:g}–{self.high_hz:g} Hz{codec}"


class NoiseStep(_Step):
    """Generated noise of a colour at an SNR (:func:`clasr.transforms.noise.add_noise`)."""

    type: Literal["noise"] = "noise"
    color: Literal["white", "pink", "brown"] = "white"
    snr_db: SnrDb

    def apply(self, audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        snr_db = draw(self.snr_db, rng)
        return add_noise(audio, NOISE_GENERATORS[self.color](audio.size, rng), snr_db)

    def describe(self) -> str:
        return f"{self.color} noise {_format_value(self.snr_db)} dB SNR"


class ReverbStep(_Step):
    """Synthetic room reverberation (:func:`clasr.transforms.reverb.reverberate`)."""

    type: Literal["reverb"] = "reverb"
    rt60: Rt60
    direct_ratio_db: float = Field(0.0, ge=MIN_DIRECT_RATIO_DB, le=MAX_DIRECT_RATIO_DB)
    predelay_ms: float = Field(10.0, ge=0, le=MAX_PREDELAY_MS)

    def apply(self, audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        rt60 = draw(self.rt60, rng)
        return reverberate(audio, sample_rate, rt60, rng, self.direct_ratio_db, self.predelay_ms)

    def describe(self) -> str:
        return f"reverb RT60 {_format_value(self.rt60)} s"


class ChildStep(_Step):
    """Child-like voice (:func:`clasr.transforms.voice.child_voice`)."""

    type: Literal["child"] = "child"
    pitch_factor: Factor = 1.3
    tempo_factor: Factor = 1.1

    @model_validator(mode="after")
    def _ratio_in_range(self) -> ChildStep:
        ratio = self.tempo_factor / self.pitch_factor
        if not MIN_FACTOR <= ratio <= MAX_FACTOR:
            raise ValueError(
                f"tempo_factor / pitch_factor must be in [{MIN_FACTOR:g}, {MAX_FACTOR:g}], "
                f"got {ratio:.3g}"
            )
        return self

    def apply(self, audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        return child_voice(audio, sample_rate, self.pitch_factor, self.tempo_factor)

    def describe(self) -> str:
        return f"child voice (pitch ×{self.pitch_factor:g}, tempo ×{self.tempo_factor:g})"


class SpeedStep(_Step):
    """Speed change, pitch with it (:func:`clasr.transforms.voice.speed`)."""

    type: Literal["speed"] = "speed"
    factor: Factor

    def apply(self, audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        return speed(audio, sample_rate, self.factor)

    def describe(self) -> str:
        return f"speed ×{self.factor:g}"


class TempoStep(_Step):
    """Tempo change at the same pitch (:func:`clasr.transforms.voice.tempo`)."""

    type: Literal["tempo"] = "tempo"
    factor: Factor

    def apply(self, audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        return tempo(audio, sample_rate, self.factor)

    def describe(self) -> str:
        return f"tempo ×{self.factor:g}"


TransformStep = Annotated[
    Union[TelephoneStep, NoiseStep, ReverbStep, ChildStep, SpeedStep, TempoStep],
    Field(discriminator="type"),
]
TransformChain = list[TransformStep]
TRANSFORM_TYPES = tuple(
    model.model_fields["type"].default for model in get_args(get_args(TransformStep)[0])
)

_CHAIN_ADAPTER: TypeAdapter[TransformChain] = TypeAdapter(TransformChain)


def parse_chain(steps: Any) -> TransformChain:
    """Validate a list of step mappings (or step models) into a chain.

    A ValueError lists one problem per line as ``transforms.<index>.<key>: <message>``.
    """
    if not isinstance(steps, (list, tuple)):
        raise ValueError(f"transforms: expected a list of steps, got {type(steps).__name__}")
    try:
        return _CHAIN_ADAPTER.validate_python(list(steps))
    except ValidationError as error:
        raise ValueError(_format_errors(error)) from None


def _format_errors(error: ValidationError) -> str:
    """One line per error; the step's type tag that pydantic puts after the index is dropped."""
    lines = []
    for item in error.errors():
        location = list(item["loc"])
        if len(location) > 1 and isinstance(location[0], int) and location[1] in TRANSFORM_TYPES:
            del location[1]
        path = ".".join(["transforms", *map(str, location)])
        if item["type"] == "union_tag_not_found":
            lines.append(f"{path}: missing key 'type' (one of {', '.join(TRANSFORM_TYPES)})")
            continue
        got = "" if isinstance(item["input"], dict) else f" (got {item['input']!r})"
        lines.append(f"{path}: {item['msg']}{got}")
    return "\n".join(lines)


def apply_chain(
    audio: np.ndarray, sample_rate: int, chain: Sequence[TransformStep], rng: np.random.Generator
) -> np.ndarray:
    """``audio`` passed through each step in order; random steps draw from ``rng`` in order."""
    for step in chain:
        audio = step.apply(audio, sample_rate, rng)
    return audio


def describe(chain: Sequence[TransformStep]) -> str:
    """A one-line summary, steps joined by " → " ("none" for an empty chain)."""
    return " → ".join(step.describe() for step in chain) or "none"
