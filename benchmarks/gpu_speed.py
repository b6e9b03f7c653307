"""GPU throughput of clasr against the standard recipe: tiny.en, base and small, one run, one table.

    bash benchmarks/gpu.sh [--dry-run] [--no-install] [options below]
    PYTHONPATH=src python benchmarks/gpu_speed.py [--models tiny.en,base,small] [--tokenizer DIR ...]
        [--weights MODEL=DIR ...] [--data DIR ...] [--batch MODEL=N ...] [--json PATH] [--dry-run] [--smoke]

For each model, on the same real utterances, with bf16 autocast and transformers' default (SDPA)
attention:

- training: ``--warmup`` untimed optimizer steps, then ``--steps`` timed ones, at the model's batch
  (tiny.en 64, base 64, small 32) and the 30 s window: the standard recipe (transformers
  ``Seq2SeqTrainer`` with a peft LoRA r 8, α 16 on q/v, and with full fine-tuning, ``bf16=True``;
  :mod:`vs_recipe`), clasr's LoRA r 8 on q/v and clasr's full fine-tuning (``clasr.train.train_task``;
  :mod:`speed`). Per setting: median step seconds (batch loading included on both sides), utterances/s = batch / median step,
  the ratios to the recipe's LoRA and to the recipe's setting of the same kind, and the peak of
  ``torch.cuda.max_memory_allocated``. The recipe's log-mel features are built before training (as
  its ``dataset.map`` does); clasr computes them during training in ``--workers`` loader processes.
- evaluation of the same utterances with the model's weights in bfloat16, each engine after one
  untimed batch: transformers' ASR pipeline (greedy, batched) against clasr's torch greedy decoder
  (``clasr.evaluate.transcribe``, engine torch) and clasr's CTranslate2 engine where it loads (else
  the reason); also the log-mel features alone (clasr's collator, on the CPU), which both pay.

Weights: ``--weights MODEL=DIR`` (a local transformers checkpoint folder), else RANDOM weights at the
model's real architecture (:data:`ARCHITECTURES`), with the tokenizer, feature extractor and
generation settings of the ``--tokenizer`` folder of the same vocabulary (tiny.en's for tiny.en, a
multilingual one such as base's for base and small; weights are not needed there). Training speed
does not depend on the weights' values, decoding length does: with random weights every engine
decodes exactly ``--decode-tokens`` tokens per utterance (end-of-text suppressed; clasr's budget and
the pipeline's ``min_new_tokens`` = ``max_new_tokens`` = that number), and the table says so. With
real weights decoding is free (greedy; clasr's per-utterance budget, the pipeline's
``max_new_tokens`` 224) and the WER (Whisper English normalizer) is reported.

``--dry-run``: everything on the CPU with a tiny random Whisper (d_model 64, 2+2 layers) in place of
each model, in float32 (CPUs without native bf16 emulate it, ~5× slower), one thread, 1 warm-up and
1 timed step at batch 2, 4 utterances of examples/data, 4 decoded tokens: it checks the script end
to end and measures nothing.

``--smoke``: instead of measuring, ``clasr run`` end to end on the same device (a tiny random Whisper
with tiny.en's vocabulary; strategies ft, LoRA and IHR; two tasks of 2 steps each), one table of
runs and their errors (also in ``<json>-smoke.json``); gpu.sh runs it before the benchmark.

Output: progress lines on stderr, one Markdown table on stdout, the same rows with the conditions
as JSON in ``--json`` (written atomically after every row, so that a timeout keeps finished rows).
A setting that fails (e.g. out of memory) becomes a row with its error, and the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from accelerate.state import AcceleratorState
from pydantic import TypeAdapter
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizerFast,
)

import clasr.evaluate
from clasr.adapters import AdapterConfig
from clasr.atomic import write_json
from clasr.data.batching import SpeechCollator, duration_batches, load_utterance_audio
from clasr.data.manifest import Selection, read_dataset
from clasr.decoding import DecodeLimits, suppressed_ids
from clasr.metrics.text import get_normalizer
from clasr.metrics.wer import corpus_score, score_utterance
from clasr.models.language import is_multilingual, language_token_ids
from clasr.models.whisper import load_whisper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (benchmarks/speed.py: clasr's training steps)
import vs_recipe  # noqa: E402  (benchmarks/vs_recipe.py: the standard recipe's steps)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = [ROOT.parent / "shared" / "data" / "arctic_kathleen"]
DRY_RUN_DATA = [ROOT / "examples" / "data" / "arctic_kathleen_mini", ROOT / "examples" / "data" / "an4_mini"]
ENGLISH_VOCAB, MULTILINGUAL_VOCAB = 51864, 51865
COMMON = {"num_mel_bins": 80, "max_source_positions": 1500, "max_target_positions": 448}


def _dims(d_model: int, layers: int, heads: int, ffn: int, vocab: int) -> dict:
    return {"d_model": d_model, "encoder_layers": layers, "decoder_layers": layers, "encoder_attention_heads": heads,
            "decoder_attention_heads": heads, "encoder_ffn_dim": ffn, "decoder_ffn_dim": ffn, "vocab_size": vocab}


ARCHITECTURES = {  # OpenAI's Whisper sizes
    "tiny.en": _dims(384, 4, 6, 1536, ENGLISH_VOCAB),
    "base": _dims(512, 6, 8, 2048, MULTILINGUAL_VOCAB),
    "small": _dims(768, 12, 12, 3072, MULTILINGUAL_VOCAB),
}
DRY_RUN_DIMS = {k: v for k, v in _dims(64, 2, 4, 128, 0).items() if k != "vocab_size"}
DEFAULT_BATCH = {"tiny.en": 64, "base": 64, "small": 32}
LORA = TypeAdapter(AdapterConfig).validate_python({"type": "lora", **vs_recipe.LORA})
PIPELINE = "transformers pipeline"
PIPELINE_MAX_NEW_TOKENS = DecodeLimits().max_new_tokens


def log(message: str) -> None:
    print(f"[gpu_speed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- models


def tokenizer_folders(folders: list[Path]) -> dict[int, Path]:
    """Vocabulary size → the ``--tokenizer`` folder that has it (read from its config.json)."""
    found = {}
    for folder in folders:
        config = folder / "config.json"
        if not config.is_file():
            raise SystemExit(f"--tokenizer {folder}: no config.json there; give a Whisper checkpoint folder "
                             "(config.json, tokenizer.json, tokenizer_config.json, generation_config.json, "
                             "preprocessor_config.json; the weights are not needed)")
        found[json.loads(config.read_text())["vocab_size"]] = folder
    return found


def random_checkpoint(name: str, dims: dict, tokenizer_dir: Path, out: Path, device: torch.device) -> Path:
    """A transformers folder with RANDOM weights (seed 0) of ``dims``, and the tokenizer, feature
    extractor and generation settings of ``tokenizer_dir``."""
    config = WhisperConfig.from_pretrained(tokenizer_dir, local_files_only=True)
    for key, value in {**dims, **COMMON}.items():
        setattr(config, key, value)
    tokenizer = WhisperTokenizerFast.from_pretrained(tokenizer_dir, local_files_only=True)
    if len(tokenizer) != config.vocab_size:
        raise SystemExit(f"--tokenizer {tokenizer_dir}: {len(tokenizer)} tokens, {name} needs {config.vocab_size}")
    torch.manual_seed(0)
    with torch.device(device):
        model = WhisperForConditionalGeneration(config)
    model.generation_config = generation_config(tokenizer_dir, config, tokenizer)
    folder = out / f"random-{name}"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    feature_extractor = (WhisperFeatureExtractor.from_pretrained(tokenizer_dir, local_files_only=True)
                         if (tokenizer_dir / "preprocessor_config.json").is_file()
                         else WhisperFeatureExtractor(feature_size=config.num_mel_bins))
    feature_extractor.save_pretrained(folder)
    return folder


def generation_config(tokenizer_dir: Path, config: WhisperConfig, tokenizer) -> GenerationConfig:
    """The folder's generation settings, with alignment heads that exist in ``config`` (the upper
    half of the decoder's layers) and, for a multilingual vocabulary, the language and task ids
    the pipeline needs to be told ``language="en"`` (older configs lack them)."""
    path = tokenizer_dir / "generation_config.json"
    gen = GenerationConfig.from_pretrained(tokenizer_dir) if path.is_file() else GenerationConfig.from_model_config(config)
    layers = range(config.decoder_layers // 2, config.decoder_layers)
    gen.alignment_heads = [[layer, head] for layer in layers for head in range(config.decoder_attention_heads)]
    if config.vocab_size > ENGLISH_VOCAB:
        gen.is_multilingual = True
        if not getattr(gen, "lang_to_id", None):
            gen.lang_to_id = {f"<|{code}|>": i for code, i in language_token_ids(tokenizer).items()}
        if not getattr(gen, "task_to_id", None):
            gen.task_to_id = {task: tokenizer.convert_tokens_to_ids(f"<|{task}|>") for task in ("transcribe", "translate")}
    return gen


def dry_run_tokenizers(out: Path) -> list[Path]:
    """Checkpoint folders of clasr's tiny random test Whispers (English-only and multilingual), whose
    tokenizers and settings stand in for real ones in a dry run."""
    from clasr.models.whisper import tiny_random_multilingual_whisper, tiny_random_whisper

    folders = []
    for kind, make in (("english", tiny_random_whisper), ("multilingual", tiny_random_multilingual_whisper)):
        bundle = make(seed=0)
        folder = out / f"tokenizer-{kind}"
        bundle.model.config.save_pretrained(folder)
        bundle.model.generation_config.save_pretrained(folder)
        bundle.tokenizer.save_pretrained(folder)
        bundle.feature_extractor.save_pretrained(folder)
        folders.append(folder)
    return folders


# ---------------------------------------------------------------- measuring


def on_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def fresh(device: torch.device):
    """A clean start for one setting: memory of the last freed, the peak counter reset, and
    Accelerate's process-wide state forgotten (the recipe's Trainer sets it to bf16, which a later
    ``Accelerator()`` would otherwise inherit). Yields a dict that gets ``peak_gb``."""
    gc.collect()
    AcceleratorState._reset_state(reset_partial_state=True)
    record: dict = {"peak_gb": None}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        yield record
    finally:
        if device.type == "cuda":
            record["peak_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)


def training_rows(name: str, folder: Path, utterances, batch: int, args, device: torch.device, record) -> None:
    """The recipe's LoRA and full fine-tuning, then clasr's; each ``record``-ed with its ratio to the
    recipe's LoRA (``ratio``) and to the recipe's setting of the same kind (``ratio_same_kind``)."""
    path, bf16, clasr_data = str(folder), args.bf16, {"warmup": args.warmup, "num_workers": args.workers}
    # The recipe's features are built before training, as its dataset.map does; loader workers would only be
    # forked again every epoch (the Trainer makes a new DataLoader per epoch) to stack ready tensors.
    recipe_data = {"warmup": args.warmup, "num_workers": 0, "precompute": True}
    settings = {
        "recipe LoRA": lambda: vs_recipe.recipe_step_seconds(
            path, utterances, args.steps, batch, bf16, args.out / "recipe", lora=True, **recipe_data),
        "recipe full fine-tuning": lambda: vs_recipe.recipe_step_seconds(
            path, utterances, args.steps, batch, bf16, args.out / "recipe", lora=False, **recipe_data),
        "clasr LoRA": lambda: speed.adapter_step(path, utterances, args.steps, LORA, batch, bf16=bf16, **clasr_data)[1],
        "clasr full fine-tuning": lambda: speed.step_seconds(path, utterances, args.steps, bf16, batch, **clasr_data),
    }
    rates: dict[str, float] = {}
    for setting, run in settings.items():
        row = {"stage": "train", "setting": setting, "batch": batch}
        log(f"{name}: training, {setting}, batch {batch}, {args.warmup} + {args.steps} steps")
        with fresh(device) as memory:
            try:
                seconds = run()
                rates[setting] = rate = batch / seconds
                same_kind = "recipe LoRA" if "LoRA" in setting else "recipe full fine-tuning"
                row.update(seconds=round(seconds, 4), utt_per_s=round(rate, 2),
                           ratio=ratio(rate, rates.get("recipe LoRA")),
                           ratio_same_kind=ratio(rate, rates.get(same_kind)))
            except Exception as error:  # noqa: BLE001 (one failed setting, e.g. out of memory, must not end the run)
                row["error"] = failure(error)
        record({**row, **memory})


def ratio(rate: float, baseline: float | None) -> float | None:
    return round(rate / baseline, 2) if baseline else None


def failure(error: Exception) -> str:
    log("".join(traceback.format_exception(error)[-3:]).rstrip())
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]


@contextlib.contextmanager
def counted_tokens(counts: list[int]):
    """clasr's greedy decoders, each decoded row's token count appended to ``counts``."""
    original = clasr.evaluate.greedy_decoder

    def counting(*args, **kwargs):
        decode = original(*args, **kwargs)

        def decode_and_count(*call_args):
            rows = decode(*call_args)
            counts.extend(len(row.tokens) for row in rows)
            return rows

        return decode_and_count

    clasr.evaluate.greedy_decoder = counting
    try:
        yield
    finally:
        clasr.evaluate.greedy_decoder = original


def timed(device: torch.device, run):
    on_device(device)
    start = time.perf_counter()
    result = run()
    on_device(device)
    return result, time.perf_counter() - start


def clasr_engine(bundle, utterances, batch: int, limits: DecodeLimits, engine: str, compute_type: str, device):
    """(hypotheses, seconds, token counts) of clasr's ``transcribe`` with ``engine``, after one untimed batch."""
    counts: list[int] = []
    transcribe = lambda utts: clasr.evaluate.transcribe(  # noqa: E731
        bundle, utts, batch, limits, description=engine, engine=engine, compute_type=compute_type)
    transcribe(utterances[:batch])
    with counted_tokens(counts):
        rows, seconds = timed(device, lambda: transcribe(utterances))
    return [row[0] for row in rows], seconds, counts


