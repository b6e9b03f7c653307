"""``clasr compare --paired``: runs (or sweeps) tested against each other on the same
utterances (and seeds) — every pair of runs, or one run against each other run — in one
table: one line per compared quantity and pair (:func:`clasr.metrics.run_stats.paired_comparisons`),
Holm's correction over every line of the table."""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from clasr.metrics.run_stats import PairedResult, check_comparable, paired_comparisons
from clasr.report.results import read_results, seed_folders
from clasr.report.utterance_errors import read_run_errors

HEADER = ("quantity", "run A", "run B", "A", "B", "A − B [95 %]", "p perm.", "p Wilcoxon", "p Holm", "verdict")
CSV_HEADER = ("quantity", "run A", "run B", "A", "B", "A - B", "ci95 low", "ci95 high",
              "p permutation", "p wilcoxon", "p holm", "verdict")


@dataclass(frozen=True)
class PairedLine:
    """One line of the table: a quantity of run A vs run B."""

    run_a: str
    run_b: str
    result: PairedResult


def run_pairs(names: list[str], against: str | None = None) -> list[tuple[int, int]]:
    """Indices (A, B) of the compared pairs: every pair i < j in the given order, or with
    ``against`` (one of ``names``) that run as A against each other run."""
    if against is None:
        return list(itertools.combinations(range(len(names)), 2))
    if names.count(against) != 1:
        problem = "names more than one run" if against in names else "is none of the runs"
        raise ValueError(f"--against {against!r} {problem} ({', '.join(names)})")
    first = names.index(against)
    return [(first, other) for other in range(len(names)) if other != first]


def _sweep_seeds(folder: Path) -> list | None:
    return read_results(folder)[0].get("sweep", {}).get("seeds")


def paired_results(
    folders: list[Path], names: list[str], pairs: list[tuple[int, int]], only: tuple[str, ...] | None = None
) -> list[PairedLine]:
    """The table's lines, grouped by quantity (each quantity's pairs in the order of
    ``pairs``; ``only``: a pre-specified family, see :func:`paired_comparisons`); ValueError
    naming the runs and the problem when two runs are not comparable (unfinished, other
    seeds, other sets or utterances)."""
    for folder in folders:
        if not read_results(folder)[1].get("complete"):
            raise ValueError(f"{folder}: the run is not finished")
    errors = [read_run_errors(seed_folders(folder), read_results(seed_folders(folder)[0])[0]) for folder in folders]
    seeds = [_sweep_seeds(folder) for folder in folders]
    for i, j in pairs:
        if seeds[i] != seeds[j]:
            raise ValueError(f"{folders[i]} and {folders[j]} are not sweeps of the same seeds ({seeds[i]} vs {seeds[j]})")
        try:
            check_comparable(errors[i], errors[j])
        except ValueError as error:
            raise ValueError(f"{folders[i]} vs {folders[j]}: {error}") from None
    compared = paired_comparisons(errors, pairs, only=only)
    return [PairedLine(names[i], names[j], results[q]) for q in range(len(compared[0]))
            for (i, j), results in zip(pairs, compared)]


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def paired_lines(lines: list[PairedLine]) -> list[list[str]]:
    """Text cells in :data:`HEADER` order (points of each set's error rate, %)."""
    return [
        [line.result.quantity, line.run_a, line.run_b, f"{100 * r.a:.2f}", f"{100 * r.b:.2f}",
         f"{100 * r.difference:+.2f} [{100 * r.interval[0]:+.2f}, {100 * r.interval[1]:+.2f}]",
         _p(r.p_permutation), _p(r.p_wilcoxon), _p(r.p_holm), r.verdict]
        for line in lines for r in [line.result]
    ]


def paired_title(lines: list[PairedLine]) -> str:
    pairs = len({(line.run_a, line.run_b) for line in lines})
    return (f"Paired tests, {pairs} pair{'s' if pairs > 1 else ''} of runs (same utterances and seeds): Holm over all "
            f"{len(lines)} lines of this table; each set's own error rate in %, lower is better; higher BWT, "
            "learning and FWT are better")


def paired_table(lines: list[PairedLine]) -> Table:
    """The table for a terminal, a rule between quantities."""
    table = Table(title=paired_title(lines), box=box.SIMPLE_HEAD)
    for index, name in enumerate(HEADER):
        table.add_column(escape(name), justify="left" if index in (0, 1, 2, len(HEADER) - 1) else "right")
    cells = paired_lines(lines)
    for index, line in enumerate(cells):
        last_of_quantity = index + 1 == len(cells) or cells[index + 1][0] != line[0]
        table.add_row(*(escape(cell) for cell in line), end_section=last_of_quantity)
    return table


def paired_markdown(lines: list[PairedLine]) -> str:
    out = [f"**{paired_title(lines)}**", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(line) + " |" for line in paired_lines(lines)]
    return "\n".join(out)


def paired_csv(lines: list[PairedLine]) -> str:
    """The table as CSV, in fractions (not %) as the results' CSVs; Holm over all its lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    for line in lines:
        r = line.result
        writer.writerow([r.quantity, line.run_a, line.run_b, r.a, r.b, r.difference, *r.interval,
                         r.p_permutation, r.p_wilcoxon, r.p_holm, r.verdict])
    return buffer.getvalue()
