"""Generate a benchmark spec into audiofolder sets, once, in the user cache.

Per domain: ``train + dev + test`` distinct sentences of its topic (seeded by the benchmark
seed and the domain name, so two domains on one topic get different sentences), spoken by
the domain's voices in turn, resampled to 16 kHz, put through the domain's transform chain
with a per-utterance random generator, peak-limited to 0.99 and written as 16-bit FLAC
with ``metadata.jsonl`` (``file_name``, ``text``, ``speaker``, ``split``, ``duration``,
``voice``, ``channel``, and ``language`` for a topic in another language than English). A
code-switched sentence is spoken as SSML, its marked words by the other language's voice,
and written without its tags (:mod:`clasr.bench.language_data`).

Each domain is made in a fresh process of its own (eSpeak NG carries state from sentence to
sentence, so only a fresh process makes a domain's audio reproducible), two at a time. It
lives in ``<cache>/<name>-<digest>/`` and appears atomically, so an interrupted generation
resumes with the domains still missing, and a domain shared by two specs is made once.
``<cache>/bench-<spec digest>.json`` records the spec, its folders, sizes and times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from clasr.atomic import atomic_path, write_json
from clasr.bench.language_data import is_marked, plain_text, ssml
from clasr.bench.sentences import generate_sentences, topic_language
from clasr.bench.spec import BenchmarkSpec, DomainSpec
from clasr.bench.voices import synthesize
from clasr.progress import console, progress_bar
from clasr.transforms import apply_chain, describe, parse_chain

SAMPLE_RATE = 16000
PEAK = 0.99
METADATA = "metadata.jsonl"


class GenerationError(RuntimeError):
    """A domain could not be generated (the message names it and says why)."""


@dataclass(frozen=True)
class DomainSummary:
    """One generated domain: where, how much audio, and how long it took (0 when reused)."""

    name: str
    folder: str
    utterances: int
    minutes: float
    seconds_to_make: float


def default_cache_root() -> Path:
    """``$CLASR_CACHE/bench`` or ``~/.cache/clasr/bench``."""
    base = os.environ.get("CLASR_CACHE") or Path.home() / ".cache" / "clasr"
    return Path(base) / "bench"


def make_benchmark(spec: BenchmarkSpec, root: Path | None = None, workers: int = 2) -> list[DomainSummary]:
    """Generate the domains of ``spec`` still missing; returns every domain's summary."""
    root = root or default_cache_root()
    start = time.perf_counter()
    missing = [d for d in spec.all_domains() if not (domain_folder(root, d, spec.seed) / METADATA).exists()]
    seconds = _make_in_fresh_processes(root, missing, spec.seed, workers) if missing else {}
    summaries = [_summary(root, d, spec.seed, seconds.get(d.name, 0.0)) for d in spec.all_domains()]
    wall = time.perf_counter() - start
    write_json(root / f"bench-{spec.digest()}.json", {
        "spec": spec.model_dump(mode="json"),
        "domains": [asdict(s) for s in summaries],
        "seconds": round(wall, 1),
    })
    count, minutes = sum(s.utterances for s in summaries), sum(s.minutes for s in summaries)
    state = f"{len(missing)} generated in {wall:.0f} s" if missing else "reused"
    console.print(f"benchmark: {len(summaries)} domains, {count} utterances, {minutes:.1f} min of audio, {state} ({root})")
    return summaries


def domain_folder(root: Path, domain: DomainSpec, seed: int) -> Path:
    return root / f"{domain.name}-{domain.digest(seed)}"


def _make_in_fresh_processes(root: Path, domains: list[DomainSpec], seed: int, workers: int) -> dict[str, float]:
    """Write each domain in a new Python process, ``workers`` at a time; returns seconds per domain."""
    seconds: dict[str, float] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool, progress_bar() as bar:
        job = bar.add_task("voicing domains", total=len(domains), info="")
        futures = {pool.submit(_write_domain_in_new_process, domain_folder(root, d, seed), d, seed): d.name for d in domains}
        for future in as_completed(futures):
            seconds[futures[future]] = future.result()
            bar.update(job, advance=1, info=futures[future])
    return seconds


def _write_domain_in_new_process(target: Path, domain: DomainSpec, seed: int) -> float:
    payload = json.dumps({"target": str(target), "seed": seed, "domain": domain.model_dump(mode="json")})
    done = subprocess.run([sys.executable, "-m", __name__], input=payload, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise GenerationError(f"generating domain {domain.name!r} failed: {last}")
    return float(done.stdout.strip().splitlines()[-1])


def _summary(root: Path, domain: DomainSpec, seed: int, seconds: float) -> DomainSummary:
    target = domain_folder(root, domain, seed)
    rows = [json.loads(line) for line in (target / METADATA).read_text(encoding="utf-8").splitlines()]
    minutes = sum(r["duration"] for r in rows) / 60
    return DomainSummary(domain.name, str(target), len(rows), round(minutes, 2), round(seconds, 1))


def write_domain(target: Path, domain: DomainSpec, seed: int) -> float:
    """Synthesise, transform and write one domain as an audiofolder set (atomically);
    returns the seconds it took."""
    start = time.perf_counter()
    domain_seed = [seed, zlib.crc32(domain.name.encode())]
    sentences = generate_sentences(domain.topic, domain.size, seed=_int_seed(domain_seed))
    chain = parse_chain(list(domain.transforms))
    channel = describe(chain) if chain else "clean"
    with atomic_path(target) as tmp:
        (tmp / "audio").mkdir(parents=True)
        rows = [_write_utterance(tmp, domain, i, text, chain, channel, domain_seed) for i, text in enumerate(sentences)]
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (tmp / METADATA).write_text(lines, encoding="utf-8")
    return time.perf_counter() - start


def _write_utterance(folder: Path, domain: DomainSpec, index: int, text: str, chain, channel: str, seed) -> dict:
    voice_index = index % len(domain.voices)
    voice = domain.voices[voice_index]
    audio, rate = synthesize(voice, ssml(text) if is_marked(text) else text, seed=_int_seed(seed + [index]))
    audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    if chain:
        rng = np.random.Generator(np.random.PCG64(seed + [index]))
        audio = apply_chain(audio, SAMPLE_RATE, chain, rng)
    audio = _limit_peak(audio)
    split = domain.split_of(index)
    file_name = f"audio/{domain.name}_{split}_{index:05d}.flac"
    sf.write(folder / file_name, audio, SAMPLE_RATE, subtype="PCM_16")
    language = topic_language(domain.topic)
    return {
        "file_name": file_name,
        "text": plain_text(text),
        "speaker": f"{domain.name}_v{voice_index}",
        "split": split,
        "duration": round(len(audio) / SAMPLE_RATE, 3),
        "voice": voice.label(),
        "channel": channel,
    } | ({"language": language} if language != "en" else {})


def _limit_peak(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio * (PEAK / peak) if peak > PEAK else audio


def _int_seed(parts: list[int]) -> int:
    return int(np.random.SeedSequence(parts).generate_state(1)[0])


if __name__ == "__main__":  # one domain in a fresh process: see _write_domain_in_new_process
    _job = json.loads(sys.stdin.read())
    print(write_domain(Path(_job["target"]), DomainSpec.model_validate(_job["domain"]), _job["seed"]))
