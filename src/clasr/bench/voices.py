"""Text-to-speech voices for the synthetic benchmark: eSpeak NG and hibari, offline.

Two engines, both from PyPI (the optional ``bench`` extra, since their licences are GPL-3
and Apache-2.0):

- **eSpeak NG** (``espeakng-loader`` ships ``libespeak-ng`` and its voice data), called
  through ctypes in synchronous mode: ``espeak_Initialize`` once per process, then per
  sentence ``espeak_SetVoiceByName`` / ``espeak_SetParameter`` / ``espeak_Synth``, the
  samples arriving in a callback. The library keeps state from one sentence to the next
  (the same text twice in one process differs by a few samples; ``espeak_ng_SetRandSeed``
  and re-initialising do not reset it), so its output is reproducible only as a sequence
  from a fresh process: the generator makes each domain in a process of its own. Variants
  with ``breath`` noise (f2, f3, f5) differ even then, from about the 100th sentence on, so
  they are refused. Formant synthesis: robotic, but with many English accents
  (``en-gb-scotland``, ``en-029``, ``en-us-nyc``, …) and voice variants (``+f3``, ``+m2``).
- **hibari** (``hibari-tts``): a small neural voice, ``heart`` (American, female), with
  American or British spelling-to-sound rules and a speed control; deterministic for a
  given seed.

Both return float32 mono audio in [−1, 1] at the engine's own rate (22,050 / 24,000 Hz);
the benchmark resamples to 16 kHz when it writes the sets.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

INSTALL_HINT = "install the benchmark extra: pip install 'clasr[bench]' (espeakng-loader, hibari-tts)"

# espeak_AUDIO_OUTPUT and espeak_PARAMETER values from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PARAMETER_RATE = 1
_PARAMETER_PITCH = 3
_PARAMETER_RANGE = 4
_CHARS_UTF8 = 1
_SSML = 0x10  # espeakSSML: the text is SSML (<speak>, <voice xml:lang="…">)
SSML_START = "<speak>"
OFFLINE_HIBARI_VOICE = "heart"


class VoiceError(RuntimeError):
    """A voice that cannot speak: engine missing, unknown voice, or synthesis failure."""


class Voice(BaseModel):
    """One speaker of the benchmark.

    ``engine`` picks eSpeak NG (``name`` is an eSpeak voice, optionally ``+variant``;
    ``rate`` in words per minute, ``pitch`` and ``pitch_range`` in 0–100) or hibari
    (``name`` is a hibari voice; ``british`` picks British spelling-to-sound rules;
    ``speed`` 0.5–2.0).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["espeak", "hibari"]
    name: str
    rate: int = Field(165, ge=80, le=450)
    pitch: int = Field(50, ge=0, le=100)
    pitch_range: int = Field(50, ge=0, le=100)
    british: bool = False
    speed: float = Field(1.0, ge=0.5, le=2.0)

    def label(self) -> str:
        """A short readable description, e.g. ``espeak en-029+m3`` or ``hibari heart (GB)``."""
        if self.engine == "espeak":
            return f"espeak {self.name}"
        return f"hibari {self.name} ({'GB' if self.british else 'US'}, speed {self.speed:g})"


def synthesize(voice: Voice, text: str, seed: int = 0) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice``: (float32 mono samples, sample rate).

    ``seed`` fixes hibari's noise component; eSpeak NG's samples depend on the sentences
    spoken before in the same process (see the module docstring). ``text`` starting with
    ``<speak>`` is SSML (eSpeak NG only), e.g. to change language inside a sentence."""
    if voice.engine == "hibari" and text.startswith(SSML_START):
        raise VoiceError(f"{voice.label()}: hibari speaks English only and cannot read SSML; use an eSpeak NG voice")
    if voice.engine == "espeak":
        audio, rate = _espeak().speak(voice, text)
    else:
        audio, rate = _hibari(voice.name, voice.british).speak(text, voice.speed, seed)
    if audio.size == 0 or not np.isfinite(audio).all():
        raise VoiceError(f"{voice.label()}: no usable audio for {text!r}")
    return audio, rate


class _Espeak:
    """The eSpeak NG library, initialised once (it keeps global state; not thread-safe)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise VoiceError(f"eSpeak NG is not installed; {INSTALL_HINT}") from error
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._declare_signatures()
        data = espeakng_loader.get_data_path().encode()
        self._variants = Path(data.decode()) / "voices" / "!v"
        self.sample_rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise VoiceError(f"eSpeak NG failed to initialise (data at {data.decode()})")
        self._chunks: list[np.ndarray] = []
        self._callback = self._callback_type(self._collect)  # kept alive with the object
        self._lib.espeak_SetSynthCallback(self._callback)

    def _declare_signatures(self) -> None:
        lib = self._lib
        self._callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [self._callback_type]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]

    def _check_reproducible(self, name: str) -> None:
        """Refuse variants with ``breath`` noise: their samples differ from run to run (after
        about 100 sentences in one process), so a benchmark made with them is not reproducible."""
        _, _, variant = name.partition("+")
        path = self._variants / variant
        if variant and path.is_file():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            if any(line.split()[:1] == ["breath"] for line in lines):
                raise VoiceError(f"eSpeak NG variant {variant!r} adds breath noise that is not reproducible; "
                                 "choose one without it (e.g. m1–m7, f1, f4)")

    def _collect(self, samples, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = continue synthesis

    def speak(self, voice: Voice, text: str) -> tuple[np.ndarray, int]:
        self._check_reproducible(voice.name)
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise VoiceError(f"eSpeak NG has no voice {voice.name!r}")
        for parameter, value in (
            (_PARAMETER_RATE, voice.rate), (_PARAMETER_PITCH, voice.pitch), (_PARAMETER_RANGE, voice.pitch_range)
        ):
            self._lib.espeak_SetParameter(parameter, value, 0)
        encoded = text.encode("utf-8") + b"\0"
        buffer = ctypes.create_string_buffer(encoded, len(encoded))
        self._chunks = []
        flags = _CHARS_UTF8 | (_SSML if text.startswith(SSML_START) else 0)
        status = self._lib.espeak_Synth(buffer, len(encoded), 0, 0, 0, flags, None, None)
        if status != 0:
            raise VoiceError(f"eSpeak NG failed ({status}) on {text!r}")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return (samples.astype(np.float32) / 32768.0), self.sample_rate


class _Hibari:
    """One hibari voice with American or British spelling-to-sound rules."""

    def __init__(self, name: str, british: bool) -> None:
        try:
            from hibari import Hibari
            from hibari.g2p import G2P
        except ImportError as error:
            raise VoiceError(f"hibari is not installed; {INSTALL_HINT}") from error
        if name != OFFLINE_HIBARI_VOICE:
            raise VoiceError(
                f"hibari voice {name!r} is downloaded on first use; only {OFFLINE_HIBARI_VOICE!r} ships in the package"
            )
        self._tts = Hibari(voice=name, threads=1, g2p=G2P(british=british))

    def speak(self, text: str, speed: float, seed: int) -> tuple[np.ndarray, int]:
        audio = np.asarray(self._tts(text, speed=speed, seed=seed), dtype=np.float32)
        return audio, int(self._tts.sample_rate)


@lru_cache(maxsize=1)
def _espeak() -> _Espeak:
    return _Espeak()


@lru_cache(maxsize=4)
def _hibari(name: str, british: bool) -> _Hibari:
    return _Hibari(name, british)
