"""Evaluation: transcribe a set of utterances in batches and score them.

Each utterance keeps its own error counts (a hypothesis file row), so every corpus figure
can later carry a bootstrap confidence interval and methods can be compared with paired
tests on the same utterances.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from clasr.atomic import write_text
from clasr.data.batching import SpeechCollator, duration_batches, load_utterance_audio, prompt_ids
from clasr.data.manifest import Utterance
from clasr.decoding import DecodeLimits
from clasr.distributed import gather, is_main_process, shard
from clasr.engines import DEFAULT_ENGINE, ComputeType, Engine, greedy_decoder, resolved_engine
from clasr.metrics.text import get_normalizer
from clasr.metrics.wer import CorpusScore, bootstrap_ci, corpus_score, score_utterance
from clasr.models.language import AUTO, ENGLISH, detect_language, prompt_language
from clasr.progress import progress_bar


@dataclass
class EvalResult:
    """A scored set: corpus score, one row per utterance (input order), decoding time, and
    the 95 % bootstrap confidence interval of the WER (utterances resampled, seed 0)."""

    score: CorpusScore
    rows: list[dict]
    seconds: float
    wer_ci95: tuple[float, float]  # percentile bootstrap over utterances
    metric: str = "wer"  # the set's headline rate (one of clasr.metrics.wer.METRICS)
    language: str = ENGLISH  # the set's language: forced in the prompt, or "auto"
    languages: dict[str, int] = field(default_factory=dict)  # utterances per decoded (detected) language
    engine: str = "torch"  # the engine that decoded (``auto`` resolved), and its compute type
    compute_type: str = "float32"

    @property
    def error_rate(self) -> float:
        """The value of the set's headline rate."""
        return getattr(self.score, self.metric)

    @property
    def token_limit_hits(self) -> int:
        return sum(row["hit_token_limit"] for row in self.rows)

    def summary(self) -> dict:
        return {
            **asdict(self.score),
            "metric": self.metric,
            "error_rate": self.error_rate,
            "language": self.language,
            "languages": self.languages,
            "wer_ci95": list(self.wer_ci95),
            "seconds": self.seconds,
            "token_limit_hits": self.token_limit_hits,
            "engine": self.engine,
            "compute_type": self.compute_type,
        }


def transcribe(
    bundle,
    utterances: Sequence[Utterance],
    batch_size: int = 16,
    limits: DecodeLimits | None = None,
    description: str = "decoding",
    language: str = ENGLISH,
    engine: Engine = DEFAULT_ENGINE,
    compute_type: ComputeType = "float32",
) -> list[tuple[str, bool, str]]:
    """(hypothesis text, hit_token_limit, language) per utterance, in input order.

    ``language``: an ISO code forced in the prompt of every utterance, or ``auto``: each
    utterance's language is detected first (:func:`clasr.models.language.detect_language`, an
    extra encoder pass) and a batch is decoded in groups of one language. A ModelError when the
    model cannot take ``language`` (e.g. German on an English-only model).

    ``engine``: clasr's torch decoder or the same greedy decoding in CTranslate2
    (:mod:`clasr.engines`; ``compute_type`` float32, or int8 at some WER cost).

    In a multi-process run (:mod:`clasr.distributed`) every process must call this: each
    decodes every n-th batch (the batches are those of one process, so each utterance is
    decoded in the same batch and gets the same hypothesis), and every process gets all results.
    """
    limits = limits or DecodeLimits()
    model, tokenizer = bundle.model, bundle.tokenizer
    prompt_lang = prompt_language(model, tokenizer, language)
    detect = prompt_lang == AUTO
    collator = SpeechCollator(bundle.feature_extractor, tokenizer, bundle.window_frames,
                              language=None if detect else prompt_lang)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    decode = greedy_decoder(model, tokenizer, engine, compute_type)
    results: list[tuple[str, bool, str] | None] = [None] * len(utterances)
    batches = shard(duration_batches([u.duration for u in utterances], batch_size))
    with progress_bar() as progress:
        task = progress.add_task(
            description, total=sum(map(len, batches)), info="", visible=is_main_process()
        )
        for indices in batches:
            batch = [utterances[i] for i in indices]
            feats, _ = collator.features([load_utterance_audio(u) for u in batch])
            feats = feats.to(device, dtype=next(model.parameters()).dtype)
            languages = detect_language(model, feats, tokenizer) if detect else [prompt_lang or ENGLISH] * len(batch)
            for lang in dict.fromkeys(languages):
                rows = [k for k, row_lang in enumerate(languages) if row_lang == lang]
                decoded = decode(
                    feats[rows],
                    prompt_ids(tokenizer, lang) if detect else collator.prompt,
                    collator.eot,
                    [limits.budget(batch[k].duration) for k in rows],
                )
                for k, out in zip(rows, decoded):
                    text = tokenizer.decode(out.tokens, skip_special_tokens=True).strip()
                    results[indices[k]] = (text, out.hit_token_limit, lang)
            progress.advance(task, len(batch))
    model.train(was_training)
    for index, result in gather([(i, result) for i, result in enumerate(results) if result is not None]):
        results[index] = result
    return results  # type: ignore[return-value]


def evaluate(
    bundle,
    utterances: Sequence[Utterance],
    normalizer: str = "whisper_english",
    batch_size: int = 16,
    limits: DecodeLimits | None = None,
    description: str = "decoding",
    language: str = ENGLISH,
    metric: str = "wer",
    engine: Engine = DEFAULT_ENGINE,
    compute_type: ComputeType = "float32",
) -> EvalResult:
    """Transcribe (in ``language``, see :func:`transcribe`) and score ``utterances``; rates are
    corpus-level (summed errors / summed reference length), ``metric`` the set's headline rate."""
    start = time.perf_counter()
    hyps = transcribe(bundle, utterances, batch_size, limits, description, language, engine, compute_type)
    normalize = get_normalizer(normalizer)
    rows, scores = [], []
    for utt, (hyp, hit, hyp_language) in zip(utterances, hyps):
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
                "language": hyp_language,
                **score.to_dict(),
            }
        )
    return EvalResult(
        corpus_score(scores), rows, time.perf_counter() - start, bootstrap_ci(scores), metric, language,
        dict(Counter(row["language"] for row in rows)),
        resolved_engine(engine, next(bundle.model.parameters()).device, compute_type), compute_type,
    )


def write_hypotheses(path: str | Path, rows: Sequence[dict]) -> None:
    """One JSON object per utterance (reference, hypothesis, normalised texts, error counts), written atomically."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