def pipeline_engine(bundle, audios, batch: int, fixed_tokens: int | None, device):
    """(hypotheses, seconds, token counts) of transformers' ASR pipeline, greedy, after one untimed
    batch; clasr's suppression rules; ``fixed_tokens``: exactly that many tokens per utterance."""
    from transformers import pipeline

    model, tokenizer = bundle.model, bundle.tokenizer
    asr = pipeline("automatic-speech-recognition", model=model, tokenizer=tokenizer,
                   feature_extractor=bundle.feature_extractor, device=device)
    eot = tokenizer.eos_token_id
    asr.tokenizer.pad_token_id = eot  # the pipeline batches only with a pad token (Whisper pads with end-of-text)
    kwargs = {"num_beams": 1, "do_sample": False, "max_new_tokens": fixed_tokens or PIPELINE_MAX_NEW_TOKENS,
              "suppress_tokens": suppressed_ids(model, eot, first_step=False)}
    if fixed_tokens:
        kwargs["min_new_tokens"] = fixed_tokens
    if is_multilingual(model):
        kwargs.update(language="en", task="transcribe")
    counts: list[int] = []
    generate = model.generate

    def counting_generate(*args, **generate_kwargs):
        out = generate(*args, **generate_kwargs)
        sequences = out if torch.is_tensor(out) else out["sequences"]
        counts.extend(int((row < eot).sum()) for row in sequences)  # text tokens: the prompt's are all above eot
        return out

    inputs = lambda part: [{"raw": a, "sampling_rate": 16_000} for a in part]  # noqa: E731 (consumed by the pipeline)
    asr(inputs(audios[:batch]), batch_size=batch, generate_kwargs=kwargs)
    model.generate = counting_generate
    try:
        out, seconds = timed(device, lambda: asr(inputs(audios), batch_size=batch, generate_kwargs=kwargs))
    finally:
        del model.generate
    return [o["text"].strip() for o in out], seconds, counts


