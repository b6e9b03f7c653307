"""Text that is safe to show on a terminal.

File names and transcripts come from user data: a name holding ``ESC [ 2 J`` would clear
the screen, or recolour and overwrite earlier lines, if printed raw. ``printable`` shows
every control character (C0, DEL, C1) escaped as Python writes it (``\\x1b``), and
leaves every other character, accents and scripts included, as it is.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # tab and newline are kept


def printable(text: str) -> str:
    """``text`` with its control characters escaped (``\\x1b``), tab and newline kept."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
