"""``clasr demo``: the built-in benchmark, every memory-free strategy, one table and a report.

Makes (or reuses) the demo's domains of the built-in benchmark, then runs the real tiny.en
through them in order with each strategy — the first strategy scores the foundation model,
the others reuse that row — and writes ``<output>/report/``: ``README.md`` (the domains,
the settings and the side-by-side table), ``heatmap_<strategy>.png`` and
``trajectories.png``. Each strategy's run is an ordinary results directory
(``<output>/<strategy>/``, resumable; its ``config.yaml`` reruns it with ``clasr run``).
"""

from __future__ import annotations

from pathlib import Path

from clasr.atomic import write_text
from clasr.bench.default import DEMO_EXPERIMENT, DEMO_SPEC, DEMO_STRATEGIES
from clasr.bench.generate import make_benchmark
from clasr.bench.language_data import CODE_SWITCHED_TOPICS
from clasr.bench.sentences import topic_language
from clasr.bench.spec import BenchmarkSpec
from clasr.experiment.config import ExperimentConfig, parse_config
from clasr.experiment.runner import run_experiment
from clasr.experiment.seeds import run_seeds
from clasr.precision import describe_bf16
from clasr.progress import console
from clasr.report.comparison import RunSummary, comparison_markdown, metric_cell, read_run
from clasr.report.paired import PairedLine, paired_csv, paired_markdown, paired_results, run_pairs
from clasr.report.plots import wer_heatmap, wer_trajectories
from clasr.transforms import describe, parse_chain


REAL_GENERAL_NAME = "real"
HEADLINE = ("backward_transfer",)
"""The demo's pre-specified test: each strategy's BWT against the first strategy's, Holm over
those tests alone (the full paired table corrects over all of its lines)."""


def bundled_real_speech() -> Path | None:
    """The CMU ARCTIC mini set bundled with a clone of the repository (None when installed
    without it): real read speech, to see whether adapting to synthetic domains costs
    the model what it could already do."""
    folder = Path(__file__).resolve().parents[3] / "examples" / "data" / "arctic_kathleen_mini"
    return folder if (folder / "metadata.jsonl").exists() else None


def _language(domain) -> dict:
    """The ``language`` key of a domain's set, only for a topic in another language than English,
    and ``metric: mer`` for a code-switched topic (the mixed error rate: each CJK character and
    each other word one unit; equal to WER when no CJK character occurs)."""
    language = topic_language(domain.topic)
    keys = {"language": language} if language != "en" else {}
    return keys | ({"metric": "mer"} if domain.topic in CODE_SWITCHED_TOPICS else {})


def demo_config(
    spec: BenchmarkSpec,
    folders: dict[str, Path],
    strategy: str,
    output: Path,
    settings: dict = DEMO_EXPERIMENT,
    real_general: Path | None = None,
    scored_split: str = "test",
    runs: dict[str, dict] | None = None,
) -> ExperimentConfig:
    """The experiment of one strategy over the benchmark's domains (tasks in order) and
    general sets, with the demo's model, training and evaluation ``settings``.

    ``strategy`` names a run: in ``runs`` its config keys (``strategy``, ``adapter``, and
    ``train`` keys over the settings'), else the strategy of that name. A domain in another
    language than English is set to it (``language``). ``real_general``, a folder of real
    speech with train and test splits, is scored as one more general set (``real``).
    ``scored_split`` is ``test``, or ``dev`` for calibration; the real set has no dev split,
    so its train split (never trained on) stands in for it."""
    run = (runs or {}).get(strategy, {"strategy": {"name": strategy}})
    plain = {
        **settings,
        **run,
        "train": {**settings["train"], **run.get("train", {})},
        "name": f"demo-{strategy}",
        "output_dir": str(output / strategy),
        "tasks": [
            {"name": d.name, "data": str(folders[d.name]), "train": {"split": "train"},
             "test": {"split": scored_split}, **_language(d)}
            for d in spec.domains
        ],
        "general": [
            {"name": g.name, "data": str(folders[g.name]), "test": {"split": scored_split}, **_language(g)}
            for g in spec.general
        ],
    }
    if real_general is not None:
        real_split = "train" if scored_split == "dev" else scored_split
        plain["general"].append({"name": REAL_GENERAL_NAME, "data": str(real_general), "test": {"split": real_split}})
    return parse_config(plain, source="demo")


