"""``emotrack analyze``: the streaming path over files, as fast as possible (main thread).

One JSON object (or CSV row) per prediction; several files get a ``file`` field and a
progress bar on stderr. An undecodable file is reported with its reason and skipped; the
exit code is then non-zero, but every other file is still analysed.

``--song``: one JSON object (or CSV row) per file instead: the whole-song valence and
arousal of the shipped TNN-SVR model and a summary of the dynamic trajectory, both from
one read of the file.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from .audio import AudioDecodeError, read_blocks
from .model import ModelMismatchError, load_model
from .pipeline import stream_blocks

FIELDS = ["t", "valence", "arousal", "valence_std", "arousal_std"]
EXIT_DECODE = 3  # some input files could not be decoded


def run_analyze(args) -> int:
    try:
        model = load_model(args.model)
    except (ModelMismatchError, FileNotFoundError) as e:
        print(f"emotrack analyze: {e}", file=sys.stderr)
        return 2
    if args.song or args.song_model:
        return run_analyze_song(args, model)
    multi = len(args.audio) > 1
    out = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115
    failed = []
    try:
        writer = None
        if args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=(["file"] if multi else []) + FIELDS)
            writer.writeheader()
        progress = _progress(args, multi)
        for path in args.audio:
            try:
                sr, _, blocks = read_blocks(path)
                total = _duration(path)
                if progress is not None:
                    progress.reset(total=round(total or 0, 1))
                    progress.set_description(Path(path).name[:30])
                for p in stream_blocks(model, sr, blocks, hop=args.hop):
                    rec = p.to_dict()
                    if multi:
                        rec = {"file": str(path), **rec}
                    if writer:
                        writer.writerow(rec)
                    else:
                        out.write(json.dumps(rec) + "\n")
                    if progress is not None:
                        progress.update(round(p.t - progress.n, 1))
                out.flush()
            except AudioDecodeError as e:
                failed.append(str(path))
                print(f"emotrack analyze: {e}", file=sys.stderr)
            except ValueError as e:  # bad --hop and the like: nothing else will work either
                print(f"emotrack analyze: {e}", file=sys.stderr)
                return 2
        if progress is not None:
            progress.close()
    except BrokenPipeError:
        return 0
    finally:
        if args.out:
            out.close()
    return _exit(failed, len(args.audio), "decoded")


def _duration(path) -> float | None:
    import soundfile as sf

    try:
        i = sf.info(str(path))
        return i.frames / i.samplerate
    except Exception:
        return None


def _progress(args, multi: bool):
    if args.no_progress or not (multi or args.out) or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=0, unit="s", file=sys.stderr, leave=False)


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dicts -> one level with ``a_b`` keys (CSV columns)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_analyze_song(args, model) -> int:
    from .song import SongModel, SongTooShortError, analyze_song

    if args.hop not in (None, model.features.frame_seconds):
        print(f"emotrack analyze: --song uses the model's own {model.features.frame_seconds} s frames; "
              "leave out --hop", file=sys.stderr)
        return 2
    try:
        song_model = SongModel(args.song_model)
    except (ModelMismatchError, FileNotFoundError) as e:
        print(f"emotrack analyze: {e}", file=sys.stderr)
        return 2
    out = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115
    failed = []
    writer = None
    try:
        for path in args.audio:
            try:
                res = analyze_song(path, model, song_model)
            except (AudioDecodeError, SongTooShortError) as e:
                failed.append(str(path))
                print(f"emotrack analyze: {e}", file=sys.stderr)
                continue
            rec = {"file": str(path), **res.to_dict(song_model, model)}
            if args.format == "csv":
                row = flatten(rec)
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
            else:
                out.write(json.dumps(rec) + "\n")
            out.flush()
    except BrokenPipeError:
        return 0
    finally:
        if args.out:
            out.close()
    return _exit(failed, len(args.audio), "analysed")


def _exit(failed: list[str], total: int, what: str) -> int:
    if failed:
        print(f"emotrack analyze: {len(failed)} of {total} files could not be {what}: " + ", ".join(failed),
              file=sys.stderr)
        return EXIT_DECODE
    return 0