def features_seconds(bundle, utterances, batch: int) -> float:
    """Seconds to load the audio and compute clasr's log-mel features of every utterance (CPU)."""
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    start = time.perf_counter()
    for indices in duration_batches([u.duration for u in utterances], batch):
        collator.features([load_utterance_audio(utterances[i]) for i in indices])
    return time.perf_counter() - start


def evaluation_rows(name: str, folder: Path, utterances, batch: int, fixed_tokens: int | None, args, device,
                    record) -> str:
    """Pipeline, clasr torch, clasr CTranslate2 and the features alone, each ``record``-ed with its
    ratio to the pipeline; returns the attention implementation the model loaded with."""
    bundle = load_whisper(str(folder))
    bundle.model.to(device, torch.bfloat16 if args.bf16 else torch.float32)
    if fixed_tokens:  # random weights: end-of-text may never be chosen, every row runs to the budget
        gen = bundle.model.generation_config
        gen.suppress_tokens = sorted(set(gen.suppress_tokens or []) | {bundle.tokenizer.eos_token_id})
        limits = DecodeLimits(extra_tokens=fixed_tokens, max_new_tokens=fixed_tokens)
    else:
        limits = DecodeLimits()
    audios = [load_utterance_audio(u) for u in utterances]
    normalize = get_normalizer("whisper_english")
    ct2_type = ("bfloat16" if args.bf16 else "float32") if device.type == "cuda" else "float32"
    engines = {
        PIPELINE: lambda: pipeline_engine(bundle, audios, batch, fixed_tokens, device),
        "clasr torch greedy": lambda: clasr_engine(bundle, utterances, batch, limits, "torch", "float32", device),
        f"clasr CTranslate2 ({ct2_type})": lambda: clasr_engine(
            bundle, utterances, batch, limits, "ctranslate2", ct2_type, device),
    }
    baseline = None
    for engine, run in engines.items():
        row = {"stage": "eval", "setting": engine, "batch": batch}
        log(f"{name}: evaluation, {engine}, {len(utterances)} utterances, batch {batch}")
        with fresh(device) as memory:
            try:
                hypotheses, seconds, counts = run()
                rate = len(utterances) / seconds
                baseline = rate if engine == PIPELINE else baseline
                row.update(seconds=round(seconds, 3), utt_per_s=round(rate, 2), ratio=ratio(rate, baseline),
                           rows_decoded=len(counts), tokens_min=min(counts), tokens_max=max(counts),
                           tokens_mean=round(statistics.mean(counts), 1))
                if not fixed_tokens:
                    scores = [score_utterance(u.text, h, normalize)[0] for u, h in zip(utterances, hypotheses)]
                    row["wer"] = round(100 * corpus_score(scores).wer, 2)
            except Exception as error:  # noqa: BLE001 (CTranslate2 is expected to be missing on CUDA 13)
                row["error"] = ("not available: " if "CTranslate2" in engine else "") + failure(error)
        record({**row, **memory})
    seconds = features_seconds(bundle, utterances, batch)
    rate = len(utterances) / seconds
    record({"stage": "eval", "setting": "log-mel features alone (CPU)", "batch": batch, "seconds": round(seconds, 3),
            "utt_per_s": round(rate, 2), "ratio": ratio(rate, baseline), "peak_gb": None})
    return bundle.model.config._attn_implementation


