"""The command line: ``clasr run``, ``clasr eval``, ``clasr show`` (thin: parse, call, print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clasr.data.audio import AudioError
from clasr.data.manifest import DataError, Selection
from clasr.printable import printable
from clasr.progress import console

stdout = Console()  # results (tables, JSON); logs and progress go to stderr

app = typer.Typer(
    help="clasr — continual learning for speech recognition: adapt Whisper domain after domain without forgetting.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {escape(printable(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


class _ListedSeeds(typer.core.TyperCommand):
    """A command whose ``--seeds`` takes a list: ``--seeds 0 1 2`` reads as
    ``--seeds 0 --seeds 1 --seeds 2`` (the integers right after the option)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        expanded, index = [], 0
        while index < len(args):
            arg, index = args[index], index + 1
            if arg != "--seeds":
                expanded.append(arg)
                continue
            values = []
            while index < len(args) and args[index].isdigit():
                values, index = [*values, args[index]], index + 1
            expanded += [item for value in values for item in ("--seeds", value)] if values else ["--seeds"]
        return super().parse_args(ctx, expanded)


def _run_faults() -> tuple[type[Exception], ...]:
    """What a run can end with that is the user's to fix (a message, no traceback)."""
    from clasr.distributed import ShardedParametersError
    from clasr.experiment.checkpoint import CheckpointError
    from clasr.experiment.lock import OutputFolderError, RunLockedError
    from clasr.train import TrainingDivergedError

    faults = CheckpointError, RunLockedError, OutputFolderError, TrainingDivergedError, ShardedParametersError
    return *faults, OSError  # OSError: disk full, …


def _report_bad_row(bad) -> None:
    console.print(f"[yellow]skipped[/] {escape(str(bad))}", highlight=False, soft_wrap=True)  # str(): escaped


def _bad_counts(bad_rows) -> dict[str, int]:
    counts: dict[str, int] = {}
    for bad in bad_rows:
        counts[bad.reason] = counts.get(bad.reason, 0) + 1
    return counts


