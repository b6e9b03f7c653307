"""``clasr compare --paired``: two runs (or sweeps) tested against each other on the same
utterances (and seeds), one line per compared cell and metric (:mod:`clasr.metrics.run_stats`)."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from clasr.metrics.run_stats import PairedResult, paired_comparison
from clasr.report.results import read_results, seed_folders
from clasr.report.utterance_errors import read_run_errors

HEADER = ("quantity", "A", "B", "A − B [95 %]", "p perm.", "p Wilcoxon", "p Holm", "verdict")


def _sweep_seeds(folder: Path) -> list | None:
    return read_results(folder)[0].get("sweep", {}).get("seeds")


def paired_results(a: Path, b: Path) -> list[PairedResult]:
    """A vs B; ValueError naming the problem when they are not comparable (unfinished, other
    sets or utterances, other seeds)."""
    for folder in (a, b):
        if not read_results(folder)[1].get("complete"):
            raise ValueError(f"{folder}: the run is not finished")
    if _sweep_seeds(a) != _sweep_seeds(b):
        raise ValueError(f"{a} and {b} are not sweeps of the same seeds ({_sweep_seeds(a)} vs {_sweep_seeds(b)})")
    errors = [read_run_errors(seed_folders(folder), read_results(seed_folders(folder)[0])[0]) for folder in (a, b)]
    return paired_comparison(*errors)


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def paired_lines(results: list[PairedResult]) -> list[list[str]]:
    """Text cells in :data:`HEADER` order (points of each set's error rate, %)."""
    return [
        [r.quantity, f"{100 * r.a:.2f}", f"{100 * r.b:.2f}",
         f"{100 * r.difference:+.2f} [{100 * r.interval[0]:+.2f}, {100 * r.interval[1]:+.2f}]",
         _p(r.p_permutation), _p(r.p_wilcoxon), _p(r.p_holm), r.verdict]
        for r in results
    ]


def paired_title(name_a: str, name_b: str) -> str:
    return (f"Paired tests: A = {name_a}, B = {name_b} (same utterances; Holm over the lines; "
            "each set's own error rate; lower is better, higher BWT is better)")


def paired_table(results: list[PairedResult], name_a: str, name_b: str) -> Table:
    table = Table(title=paired_title(name_a, name_b), box=box.SIMPLE_HEAD)
    for index, name in enumerate(HEADER):
        table.add_column(escape(name), justify="left" if index in (0, len(HEADER) - 1) else "right")
    for line in paired_lines(results):
        table.add_row(*(escape(cell) for cell in line))
    return table


def paired_markdown(results: list[PairedResult], name_a: str, name_b: str) -> str:
    out = [f"**{paired_title(name_a, name_b)}**", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(line) + " |" for line in paired_lines(results)]
    return "\n".join(out)