SMOKE_TIMEOUT = 300  # seconds for one smoke run (a GPU run takes well under one minute)
SMOKE_STRATEGIES = {  # config additions per run: plain fine-tuning, a LoRA adapter, IHR (curvature and merge)
    "ft": {},
    "lora": {"adapter": {"type": "lora", "r": 8, "alpha": 16.0}},
    "ihr": {"strategy": {"name": "ihr", "curvature_batches": 1, "curvature_batch_size": 2}},
}


def smoke_config(model: Path, strategy: dict, engine: str) -> dict:
    """A two-task ``clasr run`` on the bundled mini sets: 4 training and 2 test utterances a task,
    2 optimizer steps, a 2-utterance general set; bf16 where the device has it natively."""
    data = ROOT / "examples" / "data"
    return {
        "name": "gpu_smoke", "seed": 0, "model": {"name": str(model), "window_seconds": 30},
        "strategy": {"name": "ft"},
        "train": {"learning_rate": 1e-4, "epochs": 1, "max_steps": 2, "batch_size": 2, "warmup_ratio": 0.0,
                  "bf16": "auto"},
        "evaluation": {"batch_size": 2, "limits": {"max_new_tokens": 8}, "engine": engine},
        "tasks": [
            {"name": "an4", "data": str(data / "an4_mini"), "lowercase_targets": True,
             "train": {"split": "train", "max_utterances": 4}, "test": {"split": "test", "max_utterances": 2}},
            {"name": "arctic", "data": str(data / "arctic_kathleen_mini"),
             "train": {"split": "train", "max_utterances": 4}, "test": {"split": "test", "max_utterances": 2}},
        ],
        "general": [{"name": "arctic_general", "data": str(data / "arctic_kathleen_mini"),
                     "test": {"split": "test", "skip": 10, "max_utterances": 2}}],
        **strategy,
    }


