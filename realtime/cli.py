"""The ``emotrack`` command line (main thread).

Each command declares its own options next to its code (an ``add_arguments(parser)``
function in the module that runs it); this module only knows their names, one-line help
and where they live. Only the chosen command's module is imported, so ``emotrack --help``
stays instant and the torch commands (train, export, ...) are reached by module name:
their options live in torch-free modules (``emotrack.models.options``,
``emotrack.export.options``), so ``--help`` works without the ``train`` extra and running
one without it gives one clean message.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import re
import sys

from emotrack import __version__

from .assets import (
    ACCURATE_MODEL,
    ACCURATE_SONG_MODEL,
    DEFAULT_MODEL,
    DEFAULT_SONG_MODEL,
    asset_path,
)
from .core.threads import single_thread_blas
from .exitcodes import ExitCode, UsageError, describe


class Command:
    """A command: its one-line help, the module with its options (``add``, and DESCRIPTION;
    importable without torch) and the "module:function" that runs it."""

    __slots__ = ("help", "options", "runner", "add", "needs_train")

    def __init__(self, help: str, options: str, runner: str, add: str = "add_arguments", needs_train: bool = False):
        self.help, self.options, self.runner, self.add, self.needs_train = help, options, runner, add, needs_train


COMMANDS = {
    "analyze": Command("valence/arousal of audio files, one JSON object per 0.5 s (or per song)",
                       "emotrack.realtime.analyze", "emotrack.realtime.analyze:run"),
    "live": Command("track a microphone, line input or file live: window + WebSocket",
                    "emotrack.realtime.live.options", "emotrack.realtime.live.command:run"),
    "listen": Command("print the stream of a running `emotrack live` as JSON lines",
                      "emotrack.realtime.net.listen", "emotrack.realtime.net.listen:run"),
    "devices": Command("list audio input devices", "emotrack.realtime.live.devices",
                       "emotrack.realtime.live.devices:run"),
    "index": Command("analyse a music library into one SQLite file (resumable)",
                     "emotrack.realtime.library.index", "emotrack.realtime.library.index:run"),
    "find": Command("songs by a point or a drawn profile in valence-arousal space",
                    "emotrack.realtime.library.find", "emotrack.realtime.library.find:run"),
    "bench": Command("speed of the model step and of analyze (and live latency, memory, load, library, song)",
                     "emotrack.realtime.bench.command", "emotrack.realtime.bench.command:run"),
    "train": Command("train the VAE-LSTM and baselines (needs emotrack[train])", "emotrack.models.options",
                     "emotrack.models.train_cli:cmd_train", add="add_train_arguments", needs_train=True),
    "teacher-pass": Command("cache the musicnn teachers' outputs at every frame of every clip (needs emotrack[train])",
                            "emotrack.models.options", "emotrack.models.teacher_pass:cmd_teacher_pass",
                            add="add_teacher_pass_arguments", needs_train=True),
    "export": Command("ONNX + model card from a training run (needs emotrack[train])", "emotrack.export.options",
                      "emotrack.export.cli:cmd_export", add="add_export_arguments", needs_train=True),
    "static-benchmark": Command("whole-song emotion: SVR vs PCA-SVR vs TNN-SVR by repeated cross-validation "
                                "(needs emotrack[train])", "emotrack.models.options",
                                "emotrack.models.static_bench:cmd_static_benchmark",
                                add="add_static_benchmark_arguments", needs_train=True),
    "train-song": Command("train the whole-song TNN-SVR on VAE-code statistics (needs emotrack[train])",
                          "emotrack.models.options", "emotrack.models.song_cli:cmd_train_song",
                          add="add_train_song_arguments", needs_train=True),
    "export-song": Command("ONNX + model card of a train-song run (needs emotrack[train])", "emotrack.export.options",
                           "emotrack.export.song_export:cmd_export_song", add="add_export_song_arguments",
                           needs_train=True),
    "evaluate": Command("per-song metrics of a model on the held-out test splits", "emotrack.models.options",
                        "emotrack.models.cli:cmd_evaluate", add="add_evaluate_arguments"),
}
TRAIN_MODULES = ("torch", "onnx", "onnxscript", "sklearn", "opensmile", "openTSNE", "matplotlib", "librosa")


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the options of ``command`` (only that one's module is imported)."""
    p = argparse.ArgumentParser(prog="emotrack", description="Music emotion (valence/arousal) every 0.5 s.",
                                epilog=describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    for name, c in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=c.help)
            continue
        mod = importlib.import_module(c.options)  # deferred: only the chosen command's options
        sp = sub.add_parser(name, help=c.help, description=getattr(mod, "DESCRIPTION", None) or c.help,
                            epilog=describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
        getattr(mod, c.add)(sp)
    return p


def version_text() -> str:
    """The version, and the name and checksum of each shipped model (from its card, checked
    against the file)."""
    lines = [f"emotrack {__version__}"]
    for onnx in (DEFAULT_MODEL, ACCURATE_MODEL, DEFAULT_SONG_MODEL, ACCURATE_SONG_MODEL):
        path = asset_path(onnx)
        card = asset_path(onnx.replace(".onnx", ".card.json"))
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            meta = json.loads(card.read_text()) if card.exists() else {}
        except OSError as e:
            lines.append(f"{onnx}: cannot read it ({e.strerror or e})")
            continue
        name = f"{meta.get('name', path.stem)} {meta.get('version', '')}".strip()
        ok = "" if meta.get("sha256") in (None, digest) else " (differs from its card: re-export it)"
        lines.append(f"{name}: {onnx}, sha256 {digest[:16]}…{ok}")
    return "\n".join(lines)


def _command_in(argv: list[str]) -> str | None:
    for a in argv:
        if a in COMMANDS:
            return a
        if not a.startswith("-"):
            return None
    return None


NEGATIVE_VALUE = re.compile(r"^-\d|^-\.\d")
VALUE_OPTIONS = ("--point",)  # take "V,A", whose V may be negative


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--point -0.5,0.3`` as ``--point=-0.5,0.3``: argparse reads a leading '-' that is not
    a plain number as an option, and a valence below zero is an ordinary point."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in VALUE_OPTIONS and i + 1 < len(argv) and NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = _join_negative_values(sys.argv[1:] if argv is None else argv)
    name = _command_in(argv)
    args = parser(name).parse_args(argv)
    if args.version:
        print(version_text())
        return ExitCode.OK
    if args.cmd is None:
        parser().print_help()
        return ExitCode.USAGE
    single_thread_blas()  # before numpy loads: with both cores busy, threaded BLAS stalls the worker
    c = COMMANDS[args.cmd]
    module, func = c.runner.split(":")
    try:
        mod = importlib.import_module(module)  # deferred: the CLI's dispatch (fast --help)
    except ModuleNotFoundError as ex:
        if ex.name in TRAIN_MODULES or (ex.name or "").split(".")[0] in TRAIN_MODULES:
            print(f"emotrack {args.cmd}: needs {ex.name}, which comes with the train extra: "
                  "pip install 'emotrack[train]' (in a checkout: pip install -e '.[train]')", file=sys.stderr)
            return ExitCode.USAGE
        raise
    try:
        return int(getattr(mod, func)(args))
    except UsageError as e:  # refused input: one line that says what to do, exit 2
        print(f"emotrack {args.cmd}: {e}", file=sys.stderr)
        return ExitCode.USAGE


if __name__ == "__main__":
    sys.exit(main())