def run_demo(
    output: Path,
    strategies: tuple[str, ...] = DEMO_STRATEGIES,
    spec: BenchmarkSpec = DEMO_SPEC,
    bench_root: Path | None = None,
    settings: dict = DEMO_EXPERIMENT,
    real_general: Path | None = None,
    scored_split: str = "test",
    seeds: list[int] | None = None,
    runs_by_name: dict[str, dict] | None = None,
) -> list[RunSummary]:
    """Generate or reuse the benchmark, run every strategy (resuming finished ones); with
    ``seeds``, every strategy is a sweep of those seeds (:func:`clasr.experiment.seeds.run_seeds`).
    ``runs_by_name``: named runs with their own config keys (see :func:`demo_config`)."""
    folders = {domain.name: Path(domain.folder) for domain in make_benchmark(spec, bench_root)}
    runs: list[RunSummary] = []
    for strategy in strategies:
        config = demo_config(spec, folders, strategy, output, settings, real_general, scored_split, runs_by_name)
        console.rule(f"strategy {strategy}")
        foundation = output / strategies[0] if runs else None
        if seeds:
            run_seeds(config, seeds, foundation_from=foundation)
        else:
            run_experiment(config, foundation_from=foundation)
        runs.append(read_run(strategy, Path(config.output_dir)))
    return runs


def write_report(runs: list[RunSummary], spec: BenchmarkSpec, output: Path, settings: dict = DEMO_EXPERIMENT) -> Path:
    """``<output>/report/``: README.md with the domains, the side-by-side table (metrics with
    their intervals), the headline test (:data:`HEADLINE`, also printed), the paired tests of every
    strategy against the first in one table (also ``paired.csv``), and the plots."""
    folder = output / "report"
    for run in runs:
        wer_heatmap(run.matrix, f"{run.name}: WER % after each task", folder / f"heatmap_{run.name}.png")
    wer_trajectories({run.name: run.matrix for run in runs}, folder / "trajectories.png")
    names = [run.name for run in runs]
    folders, pairs = [output / name for name in names], run_pairs(names, names[0])
    paired = paired_results(folders, names, pairs) if len(runs) > 1 else []
    with_bwt = len(runs) > 1 and len(runs[0].matrix["tasks"]) > 1  # BWT needs an earlier task
    headline = paired_results(folders, names, pairs, only=HEADLINE) if with_bwt else []
    if paired:
        write_text(folder / "paired.csv", paired_csv(paired))
    write_text(folder / "README.md", _report_markdown(runs, spec, settings, paired, headline))
    if headline:
        console.print(headline_sentence(runs, headline).replace("**", ""))
    return folder


def headline_sentence(runs: list[RunSummary], headline: list[PairedLine]) -> str:
    """Does the first strategy forget (its BWT's interval over utterances), and does another
    avoid it (the pre-specified paired test of BWT, Holm over those tests only)?"""
    first = runs[0]
    bwt = metric_cell(first.metrics, "backward_transfer")
    ci = (first.metrics.get("ci95") or {}).get("backward_transfer")
    forgets = ("forgets (the interval lies below 0)" if ci and ci[1] < 0 else
               "shows no detectable forgetting (the interval reaches 0)" if ci else "has no interval")
    avoided = [line.run_b for line in headline if line.result.verdict == "B better"]
    answer = (f"{', '.join(avoided)} forget{'s' if len(avoided) == 1 else ''} significantly less than {first.name} "
              "(p Holm < 0.05)" if avoided else f"no strategy forgets significantly less than {first.name}")
    return (f"{first.name}'s BWT: {bwt} points (95 % interval over utterances), so {first.name} {forgets}. "
            f"The test chosen before the run: each strategy's BWT against {first.name}'s, paired over the same "
            f"utterances (and seeds), Holm over these {len(headline)} tests alone: **{answer}**.")