def smoke(args, device: torch.device) -> list[dict]:
    """``clasr run`` end to end, one process per strategy of :data:`SMOKE_STRATEGIES`, on a tiny random
    Whisper with tiny.en's vocabulary: Accelerate trains on the GPU where there is one, so device
    mismatches anywhere in training, curvature, merging or evaluation fail here. A row per run:
    seconds, and the error's last lines when it failed."""
    import yaml

    tokenizers = tokenizer_folders(args.tokenizer or dry_run_tokenizers(args.out))
    if ENGLISH_VOCAB not in tokenizers:
        raise SystemExit(f"--smoke needs tiny.en's --tokenizer folder (vocabulary {ENGLISH_VOCAB})")
    model = random_checkpoint("smoke", {**DRY_RUN_DIMS, "vocab_size": ENGLISH_VOCAB}, tokenizers[ENGLISH_VOCAB],
                              args.out, device)
    engine = "auto" if device.type == "cuda" else "torch"  # on a GPU, auto must resolve to torch by itself
    rows = []
    for name, strategy in SMOKE_STRATEGIES.items():
        config = args.out / f"smoke-{name}.yaml"
        config.write_text(yaml.safe_dump(smoke_config(model, strategy, engine), sort_keys=False))
        log(f"smoke: clasr run, strategy {name}, on {device.type}")
        start = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-m", "clasr", "run", str(config), "--output", str(args.out / name)],
                                  capture_output=True, text=True, timeout=SMOKE_TIMEOUT)
        except subprocess.TimeoutExpired as error:
            done = subprocess.CompletedProcess(error.cmd, "timeout", "", f"no end after {SMOKE_TIMEOUT} s")
        row = {"stage": "smoke", "setting": f"clasr run --strategy {name}", "seconds": round(time.perf_counter() - start, 1)}
        if done.returncode != 0 or not (args.out / name / "matrix.json").is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-4:]
            row["error"] = f"exit {done.returncode}: " + " / ".join(tail)
            log(f"smoke {name} failed:\n" + (done.stderr or done.stdout)[-4000:])
        rows.append(row)
        if args.json:
            write_json(args.json.with_name(f"{args.json.stem}-smoke.json"), {"device": device.type, "rows": rows})
    return rows


