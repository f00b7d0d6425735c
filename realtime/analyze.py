"""``emotrack analyze``: the streaming path over files, as fast as possible (main thread).

One JSON object (or CSV row) per prediction; several files get a ``file`` field and a
progress bar on stderr. An undecodable file is reported with its reason and skipped; the
exit code is then non-zero, but every other file is still analysed.

``--song``: one JSON object (or CSV row) per file instead: the whole-song valence and
arousal of the shipped TNN-SVR model and a summary of the dynamic trajectory, both from
one read of the file.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import soundfile as sf

from . import protocol
from .console import progress, say
from .core.audio import AudioDecodeError, read_blocks
from .core.model import EmotionModel, ModelError, load_model
from .core.song import SongTooShortError, analyze_song, open_song_model
from .core.tracker import Tracker
from .exitcodes import ExitCode

HELP = "valence/arousal of audio files, one JSON object per 0.5 s (or per song)"


def add_arguments(a: argparse.ArgumentParser) -> None:
    a.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, opus, mp3; any rate and channels); "
                   "'-': standard input")
    a.add_argument("--format", choices=["jsonl", "json", "csv"], default="jsonl",
                   help="jsonl: one object per line (default); json: one array; csv: a header and rows")
    a.add_argument("--out", help="write here instead of stdout ('-': stdout)")
    a.add_argument("--hop", type=float, default=None,
                   help="seconds between outputs: 0.5 (default) or a divisor such as 0.25, 0.1")
    a.add_argument("--model", help="'accurate' for the opt-in model that runs the musicnn teachers every 0.5 s "
                   "(closer to the labels, ~50x the compute), or an exported .onnx (default: the shipped VAE-LSTM)")
    a.add_argument("--song", action="store_true",
                   help="one object per file: whole-song valence/arousal (TNN-SVR) and a summary of the trajectory")
    a.add_argument("--song-model", help="with --song: 'accurate' for the opt-in model that runs the musicnn "
                   "teachers (closer to the labels, slower), or an .onnx from `emotrack export-song` "
                   "(default: the shipped one)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        model = load_model(args.model)
    except ModelError as e:
        say("analyze", str(e))
        return ExitCode.USAGE
    if args.song or args.song_model:
        return analyze_songs(args.audio, model, args.song_model, args.format, args.out, args.hop)
    return analyze(args.audio, model, args.format, args.out, args.hop, not args.no_progress)


def analyze(paths: list[str], model: EmotionModel, fmt: str = "jsonl", out_path: str | None = None,
            hop: float | None = None, show_progress: bool = True) -> int:
    """Every prediction of every file, to ``out_path`` (or stdout: None or ``-``). Every record
    names its ``file``, however many files there are."""
    multi = len(paths) > 1
    to_file = bool(out_path) and out_path != "-"
    out = open(out_path, "w", newline="") if to_file else sys.stdout  # noqa: SIM115
    failed = []
    records = _Records(out, fmt, ["file", *protocol.PREDICTION_FIELDS])
    try:
        bar = progress(0, "s", show_progress and (multi or to_file))
        for path in paths:
            try:
                sr, _, blocks = read_blocks(path)
                if bar is not None:
                    bar.reset(total=round(_duration(path) or 0, 1))
                    bar.set_description(Path(path).name[:30])
                tracker = Tracker(model, sr, hop=hop)
                count = 0
                for p in (p for b in blocks for p in tracker.push(b)):
                    count += 1
                    records.write({"file": str(path), **p.to_dict()})
                    if bar is not None:
                        bar.update(round(p.t - bar.n, 1))
                out.flush()
                _notes(path, tracker.nonfinite)
                if count == 0:
                    failed.append(str(path))
                    say("analyze", f"{path}: {tracker.stream_seconds:.3f} s of audio, shorter than one "
                        f"{model.features.frame_seconds} s frame: no prediction")
            except AudioDecodeError as e:
                failed.append(str(path))
                say("analyze", str(e))
            except ValueError as e:  # bad --hop and the like: nothing else will work either
                say("analyze", str(e))
                return ExitCode.USAGE
        if bar is not None:
            bar.close()
        records.close()
    except BrokenPipeError:
        return ExitCode.OK
    finally:
        if to_file:
            out.close()
    return _exit(failed, len(paths), "decoded")


class _Records:
    """Writes records as JSON lines, one JSON array (written as it goes) or CSV rows (the
    columns of the first record, or ``columns``)."""

    def __init__(self, out, fmt: str, columns: list[str] | None = None):
        self.out, self.fmt, self.columns = out, fmt, columns
        self.writer = None
        self.n = 0

    def write(self, rec: dict) -> None:
        if self.fmt == "csv":
            if self.writer is None:
                self.writer = csv.DictWriter(self.out, fieldnames=self.columns or list(rec))
                self.writer.writeheader()
            self.writer.writerow(rec)
        elif self.fmt == "json":
            self.out.write(("[\n" if self.n == 0 else ",\n") + protocol.dumps(rec))
        else:
            self.out.write(protocol.dumps(rec) + "\n")
        self.n += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write("[]\n" if self.n == 0 else "\n]\n")
        elif self.fmt == "csv" and self.writer is None and self.columns:
            csv.DictWriter(self.out, fieldnames=self.columns).writeheader()
        self.out.flush()


def _notes(path, nonfinite: int) -> None:
    """What the user should know about a file that was analysed."""
    if nonfinite:
        say("analyze", f"{path}: {nonfinite} samples were NaN or infinite; they were treated as silence")


def _duration(path) -> float | None:
    try:
        i = sf.info(str(path))
        return i.frames / i.samplerate
    except Exception:
        return None


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dicts -> one level with ``a_b`` keys (CSV columns)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def analyze_songs(paths: list[str], model: EmotionModel, song_model_path: str | None = None, fmt: str = "jsonl",
                  out_path: str | None = None, hop: float | None = None) -> int:
    """One whole-song object per file, to ``out_path`` or stdout."""
    if hop not in (None, model.features.frame_seconds):
        say("analyze", f"--song uses the model's own {model.features.frame_seconds} s frames; leave out --hop")
        return ExitCode.USAGE
    try:
        song_model = open_song_model(song_model_path)
    except ModelError as e:
        say("analyze", str(e))
        return ExitCode.USAGE
    to_file = bool(out_path) and out_path != "-"
    out = open(out_path, "w", newline="") if to_file else sys.stdout  # noqa: SIM115
    failed = []
    records = _Records(out, fmt)
    try:
        for path in paths:
            try:
                res = analyze_song(model, path, song_model)
            except (AudioDecodeError, SongTooShortError) as e:
                failed.append(str(path))
                say("analyze", str(e))
                continue
            _notes(path, res.nonfinite)
            rec = {"file": str(path), **res.to_dict(song_model, model)}
            records.write(flatten(rec) if fmt == "csv" else rec)
            out.flush()
        records.close()
    except BrokenPipeError:
        return ExitCode.OK
    finally:
        if to_file:
            out.close()
    return _exit(failed, len(paths), "analysed")


def _exit(failed: list[str], total: int, what: str) -> int:
    if failed:
        say("analyze", f"{len(failed)} of {total} files could not be {what}: " + ", ".join(failed))
        return ExitCode.DECODE
    return ExitCode.OK