def _parse_set(items: list[str]) -> dict:
    """``key.path=value`` pairs; values are read as YAML (numbers, booleans, lists, mappings)."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. train.learning_rate=3e-5")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


@app.command(cls=_ListedSeeds)
def run(
    config: Path = typer.Argument(..., help="experiment YAML (see examples/)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="results directory (overrides output_dir)"),
    strategy: Optional[str] = typer.Option(
        None,
        help="strategy name, e.g. ft, fta, ihr (a wrong name lists them all); replaces the config's strategy and "
        "its options, unless it is the same name",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="override one config key: --set train.learning_rate=1e-3 --set adapter.type=lora"
    ),
    foundation_from: Optional[Path] = typer.Option(
        None,
        help="reuse row 0 (the foundation model's scores) of another results directory run with the same "
        "model, evaluation and sets, instead of scoring it again",
    ),
    seeds: Optional[list[int]] = typer.Option(
        None, "--seeds", help="run once per seed (--seeds 0 1 2) into OUTPUT/seed<k>/, sharing the foundation row, "
        "and write the mean over seeds with its intervals into OUTPUT/",
    ),
    processes: int = typer.Option(
        1, "--processes", min=1, help="processes on this machine (one per GPU, or per CPU core), started with "
        "accelerate launch; several machines: see the README, 'Multi-GPU and multi-node'",
    ),
) -> None:
    """Run a continual-learning experiment: evaluate the foundation model, then train and evaluate
    task after task. Re-running on the same output directory resumes after the last finished task."""
    if processes > 1:
        _relaunch(processes)
    from clasr.distributed import is_main_process
    from clasr.experiment.config import ConfigError, load_config
    from clasr.experiment.seeds import run_seeds, run_single
    from clasr.models.errors import ModelError
    from clasr.report.results import read_results
    from clasr.report.show import matrix_table, metrics_table

    overrides = _parse_set(set_)
    if output is not None:
        overrides["output_dir"] = str(output)
    try:
        experiment = load_config(config, overrides, strategy)
        if seeds:
            run_seeds(experiment, seeds, foundation_from)
        else:
            run_single(experiment, foundation_from)
    except (ConfigError, DataError, ModelError, AudioError, *_run_faults()) as error:
        _fail(str(error))
    if not is_main_process():  # one process prints the tables
        return
    matrix, metrics = read_results(experiment.output_dir)
    stdout.print(matrix_table(matrix))
    stdout.print(metrics_table(metrics))
    console.print(f"results in {experiment.output_dir}")


def _relaunch(processes: int) -> None:
    """``clasr run … --processes N``: this same command as N processes under ``accelerate launch``."""
    import subprocess
    import sys

    from clasr.distributed import launch_command, launched

    if launched():
        _fail("--processes starts the processes itself; under accelerate launch or torchrun leave it out")
    arguments = sys.argv[1:]
    for i, arg in enumerate(arguments):
        if arg == "--processes" or arg.startswith("--processes="):
            del arguments[i : i + (2 if arg == "--processes" else 1)]
            break
    raise typer.Exit(code=subprocess.call(launch_command(processes, ["-m", "clasr", *arguments])))


@app.command("eval")
def eval_command(
    model: str = typer.Option("tiny.en", help="built-in model name or local transformers Whisper folder"),
    data: Path = typer.Option(..., help="dataset folder with metadata.jsonl or metadata.csv"),
    split: Optional[str] = typer.Option("test", help="split to score (empty string: every row)"),
    max_utterances: Optional[int] = typer.Option(None, min=1, help="score only the first N selected utterances"),
    normalizer: Optional[str] = typer.Option(
        None, help="text normalizer before scoring (default: whisper_english for English, whisper_basic otherwise)"
    ),
    language: str = typer.Option(
        "en", help="ISO code forced in the decoding prompt (de, zh, …), or auto: detected per utterance"
    ),
    metric: Optional[str] = typer.Option(
        None, help="headline rate: wer, cer, cer_nospace or mer (default: cer_nospace for zh, ja, th, …, else wer)"
    ),
    batch_size: int = typer.Option(16, min=1, help="utterances decoded together"),
    window_seconds: Optional[float] = typer.Option(
        None, min=0.02, max=30.0, help="encoder window in seconds (default: the model's own; 30 = Whisper's)"
    ),
    hypotheses: Optional[Path] = typer.Option(None, help="write per-utterance results to this JSONL file"),
    engine: str = typer.Option("auto", help="auto (ctranslate2 on a CPU, torch on a GPU), ctranslate2 or torch"),
    compute_type: str = typer.Option("float32", help="ctranslate2 only: float32, or int8 (faster, costs WER)"),
) -> None:
    """Transcribe a dataset with greedy decoding and print WER / CER (and the set's metric, the
    languages decoded)."""
    from clasr.evaluate import evaluate, write_hypotheses
    from clasr.data.manifest import read_dataset
    from clasr.data.screen import screen_utterances
    from clasr.metrics.text import default_normalizer, get_normalizer
    from clasr.metrics.wer import check_metric, default_metric
    from clasr.models.errors import ModelError
    from clasr.models.language import check_language_code
    from clasr.models.whisper import FRAMES_PER_SECOND, load_whisper

    try:
        check_language_code(language)
        normalizer = normalizer or default_normalizer(language)
        metric = check_metric(metric or default_metric(language))
        get_normalizer(normalizer)
        bundle = load_whisper(model, window_seconds)
        window = bundle.window_frames / FRAMES_PER_SECOND
        selection = Selection(split=split or None, max_utterances=max_utterances, max_duration=window)
        utterances, report = read_dataset(data, selection)
        utterances, undecodable = screen_utterances(utterances, report.source, on_bad_row=_report_bad_row)
        if report.bad_rows or undecodable:
            console.print(f"[yellow]skipped rows by reason:[/] {_bad_counts([*report.bad_rows, *undecodable])}")
        if not utterances:
            raise DataError(f"{data}: no utterance of the selection decodes")
        result = evaluate(
            bundle, utterances, normalizer, batch_size, language=language, metric=metric,
            engine=engine, compute_type=compute_type,
        )
    except (DataError, ModelError, AudioError, ValueError) as error:
        _fail(str(error))
    from clasr.distributed import is_main_process

    if not is_main_process():  # under a launcher every process decodes its share; one writes and prints
        return
    if hypotheses is not None:
        write_hypotheses(hypotheses, result.rows)
    stdout.print_json(json.dumps({"data": str(data), "split": split, **result.summary()}))


@app.command()
def export(
    results: Path = typer.Argument(..., help="results directory of `clasr run` (its model/ is exported)"),
    format: str = typer.Option("ct2", "--format", help="ct2: a CTranslate2 Whisper folder (faster-whisper)"),
    output: Path = typer.Option(..., "--output", help="folder to write (replaced whole if it exists)"),
    dtype: str = typer.Option("float32", help="weights as float32 (exact) or float16 (half the size)"),
) -> None:
    """Export the adapted model of a run for deployment (CTranslate2 / faster-whisper)."""
    from clasr.models.deploy import export_ct2
    from clasr.models.errors import ModelError

    if format != "ct2":
        _fail(f"--format {format!r}: only ct2 is supported")
    model_dir = results / "model" if (results / "model").is_dir() else results
    try:
        export_ct2(model_dir, output, dtype)
    except (ModelError, OSError) as error:
        _fail(f"{results}: {error}")
    console.print(f"CTranslate2 model written to {output} (ctranslate2.models.Whisper or faster_whisper.WhisperModel)")


@app.command()
def show(
    results: Path = typer.Argument(..., help="results directory of `clasr run`"),
    markdown: bool = typer.Option(False, "--markdown", help="Markdown tables instead of terminal tables"),
) -> None:
    """Print the WER matrix and the continual metrics of a results directory (and what the
    general-ability guard saw and did, when it was on)."""
    from clasr.report.guard import guard_markdown, guard_table, read_guard
    from clasr.report.markdown import matrix_markdown, metrics_markdown
    from clasr.report.results import read_results, table_rate
    from clasr.report.show import matrix_table, metrics_table

    try:
        matrix, metrics = read_results(results)
        guard = read_guard(results)
    except FileNotFoundError as error:
        _fail(str(error))
    except ValueError as error:  # a damaged JSON file: derived from the committed state, so it can be rebuilt
        _fail(f"{error}; `clasr run {results / 'config.yaml'} --output {results}` rebuilds it from the committed state")
    if markdown:
        headline = "WER" if table_rate(matrix, "wer") == "wer" else "Error rate (each set's metric in brackets)"
        print(f"{headline} (%)\n\n{matrix_markdown(matrix)}\n\nCER (%)\n\n{matrix_markdown(matrix, 'cer')}")
        print(f"\n{metrics_markdown(metrics)}")
        if guard:
            print(f"\nGeneral-ability guard\n\n{guard_markdown(guard)}")
        return
    stdout.print(matrix_table(matrix))
    stdout.print(matrix_table(matrix, "cer"))
    stdout.print(metrics_table(metrics))
    if guard:
        stdout.print(guard_table(guard))


@app.command()
def compare(
    results: list[Path] = typer.Argument(..., help="results directories of runs over the same tasks and sets"),
    markdown: bool = typer.Option(False, "--markdown", help="a Markdown table instead of a terminal table"),
    paired: bool = typer.Option(
        False, "--paired", help="also test every pair of runs on the same utterances (and seeds), in one table: per "
        "cell, Average WER, BWT, learning, FWT and general-set change, paired bootstrap interval, permutation and "
        "Wilcoxon p-values, Holm over every line of the table, a verdict",
    ),
    against: Optional[str] = typer.Option(
        None, "--against", help="with --paired: test this run (one of RESULTS, or its name in the table) against "
        "each other run instead of every pair",
    ),
    csv_path: Optional[Path] = typer.Option(
        None, "--csv", help="with --paired: also write the paired table to this CSV file (fractions, not %)"
    ),
    only: Optional[list[str]] = typer.Option(
        None, "--only", help="with --paired: test only this quantity (repeatable; e.g. backward_transfer, learning, "
        "'after caribbean: real'; a wrong name lists the runs' quantities): a family fixed before looking, Holm over "
        "its lines alone",
    ),
) -> None:
    """Runs side by side: every run's WER rows after each task, with Average WER, BWT, learning, FWT,
    each general set's change (95 % intervals) and time — e.g. strategies started with `clasr run …
    --foundation-from`, or sweeps of `clasr run … --seeds`."""
    from clasr.atomic import write_text
    from clasr.report.comparison import comparison_markdown, comparison_table, read_run, run_names
    from clasr.report.paired import paired_csv, paired_markdown, paired_results, paired_table, run_pairs

    try:
        runs = [read_run(name, folder) for name, folder in zip(run_names(results), results)]
    except (FileNotFoundError, ValueError) as error:
        _fail(str(error))
    columns = {(tuple(r.matrix["tasks"]), tuple(r.matrix["general"])) for r in runs}
    if len(columns) > 1:
        _fail("the runs score different tasks or general sets: " + "; ".join(
            f"{r.name}: {', '.join(r.matrix['tasks'] + r.matrix['general'])}" for r in runs))
    needs_paired = [flag for flag, value in (("--against", against), ("--csv", csv_path), ("--only", only)) if value]
    if needs_paired and not paired:
        _fail(f"{needs_paired[0]} needs --paired")
    if paired and len(runs) < 2:
        _fail("--paired needs at least two runs")
    if csv_path is not None and csv_path.is_dir():  # an atomic write would replace the folder
        _fail(f"--csv {csv_path}: a folder; give the CSV file's name")
    names = [run.name for run in runs]
    if len(set(names)) < len(names):  # folders of the same name: the paired table names them by path
        names = [str(folder) for folder in results]
    given = {folder.resolve(): name for folder, name in zip(results, names)}
    against = given.get(Path(against).resolve(), against) if against is not None else None
    try:
        tests = paired_results(results, names, run_pairs(names, against), tuple(only) if only else None) if paired else []
    except (FileNotFoundError, ValueError) as error:
        _fail(f"paired tests refused: {error}")
    if csv_path is not None:
        try:
            write_text(csv_path, paired_csv(tests))
        except OSError as error:
            _fail(f"--csv {csv_path}: {error}")
    if markdown:
        print(comparison_markdown(runs))
        if tests:
            print(f"\n{paired_markdown(tests)}")
        return
    _print_wide(comparison_table(runs, "WER % per run — row: after training through that task"))
    if tests:
        _print_wide(paired_table(tests))
    if csv_path is not None:
        console.print(f"paired table: {csv_path}")


bench_app = typer.Typer(help="The built-in synthetic multi-domain benchmark.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
data_app = typer.Typer(help="Dataset tools.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _read_yaml(path: Path):
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        _fail(f"{path}: {error}")


def _benchmark_spec(path: Optional[Path], default):
    """The spec in the YAML file ``path`` (``default`` when None); a clean error naming the key."""
    from pydantic import ValidationError

    from clasr.bench.spec import BenchmarkSpec
    from clasr.experiment.config import format_validation_error

    if path is None:
        return default
    try:
        return BenchmarkSpec.model_validate(_read_yaml(path))
    except ValidationError as error:
        _fail(format_validation_error(str(path), error))


def _print_wide(table: Table) -> None:
    """Logs and narrow terminals: wrap a wide table rather than truncate its cells."""
    Console(width=max(stdout.width, 100)).print(table)


@bench_app.command("make")
def bench_make(
    spec: Optional[Path] = typer.Option(None, help="benchmark spec YAML (default: the built-in benchmark)"),
    cache: Optional[Path] = typer.Option(None, help="where domains are generated (default: $CLASR_CACHE/bench or ~/.cache/clasr/bench)"),
) -> None:
    """Generate the synthetic benchmark (voices × topics × channels) once; reuse what exists."""
    from clasr.bench.default import DEFAULT_SPEC
    from clasr.bench.generate import GenerationError, make_benchmark
    from clasr.bench.voices import VoiceError

    chosen = _benchmark_spec(spec, DEFAULT_SPEC)
    try:
        summaries = make_benchmark(chosen, cache)
    except (VoiceError, GenerationError) as error:
        _fail(str(error))
    table = Table(title="benchmark domains")
    for column in ("domain", "utterances", "audio (min)", "made in (s)", "folder"):
        table.add_column(column, justify="right" if column in ("utterances", "audio (min)", "made in (s)") else "left")
    for s in summaries:
        table.add_row(s.name, str(s.utterances), f"{s.minutes:.1f}", f"{s.seconds_to_make:.1f}", escape(Path(s.folder).name))
    stdout.print(table)
    console.print(f"folders under {Path(summaries[0].folder).parent}")


@data_app.command("import")
def data_import(
    format: str = typer.Argument(..., help="commonvoice, librispeech, nemo, kaldi or parquet"),
    source: Path = typer.Argument(..., help="the corpus: a Common Voice language folder, a LibriSpeech tree, "
                                  "a NeMo manifest (or folder of them), a Kaldi data dir (or folder of them), "
                                  "a parquet shard (or folder of them)"),
    output: Path = typer.Argument(..., help="new dataset folder (must not exist or be empty)"),
    copy: bool = typer.Option(False, "--copy", help="copy the audio instead of hard-linking it"),
    flac: bool = typer.Option(False, "--flac", help="re-encode the audio once as 16 kHz mono FLAC (faster to "
                              "decode than 48 kHz MP3)"),
    split: Optional[str] = typer.Option(None, help="split of every row (default: from the layout)"),
    tsv: list[str] = typer.Option([], "--tsv", help="commonvoice: TSV to read, repeatable (default: train, dev, "
                                  "test; validated when those are absent)"),
    audio_root: Optional[Path] = typer.Option(None, help="nemo, kaldi, parquet: where relative audio paths start "
                                              "(default: the manifest's folder)"),
    text_column: str = typer.Option("text", help="parquet: the transcript column"),
    audio_column: str = typer.Option("audio", help="parquet: the audio column (bytes/path struct, path or bytes)"),
    speaker_column: Optional[str] = typer.Option(None, help="parquet: the speaker column (default: speaker, if any)"),
) -> None:
    """Import a corpus (Common Voice, LibriSpeech, NeMo, Kaldi, parquet) as a dataset folder every
    command reads; bad rows are skipped and listed in OUTPUT/import_report.json."""
    from clasr.data.importers import ImportOptions, import_dataset
    from clasr.progress import progress_bar

    options = ImportOptions(split=split, tsv=tuple(tsv), audio_root=audio_root, text_column=text_column,
                            audio_column=audio_column, speaker_column=speaker_column)
    try:
        with progress_bar() as bar:
            job = bar.add_task(f"importing {format}", total=None, info="")
            report = import_dataset(format, source, output, options, copy=copy, flac=flac,
                                    progress=lambda rows: bar.update(job, completed=rows))
    except (DataError, AudioError, OSError) as error:
        _fail(str(error))
    for bad in report.bad_rows[:10]:
        console.print(f"[yellow]skipped[/] {escape(str(bad))}", highlight=False)
    if len(report.bad_rows) > 10:
        console.print(f"… {len(report.bad_rows) - 10} more skipped rows in {output / 'import_report.json'}")
    console.print(f"{report.written} of {report.rows} rows ({report.seconds / 3600:.2f} h, {report.audio_files} "
                  f"audio files) → {report.output}; skipped by reason: {report.bad_counts() or 'none'}")


@data_app.command("transform")
def data_transform(
    source: Path = typer.Argument(..., help="dataset folder with metadata.jsonl"),
    output: Path = typer.Argument(..., help="new dataset folder (must not exist or be empty)"),
    chain: str = typer.Option(
        ..., help="transform steps as a YAML file or inline YAML, e.g. "
        "'[{type: telephone}, {type: noise, color: pink, snr_db: [5, 15]}]'"
    ),
    seed: int = typer.Option(0, help="seed of the per-utterance random draws"),
    split: Optional[str] = typer.Option(None, help="transform only the rows of this split"),
) -> None:
    """Put a dataset through an acoustic channel (telephone, noise, reverb, child voice, speed, tempo)."""
    import yaml

    from clasr.progress import progress_bar
    from clasr.transforms import describe, parse_chain, transform_dataset

    try:
        steps = _read_yaml(Path(chain)) if Path(chain).is_file() else yaml.safe_load(chain)
        parsed = parse_chain(steps if isinstance(steps, list) else [steps])
        with progress_bar() as bar:
            job = bar.add_task(describe(parsed), total=None, info="")
            summary = transform_dataset(source, output, parsed, seed=seed, split=split,
                                        progress=lambda done, total: bar.update(job, completed=done, total=total))
    except (ValueError, AudioError, yaml.YAMLError) as error:
        _fail(str(error))
    console.print(f"{summary.rows} utterances → {summary.output_dir} ({summary.transform})")


@data_app.command("check")
def data_check(
    folder: Path = typer.Argument(..., help="dataset folder with metadata.jsonl or metadata.csv"),
    split: Optional[str] = typer.Option(None, help="check only the rows of this split (default: every row)"),
    model: Optional[str] = typer.Option(
        None, help="also check that every transcript fits this model's decoder (built-in name or local folder)"
    ),
) -> None:
    """Decode every row's audio (not just its header) and list the rows a run would skip: unreadable,
    truncated or corrupt audio, NaN or infinite samples, and with --model transcripts too long for the
    decoder. Exit code 1 when there are bad rows."""
    from clasr.data.batching import SpeechCollator
    from clasr.data.manifest import read_dataset
    from clasr.data.screen import screen_utterances
    from clasr.models.errors import ModelError
    from clasr.models.whisper import load_whisper
    from clasr.progress import progress_bar

    try:
        collator = None
        if model is not None:
            bundle = load_whisper(model, None)  # the model's own window: only its decoder matters here
            collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames,
                                      max_target_positions=bundle.model.config.max_target_positions)
        utterances, report = read_dataset(folder, Selection(split=split), on_bad_row=_report_bad_row)
        with progress_bar() as bar:
            job = bar.add_task("decoding", total=len(utterances), info="")
            usable, undecodable = screen_utterances(utterances, report.source, collator, _report_bad_row,
                                                    lambda n: bar.advance(job, n))
    except (DataError, ModelError) as error:
        _fail(str(error))
    bad = [*report.bad_rows, *undecodable]
    summary = {"folder": str(folder), "split": split, "rows": report.rows, "usable": len(usable),
               "bad": len(bad), "bad_counts": _bad_counts(bad), "filtered": {k: v for k, v in report.filtered.items() if v}}
    stdout.print_json(json.dumps(summary, ensure_ascii=False))
    if bad:
        raise typer.Exit(code=1)


@app.command(cls=_ListedSeeds)
def demo(
    output: Path = typer.Option(Path("results/demo"), help="results folder: one run per strategy and report/"),
    strategies: list[str] = typer.Option(
        None, "--strategy", help="strategies to compare (repeatable; default: ft, fta, ihr — the memory-free ones)"
    ),
    real_speech: Optional[Path] = typer.Option(
        None, help="real speech scored as a general set (a folder with a test split); default (english preset): "
        "the bundled CMU ARCTIC mini set of a clone (examples/data/arctic_kathleen_mini), if present"
    ),
    spec: Optional[Path] = typer.Option(None, help="benchmark spec YAML (default: the demo's three domains)"),
    seeds: Optional[list[int]] = typer.Option(
        None, "--seeds", help="run every strategy once per seed (--seeds 0 1 2): OUTPUT/<strategy>/seed<k>/, the "
        "table and report show means over seeds with their intervals",
    ),
    preset: str = typer.Option(
        "english", help="english: tiny.en on three English domains (ft, fta, ihr); multilingual: base on an "
        "English accent then Spanish–English code-switching, general sets in English, Spanish, German, French "
        "(ft, lora, centralize, ihr)",
    ),
) -> None:
    """The built-in benchmark end to end: tiny.en (or, with --preset multilingual, base) adapted
    domain after domain with each strategy, one table side by side, and a report (Markdown +
    plots). Re-running resumes."""
    from clasr.bench.default import DEMO_EXPERIMENT, DEMO_SPEC, DEMO_STRATEGIES, MULTILINGUAL_DEMO_EXPERIMENT
    from clasr.bench.default import MULTILINGUAL_DEMO_RUNS, MULTILINGUAL_DEMO_SPEC
    from clasr.bench.demo import bundled_real_speech, run_demo, write_report
    from clasr.bench.generate import GenerationError
    from clasr.bench.voices import VoiceError
    from clasr.experiment.config import ConfigError
    from clasr.models.errors import ModelError
    from clasr.report.comparison import comparison_table

    presets = {
        "english": (DEMO_SPEC, DEMO_STRATEGIES, DEMO_EXPERIMENT, None),
        "multilingual": (MULTILINGUAL_DEMO_SPEC, tuple(MULTILINGUAL_DEMO_RUNS), MULTILINGUAL_DEMO_EXPERIMENT,
                         MULTILINGUAL_DEMO_RUNS),
    }
    if preset not in presets:
        _fail(f"--preset: {preset!r} is not one of {', '.join(presets)}")
    default_spec, default_strategies, settings, named_runs = presets[preset]
    chosen = _benchmark_spec(spec, default_spec)
    try:
        real = real_speech or (bundled_real_speech() if preset == "english" else None)  # multilingual: time budget
        runs = run_demo(output, tuple(strategies or default_strategies), chosen, settings=settings,
                        real_general=real, seeds=seeds, runs_by_name=named_runs)
    except (ConfigError, DataError, ModelError, AudioError, VoiceError, GenerationError) as error:
        _fail(str(error))
    report = write_report(runs, chosen, output, settings)
    _print_wide(comparison_table(runs, "WER % per strategy — row: after training through that task"))
    console.print(f"report: {report / 'README.md'} (plots beside it); runs: {output}/<strategy>/")


if __name__ == "__main__":
    app()