# ---------------------------------------------------------------- output


COLUMNS = ("model", "weights", "stage", "setting", "batch", "seconds", "utt/s", "ratio", "× recipe same kind",
           "peak GB", "tokens/utt", "WER %", "error")


def cells(row: dict) -> list[str]:
    tokens = ""
    if "tokens_min" in row:
        tokens = (f"{row['tokens_min']}" if row["tokens_min"] == row["tokens_max"]
                  else f"{row['tokens_min']}–{row['tokens_max']} (mean {row['tokens_mean']})")
    values = [row["model"], row["weights"], row["stage"], row["setting"], row["batch"], row.get("seconds"),
              row.get("utt_per_s"), row.get("ratio"), row.get("ratio_same_kind"), row.get("peak_gb"), tokens,
              row.get("wer"), row.get("error")]
    return ["" if v is None else str(v).replace("|", "/") for v in values]


def table(meta: dict, rows: list[dict]) -> str:
    precision = "bf16 autocast (training), bf16 weights (evaluation)" if meta["bf16"] else "float32"
    lines = [
        f"GPU benchmark — {meta['device']}; torch {meta['torch']}, transformers {meta['transformers']}, "
        f"peft {meta['peft']}; attention {meta['attention']}; {precision}; {meta['warmup']} warm-up + "
        f"{meta['steps']} timed steps; {meta['utterances']} utterances ({', '.join(meta['data'])}); "
        f"{meta['workers']} data workers" + ("; DRY RUN (tiny random models, CPU): checks the script, measures nothing"
                                             if meta["dry_run"] else ""),
        "train seconds: median step; eval seconds: all utterances. ratio: against the recipe's LoRA (train) / the "
        "pipeline (eval) of the same model; × recipe same kind: LoRA against LoRA, full against full. tokens/utt: "
        "generated per utterance" + (f"; random weights decode exactly {meta['decode_tokens']} (fixed length)"
                                     if meta["decode_tokens"] else ""),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def versions() -> dict:
    import accelerate
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "accelerate": accelerate.__version__, "python": sys.version.split()[0]}


