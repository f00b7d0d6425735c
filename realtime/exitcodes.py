"""The exit codes of every ``emotrack`` command (also listed in ``emotrack --help``), which the
main thread returns, and the error a command raises for input it refuses."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # something broke while running (the worker, an export's parity gate)
    USAGE = 2  # bad options, a model that does not match, a file that exists, a missing extra
    DECODE = 3  # an input file that cannot be decoded (the others were still processed)
    DEVICE = 4  # no input: no device, an unknown or busy one; for listen, no stream to connect to
    PORT = 5  # a server port that is in use or an address that cannot be bound
    INTERRUPTED = 130  # Ctrl-C where what was done so far is kept (emotrack index)


class UsageError(Exception):
    """Input a command refuses before it starts its work (a data folder that is not there, a
    dataset root without its annotations): ``emotrack`` prints the message after the command's
    name, without a traceback, and exits with ``ExitCode.USAGE``. The message says what to do."""


MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "failure while running",
    ExitCode.USAGE: "usage error, unusable model or missing extra",
    ExitCode.DECODE: "some input could not be decoded",
    ExitCode.DEVICE: "no usable input (device; for listen: no stream)",
    ExitCode.PORT: "port in use or address not available",
    ExitCode.INTERRUPTED: "interrupted (work done so far is kept)",
}


def describe() -> str:
    """One line per code, for ``--help``."""
    return "exit codes:\n" + "\n".join(f"  {int(c):>3}  {MEANINGS[c]}" for c in ExitCode)