def _report_markdown(
    runs: list[RunSummary], spec: BenchmarkSpec, settings: dict, paired: list[PairedLine], headline: list[PairedLine]
) -> str:
    domains = ["| domain | role | topic | voices | channel | train / test |", "|---|---|---|---|---|---|"]
    for role, items in (("task", spec.domains), ("general", spec.general)):
        for d in items:
            voices = ", ".join(v.label() for v in d.voices)
            channel = describe(parse_chain(list(d.transforms))) if d.transforms else "clean"
            domains.append(f"| {d.name} | {role} | {d.topic} | {voices} | {channel} | {d.train} / {d.test} |")
    heatmaps = "\n".join(f"![{r.name}](heatmap_{r.name}.png)" for r in runs)
    seeds = runs[0].metrics.get("seeds", {}).get("seeds")
    return "\n\n".join([
        f"# clasr demo: {settings['model']['name']} adapted domain after domain",
        "Synthetic speech made by `clasr bench make` (eSpeak NG and hibari voices, acoustic channels from "
        "`clasr.transforms`); tasks are trained in the order below, the general set is never trained on.",
        "\n".join(domains),
        _settings_line(settings),
        "## WER % per strategy (row: after training through that task)",
        f"Mean over seeds {seeds}; metrics as mean±std over seeds [95 % interval over utterances]." if seeds
        else "Metrics with their 95 % interval over utterances in brackets.",
        comparison_markdown(runs),
        f"`{REAL_GENERAL_NAME}`: real read speech (CMU ARCTIC), when the demo runs from a clone. "
        "Avg WER: mean over tasks of the final row. BWT: mean change on earlier tasks between right after "
        "learning them and the end (negative = forgetting). Learning: mean WER drop on each task when it is "
        "learned. Δ<set>: a general set's change from the foundation (positive = ability lost). time: seconds of "
        "training, the strategy's own work and evaluation after the foundation row.",
        *([f"## Does {runs[0].name} forget, and does another strategy avoid it?",
           headline_sentence(runs, headline), paired_markdown(headline)] if headline else []),
        *([f"## Paired tests against {runs[0].name}",
           "Each strategy (B) against the first (A), on the same utterances (and seeds): the difference A − B with its "
           "paired bootstrap interval, a sign-flip permutation test and a Wilcoxon signed-rank test over the "
           "utterances' contributions, Holm's correction over every line of the table; the verdict names the better "
           "run where the corrected p < 0.05 (`paired.csv`: the same table). "
           f"`clasr compare {' '.join(f'<output>/{run.name}' for run in runs)} --paired` tests every pair.",
           paired_markdown(paired)] if paired else []),
        "## Each set along the sequence",
        "![trajectories](trajectories.png)",
        "## WER matrices",
        heatmaps,
        "Every run is a results folder beside this report (`clasr show <folder>`); its `config.yaml` reruns it "
        "with `clasr run`.",
    ]) + "\n"


def _settings_line(settings: dict) -> str:
    model, train = settings["model"], settings["train"]
    trained_at = ("each batch's longest utterance" if train.get("encoder_window") == "fitted"
                  else f"{model['window_seconds']:g} s")
    return (
        f"Model {model['name']}, scored at an encoder window of {model['window_seconds']:g} s and trained at "
        f"{trained_at} (Whisper's own window is 30 s; below about 10 s the foundation model loses accuracy on "
        "real speech, and any fine-tuning first recovers that, which would hide forgetting of the real set: "
        f"docs/benchmarks.md); learning rate {train['learning_rate']:g}, {train['epochs']} epochs, "
        f"batch {train['batch_size']}, bf16 autocast {describe_bf16(train.get('bf16', False))}."
    )