# ---------------------------------------------------------------- main


def pairs(values: list[str], option: str) -> dict[str, str]:
    """``MODEL=VALUE`` options → {model: value}; an error naming the option otherwise."""
    out = {}
    for value in values:
        model, sep, rest = value.partition("=")
        if not sep or model not in ARCHITECTURES or not rest:
            raise SystemExit(f"{option} {value!r}: expected MODEL=VALUE with MODEL one of {', '.join(ARCHITECTURES)}")
        out[model] = rest
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ARCHITECTURES), help="comma-separated, of " + ", ".join(ARCHITECTURES))
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=DIR", help="real weights of a model")
    parser.add_argument("--tokenizer", action="append", default=[], type=Path, metavar="DIR",
                        help="checkpoint folder whose tokenizer/settings random models of its vocabulary take (repeat)")
    parser.add_argument("--data", nargs="+", type=Path, help="clasr data folders (default ../shared/data/arctic_kathleen)")
    parser.add_argument("--utterances", type=int, help="utterances used (default 128; dry run 4)")
    parser.add_argument("--batch", action="append", default=[], metavar="MODEL=N",
                        help="training batch of a model (default tiny.en=64, base=64, small=32; dry run 2)")
    parser.add_argument("--eval-batch", type=int, help="evaluation batch (default: the model's training batch)")
    parser.add_argument("--warmup", type=int, help="untimed training steps (default 3; dry run 1)")
    parser.add_argument("--steps", type=int, help="timed training steps (default 10; dry run 1)")
    parser.add_argument("--decode-tokens", type=int, help="tokens per utterance with random weights (default 24; dry run 4)")
    parser.add_argument("--workers", type=int, help="clasr's data loader processes (default 8; dry run 0)")
    parser.add_argument("--json", type=Path, help="write the rows and conditions here (after every row)")
    parser.add_argument("--out", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--dry-run", action="store_true", help="tiny random model on the CPU, to check the script")
    parser.add_argument("--smoke", action="store_true",
                        help="only run `clasr run` end to end (ft, lora, ihr; tiny random model) on the device")
    args = parser.parse_args(argv)
    dry = args.dry_run
    args.bf16 = not dry  # this CPU (like CI's) has no native bf16: emulated, it is ~5x slower than float32
    defaults = {"utterances": 4 if dry else 128, "warmup": 1 if dry else 3, "steps": 1 if dry else 10,
                "decode_tokens": 4 if dry else 24, "workers": 0 if dry else 8,
                "data": DRY_RUN_DATA if dry else DEFAULT_DATA}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in ARCHITECTURES]
    if unknown or not args.models:
        raise SystemExit(f"--models: unknown {unknown}; choose from {', '.join(ARCHITECTURES)}")
    args.weights = {m: Path(d) for m, d in pairs(args.weights, "--weights").items()}
    batches = {**({m: 2 for m in ARCHITECTURES} if dry else DEFAULT_BATCH), **pairs(args.batch, "--batch")}
    try:
        args.batch = {m: int(n) for m, n in batches.items()}
    except ValueError as error:
        raise SystemExit(f"--batch: {error}") from None
    for key in ("utterances", "warmup", "steps", "decode_tokens", "workers", "eval_batch"):
        value = getattr(args, key)
        if value is not None and value < (0 if key in ("warmup", "workers") else 1):
            raise SystemExit(f"--{key.replace('_', '-')} must be ≥ {0 if key in ('warmup', 'workers') else 1}, got {value}")
    return args


