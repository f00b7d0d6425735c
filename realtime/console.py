"""What the commands say on the terminal: one-line messages on stderr prefixed with the
command's name, and the progress bar of long runs (only on a terminal). Main thread.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def say(prog: str, msg: str) -> None:
    """``emotrack PROG: msg`` on stderr."""
    print(f"emotrack {prog}: {msg}", file=sys.stderr, flush=True)


def progress(total: float, unit: str, enabled: bool = True):
    """A tqdm bar on stderr when it is a terminal and ``enabled``; else None."""
    if not enabled or not sys.stderr.isatty():
        return None
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)
