"""The one progress bar style of clasr (rich), used by training, decoding and data preparation."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# In a multi-process run (torchrun / accelerate launch set RANK) only the main process logs.
console = Console(stderr=True, quiet=os.environ.get("RANK", "0") != "0")


def progress_bar() -> Progress:
    """A bar with a description, count, elapsed and remaining time, and a free ``info`` field."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