def read_utterances(folders: list[Path], count: int):
    """The first ``count`` utterances (≤ 30 s) of the folders, in order."""
    utterances = []
    for folder in folders:
        found, _ = read_dataset(folder, Selection(max_duration=30.0))
        utterances += found
    if not utterances:
        raise SystemExit(f"no utterances in {', '.join(map(str, folders))}")
    return utterances[:count]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device("cpu" if args.dry_run or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.dry_run:
        log("WARNING: no CUDA device; measuring on the CPU (slow). Use --dry-run to only check the script.")
    if args.dry_run:
        torch.set_num_threads(1)  # tiny tensors: more threads only contend with the machine's other work
    log(f"device {device}" + (f" ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"
                              if device.type == "cuda" else "") + f", torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="clasr-gpu-") as scratch:
        args.out = args.out or Path(scratch)
        if args.smoke:
            rows = smoke(args, device)
            print(f"Smoke test — clasr run on {device.type}" + (f" ({torch.cuda.get_device_name(device)})"
                  if device.type == "cuda" else "") + "\n\n| strategy | seconds | result |\n|---|---|---|")
            print("\n".join(f"| {r['setting']} | {r['seconds']} | {r.get('error', 'ok')} |" for r in rows), flush=True)
            raise SystemExit(1 if any("error" in r for r in rows) else 0)
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer's own prints; stdout gets the table only
            meta, rows = run(args, device)
    print(table(meta, rows), flush=True)


def model_folders(args, device: torch.device) -> dict[str, tuple[Path, str]]:
    """Model → (checkpoint folder, what its weights are); random ones are built into ``args.out``.
    Every model is checked before any is built, so that a missing tokenizer fails at once."""
    missing = [(m, d) for m, d in args.weights.items() if not (d / "config.json").is_file()]
    if missing:
        raise SystemExit(f"--weights: no config.json in {', '.join(f'{m}={d}' for m, d in missing)}")
    random_models = [m for m in args.models if m not in args.weights]
    tokenizers = {}
    if random_models:
        tokenizers = tokenizer_folders(args.tokenizer or (dry_run_tokenizers(args.out) if args.dry_run else []))
    for name in random_models:
        vocab = ARCHITECTURES[name]["vocab_size"]
        if vocab not in tokenizers:
            raise SystemExit(f"{name} with random weights needs a --tokenizer folder of vocabulary {vocab} "
                             f"({'tiny.en' if vocab == ENGLISH_VOCAB else 'base'}'s); given: {sorted(tokenizers)}")
    folders = {}
    for name in args.models:
        if name in args.weights:
            folders[name] = (args.weights[name], f"real ({args.weights[name].name})")
            continue
        vocab = ARCHITECTURES[name]["vocab_size"]
        dims = {**DRY_RUN_DIMS, "vocab_size": vocab} if args.dry_run else ARCHITECTURES[name]
        log(f"{name}: building random weights {dims}")
        folders[name] = (random_checkpoint(name, dims, tokenizers[vocab], args.out, device),
                         "random" + (" (dry-run dims)" if args.dry_run else ""))
    return folders


def run(args, device: torch.device) -> tuple[dict, list[dict]]:
    """Every model's rows; the JSON file is rewritten after each."""
    utterances = read_utterances(args.data, args.utterances)
    for name in args.models:
        if args.batch[name] > len(utterances):
            raise SystemExit(f"--batch {name}={args.batch[name]} is larger than the {len(utterances)} utterances")
    meta = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "cuda": torch.version.cuda,
        **versions(),
        "attention": None, "bf16": args.bf16, "warmup": args.warmup, "steps": args.steps,
        "utterances": len(utterances), "data": [str(d) for d in args.data], "workers": args.workers,
        "batch": {m: args.batch[m] for m in args.models}, "eval_batch": args.eval_batch, "dry_run": args.dry_run,
        "decode_tokens": args.decode_tokens if len(args.weights) < len(args.models) else None,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    rows: list[dict] = []
    for name, (folder, weights) in model_folders(args, device).items():
        def record(row: dict) -> None:
            rows.append({"model": name, "weights": weights, **row})
            log("row " + json.dumps(rows[-1], ensure_ascii=False))
            if args.json:
                write_json(args.json, {"meta": meta, "rows": rows})

        batch = args.batch[name]
        train_pool = utterances[: len(utterances) // batch * batch]  # whole batches only: every step has `batch`
        training_rows(name, folder, train_pool, batch, args, device, record)
        fixed = None if name in args.weights else args.decode_tokens
        meta["attention"] = evaluation_rows(name, folder, utterances, args.eval_batch or batch, fixed, args, device,
                                            record)
    if args.json:
        write_json(args.json, {"meta": meta, "rows": rows})
    return meta, rows


if __name__ == "__main__":
    main()
