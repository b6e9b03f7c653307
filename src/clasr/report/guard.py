"""The general-ability guard's record of a run (``guard.json``) and its tables.

``guard.json`` holds one entry per trained task whose guard was on: the task, the mode,
threshold and check interval, the guarded sets with their utterance counts and ``metrics``,
the signal (``error_rate`` or ``loss``; error rate in records written before there was a
choice), the guarded sets' scored reference tokens (``tokens``), the curve (``error_rate``:
each guarded set's error rate in its metric at each checked step, step 0 being the task's
start, ``wer`` in records written before sets had a metric, empty when only the loss was
measured; ``loss``: each set's reference loss in nats per token, absent in older records), the step
where the rise first passed the threshold (``triggered_at``), where the task ended early
(``ended_at``: stop or rollback), the step whose weights were put back (``rolled_back_to``),
and the guard's scoring time. See :mod:`clasr.guard`.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from clasr.atomic import write_json
from clasr.report.results import percent

GUARD_FILE = "guard.json"


def guard_record(rows: list[dict]) -> list[dict]:
    """The guard's facts of each task row that has them, labelled with the row."""
    return [{"row": i, "label": row["label"], **row["guard"]} for i, row in enumerate(rows) if row.get("guard")]


def write_guard(output_dir: Path, rows: list[dict]) -> None:
    """(Re)write ``guard.json`` from the committed rows, when the guard was on in any of them."""
    record = guard_record(rows)
    if record:
        write_json(Path(output_dir) / GUARD_FILE, record)


def read_guard(output_dir: Path) -> list[dict]:
    """The guard record of a results directory ([] when the guard was off)."""
    path = Path(output_dir) / GUARD_FILE
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: damaged JSON ({error})") from None


def _what_it_did(entry: dict) -> str:
    if entry["triggered_at"] is None:
        return "not triggered"
    did = f"triggered at step {entry['triggered_at']}"
    if entry["rolled_back_to"] is not None:
        return f"{did}; rolled back to step {entry['rolled_back_to']}"
    if entry["ended_at"] is not None:
        return f"{did}; stopped"
    return f"{did}; warned"


def curve_rates(check: dict) -> dict[str, float]:
    """One checked step's error rate per guarded set (``wer`` in older records)."""
    return check.get("error_rate", check.get("wer"))


def curve_losses(check: dict) -> dict[str, float]:
    """One checked step's reference loss per guarded set ({} in records written without it)."""
    return check.get("loss", {})


def entry_signal(entry: dict) -> str:
    """What the guard of a recorded task watched (the error rate in older records)."""
    return entry.get("signal", "error_rate")


def _checked(check: dict) -> str:
    rates, losses = curve_rates(check), curve_losses(check)
    shown = ["/".join(percent(rate) for rate in rates.values())] if rates else []
    shown += ["loss " + "/".join(f"{loss:.3f}" for loss in losses.values())] if losses else []
    return f"{check['step']}: " + " ".join(shown)


def _curve(entry: dict) -> str:
    return "  ".join(_checked(check) for check in entry["curve"])


def _threshold(entry: dict) -> str:
    if entry_signal(entry) == "loss":
        return f"reference loss +{entry['threshold']:.3f} nats/token"
    return f"+{100 * entry['threshold']:.1f} pts"


def _sets(entry: dict) -> str:
    """The guarded sets: name, metric (when not WER) and utterance count."""
    metrics = entry.get("metrics", {})
    return ", ".join(
        f"{name} ({n}{'' if metrics.get(name, 'wer') == 'wer' else ', ' + metrics[name]})" for name, n in entry["sets"].items()
    )


def guard_lines(record: list[dict]) -> list[tuple[str, str, str, str]]:
    """(row label, settings, what it did, curve "step: rate % …") per guarded task."""
    return [
        (
            entry["label"],
            f"{entry['mode']}, {_threshold(entry)}, every {entry['every_steps']} steps, "
            f"{_sets(entry)}, {entry['seconds']:.0f} s",
            _what_it_did(entry),
            _curve(entry),
        )
        for entry in record
    ]


def guard_table(record: list[dict]) -> Table:
    """The guard per task: its settings and time, what it did, and its curve (error rate % per
    guarded set, in the set's metric: WER unless named after its utterance count)."""
    table = Table(title="General-ability guard — curve: step: error rate % (WER unless named) and reference loss "
                        "(nats/token) of each guarded set (dev)")
    for column in ("row", "guard", "what it did", "curve"):
        table.add_column(column, overflow="fold")
    for line in guard_lines(record):
        table.add_row(*(escape(cell) for cell in line))
    return table


def guard_markdown(record: list[dict]) -> str:
    """The same as :func:`guard_table`, as a Markdown table."""
    lines = ["| row | guard | what it did | curve (step: error rate %, WER unless named; reference loss) |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(line) + " |" for line in guard_lines(record)]
    return "\n".join(lines)
