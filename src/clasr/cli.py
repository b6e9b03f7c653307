"""The command line: ``clasr run``, ``clasr eval``, ``clasr show`` (thin: parse, call, print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from clasr.data.audio import AudioError
from clasr.data.manifest import DataError, Selection
from clasr.progress import console

stdout = Console()  # results (tables, JSON); logs and progress go to stderr

app = typer.Typer(
    help="clasr — continual learning for speech recognition: adapt Whisper domain after domain without forgetting.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


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


@app.command()
def run(
    config: Path = typer.Argument(..., help="experiment YAML (see examples/)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="results directory (overrides output_dir)"),
    strategy: Optional[str] = typer.Option(
        None,
        help="strategy name: ft, fta, ihr, centralize, ewc, lwf, er, joint, frozen (replaces the config's strategy "
        "and its options, unless it is the same name)",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="override one config key: --set train.learning_rate=1e-3 --set adapter.type=lora"
    ),
    foundation_from: Optional[Path] = typer.Option(
        None,
        help="reuse row 0 (the foundation model's scores) of another results directory run with the same "
        "model, evaluation and sets, instead of scoring it again",
    ),
) -> None:
    """Run a continual-learning experiment: evaluate the foundation model, then train and evaluate
    task after task. Re-running on the same output directory resumes after the last finished task."""
    from clasr.experiment.config import ConfigError, load_config
    from clasr.experiment.runner import run_experiment
    from clasr.models.errors import ModelError
    from clasr.report.results import read_results
    from clasr.report.show import matrix_table, metrics_table

    overrides = _parse_set(set_)
    if output is not None:
        overrides["output_dir"] = str(output)
    try:
        experiment = load_config(config, overrides, strategy)
        run_experiment(experiment, foundation_from)
    except (ConfigError, DataError, ModelError, AudioError) as error:
        _fail(str(error))
    matrix, metrics = read_results(experiment.output_dir)
    stdout.print(matrix_table(matrix))
    stdout.print(metrics_table(metrics))
    console.print(f"results in {experiment.output_dir}")


@app.command("eval")
def eval_command(
    model: str = typer.Option("tiny.en", help="built-in model name or local transformers Whisper folder"),
    data: Path = typer.Option(..., help="dataset folder with metadata.jsonl or metadata.csv"),
    split: Optional[str] = typer.Option("test", help="split to score (empty string: every row)"),
    max_utterances: Optional[int] = typer.Option(None, min=1, help="score only the first N selected utterances"),
    normalizer: str = typer.Option("whisper_english", help="text normalizer before scoring"),
    batch_size: int = typer.Option(16, min=1, help="utterances decoded together"),
    window_seconds: float = typer.Option(30.0, min=0.02, max=30.0, help="encoder window in seconds (30 = Whisper's own)"),
    hypotheses: Optional[Path] = typer.Option(None, help="write per-utterance results to this JSONL file"),
) -> None:
    """Transcribe a dataset with greedy decoding and print WER / CER."""
    from clasr.evaluate import evaluate, write_hypotheses
    from clasr.data.manifest import read_dataset
    from clasr.metrics.text import get_normalizer
    from clasr.models.errors import ModelError
    from clasr.models.whisper import load_whisper

    try:
        get_normalizer(normalizer)
        selection = Selection(split=split or None, max_utterances=max_utterances, max_duration=window_seconds)
        utterances, report = read_dataset(data, selection)
        bundle = load_whisper(model, window_seconds)
        if report.bad_rows:
            console.print(f"[yellow]skipped rows by reason:[/] {report.bad_counts()}")
        result = evaluate(bundle, utterances, normalizer, batch_size)
    except (DataError, ModelError, AudioError, ValueError) as error:
        _fail(str(error))
    if hypotheses is not None:
        write_hypotheses(hypotheses, result.rows)
    stdout.print_json(json.dumps({"data": str(data), "split": split, **result.summary()}))


@app.command()
def show(
    results: Path = typer.Argument(..., help="results directory of `clasr run`"),
    markdown: bool = typer.Option(False, "--markdown", help="Markdown tables instead of terminal tables"),
) -> None:
    """Print the WER matrix and the continual metrics of a results directory."""
    from clasr.report.markdown import matrix_markdown, metrics_markdown
    from clasr.report.results import read_results
    from clasr.report.show import matrix_table, metrics_table

    try:
        matrix, metrics = read_results(results)
    except (FileNotFoundError, ValueError) as error:  # ValueError: a damaged JSON file
        _fail(str(error))
    if markdown:
        print(f"WER (%)\n\n{matrix_markdown(matrix)}\n\nCER (%)\n\n{matrix_markdown(matrix, 'cer')}")
        print(f"\n{metrics_markdown(metrics)}")
        return
    stdout.print(matrix_table(matrix))
    stdout.print(matrix_table(matrix, "cer"))
    stdout.print(metrics_table(metrics))


if __name__ == "__main__":
    app()
