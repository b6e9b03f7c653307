"""``python -m clasr …``: the command line, as launchers start it (``accelerate launch -m clasr run CONFIG``)."""

from clasr.cli import app

app(prog_name="clasr")
