"""Evaluation: transcribe a set of utterances in batches and score them.

Each utterance keeps its own error counts (a hypothesis file row), so every corpus figure
can later carry a bootstrap confidence interval and methods can be compared with paired
tests on the same utterances.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from clasr.atomic import write_text
from clasr.data.batching import SpeechCollator, duration_batches, load_utterance_audio
from clasr.data.manifest import Utterance
from clasr.decoding import DecodeLimits, greedy_decode
from clasr.metrics.text import get_normalizer
from clasr.metrics.wer import CorpusScore, bootstrap_ci, corpus_score, score_utterance
from clasr.progress import progress_bar


@dataclass
class EvalResult:
    """A scored set: corpus score, one row per utterance (input order), decoding time, and
    the 95 % bootstrap confidence interval of the WER (utterances resampled, seed 0)."""

    score: CorpusScore
    rows: list[dict]
    seconds: float
    wer_ci95: tuple[float, float]  # percentile bootstrap over utterances

    @property
    def token_limit_hits(self) -> int:
        return sum(row["hit_token_limit"] for row in self.rows)

    def summary(self) -> dict:
        return {
            **asdict(self.score),
            "wer_ci95": list(self.wer_ci95),
            "seconds": self.seconds,
            "token_limit_hits": self.token_limit_hits,
        }


def transcribe(
    bundle,
    utterances: Sequence[Utterance],
    batch_size: int = 16,
    limits: DecodeLimits | None = None,
    description: str = "decoding",
) -> list[tuple[str, bool]]:
    """(hypothesis text, hit_token_limit) per utterance, in input order."""
    limits = limits or DecodeLimits()
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    model = bundle.model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[tuple[str, bool] | None] = [None] * len(utterances)
    batches = duration_batches([u.duration for u in utterances], batch_size)
    with progress_bar() as progress:
        task = progress.add_task(description, total=len(utterances), info="")
        for indices in batches:
            batch = [utterances[i] for i in indices]
            feats, _ = collator.features([load_utterance_audio(u) for u in batch])
            decoded = greedy_decode(
                model,
                feats.to(device, dtype=next(model.parameters()).dtype),
                collator.prompt,
                collator.eot,
                [limits.budget(u.duration) for u in batch],
            )
            for i, out in zip(indices, decoded):
                results[i] = (bundle.tokenizer.decode(out.tokens, skip_special_tokens=True).strip(), out.hit_token_limit)
            progress.advance(task, len(batch))
    model.train(was_training)
    return results  # type: ignore[return-value]


def evaluate(
    bundle,
    utterances: Sequence[Utterance],
    normalizer: str = "whisper_english",
    batch_size: int = 16,
    limits: DecodeLimits | None = None,
    description: str = "decoding",
) -> EvalResult:
    """Transcribe and score ``utterances``; rates are corpus-level (summed errors / summed reference length)."""
    start = time.perf_counter()
    hyps = transcribe(bundle, utterances, batch_size, limits, description)
    normalize = get_normalizer(normalizer)
    rows, scores = [], []
    for utt, (hyp, hit) in zip(utterances, hyps):
        score, norm_ref, norm_hyp = score_utterance(utt.text, hyp, normalize)
        scores.append(score)
        rows.append(
            {
                "id": utt.id,
                "reference": utt.text,
                "hypothesis": hyp,
                "normalized_reference": norm_ref,
                "normalized_hypothesis": norm_hyp,
                "duration": utt.duration,
                "hit_token_limit": hit,
                **score.to_dict(),
            }
        )
    return EvalResult(corpus_score(scores), rows, time.perf_counter() - start, bootstrap_ci(scores))


def write_hypotheses(path: str | Path, rows: Sequence[dict]) -> None:
    """One JSON object per utterance (reference, hypothesis, normalised texts, error counts), written atomically."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
