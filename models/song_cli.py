"""``emotrack train-song``: the default whole-song model (an SVR on the VAE codes' or the
dynamic trajectory's statistics, :mod:`emotrack.models.song`) or, with ``--teacher-features``, the accurate one
(:mod:`emotrack.models.song_accurate`). Offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .cli import load_clips
from .song import DEFAULT_DATASETS, cross_validate_song, format_cv_report, format_report, train_song
from .song_accurate import train_accurate_song
from .static import TnnConfig


def cmd_train_song(args) -> int:

    datasets = args.datasets or list(DEFAULT_DATASETS)
    try:
        clips = load_clips(args.data, datasets, {}, args.limit)
        sources = {"data": str(args.data or ""), "datasets": datasets, "limit": args.limit,
                   "command": "emotrack " + " ".join(sys.argv[1:])}
        log = lambda s: print(f"emotrack train-song: {s}", file=sys.stderr)  # noqa: E731
        if args.cv is not None:
            if args.teacher_features:
                raise ValueError("--cv scores the default model's heads; it does not take --teacher-features")
            report = cross_validate_song(clips, Path(args.run), args.cv, TnnConfig(epochs=args.epochs), jobs=args.jobs,
                                         progress=not args.no_progress, dim=args.dim, log=log, sources=sources,
                                         songs=args.cv_songs, fit=args.cv_fit)
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "cv.json").write_text(json.dumps(report, indent=1) + "\n")
            print(format_cv_report(report))
            print(f"wrote {args.out}/cv.json", file=sys.stderr)
            return 0
        if args.teacher_features:
            report = train_accurate_song(clips, Path(args.out), log=log, sources=sources)
            print(format_report(report, "val" if args.show_val else "test"))
            print(f"wrote {args.out}/song_accurate.pt and report.json", file=sys.stderr)
            return 0
        report = train_song(clips, Path(args.run), Path(args.out), TnnConfig(epochs=args.epochs), jobs=args.jobs,
                            progress=not args.no_progress, dim=args.dim, heads=tuple(args.heads),
                            log=log, sources=sources)
    except (FileNotFoundError, ValueError) as e:
        print(f"emotrack train-song: {e}", file=sys.stderr)
        return 2
    print(format_report(report, "val" if args.show_val else "test"))
    print(f"wrote {args.out}/song.pt and report.json", file=sys.stderr)
    return 0
