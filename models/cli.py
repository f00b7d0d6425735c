"""``emotrack evaluate`` and what every training-side command shares: which clips a run
uses (main thread, offline). Torch-free: ``evaluate`` runs an exported ONNX model through
the runtime on the cached frames of each test split.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from emotrack.realtime.core.model import load_model
from emotrack.realtime.exitcodes import UsageError

from .baselines import fit_ridge, predict_ridge
from .cache import cache_dir
from .data import ROOT_LOADERS, Clip, default_data_root, load_all
from .evaluate import evaluate_predictions, format_table
from .seqs import build_seqs
from .student_eval import format_summary, summary


class DataMissing(UsageError, FileNotFoundError):
    """The data a command was pointed at is not there (the CLI prints it and exits 2; code that
    catches FileNotFoundError still does)."""


def load_clips(data: str | Path | None, datasets: list[str] | None, roots: dict[str, str],
               limit: int | None = None) -> list[Clip]:
    """The clips a run uses: shared datasets (all when ``datasets`` is None), user roots,
    at most ``limit`` per dataset and split. Train, evaluate and export all call this."""
    data = Path(data) if data else default_data_root()
    if datasets is None and roots and not data.exists():
        datasets = []  # a user with only their own DEAM/PMEmo/emoMusic audio
    if datasets != [] and not data.exists():
        raise DataMissing(f"data folder {data} not found: the labelled sets sit in ../shared/data beside the "
                          "checkout; pass --data DIR or set EMOTRACK_DATA")
    try:
        return limit_clips(load_all(data, datasets, roots), limit)
    except FileNotFoundError as e:  # a dataset root without its files, fluidsynth missing for the MIDI sets
        raise DataMissing(str(e)) from e


def add_script_arguments(ap) -> None:
    """The clip options the training-side scripts share (``scripts/sweep_head.py``,
    ``scripts/probe_*.py``): which clips, as ``emotrack train`` reads them (see :func:`script_clips`)."""
    ap.add_argument("--data", help="the shared data folder (default: as `emotrack train`)")
    ap.add_argument("--datasets", nargs="+", help="default: every dataset, as `emotrack train`")
    ap.add_argument("--limit", type=int, help="at most this many clips per dataset and split (a quick check)")
    ap.add_argument("--debian-root", help="Debian's free music (default: $EMOTRACK_CACHE/debian-music, where "
                                          "scripts/debian-music.sh puts it; left out where it is not)")


def script_clips(args) -> list[Clip]:
    """The clips of :func:`add_script_arguments`' options."""
    root = Path(args.debian_root) if args.debian_root else cache_dir() / "debian-music"
    roots = {"debian": str(root)} if (root / "root").is_dir() else {}
    return load_clips(args.data, args.datasets, roots, args.limit)


def roots_of(args) -> dict[str, str]:
    return {n: getattr(args, f"{n}_root") for n in ROOT_LOADERS if getattr(args, f"{n}_root", None)}


def limit_clips(clips: list[Clip], n: int | None) -> list[Clip]:
    if not n:
        return clips
    seen: dict = defaultdict(int)
    out = []
    for c in clips:
        k = (c.dataset, c.split)
        if seen[k] < n:
            seen[k] += 1
            out.append(c)
    return out


def evaluate_model(model_path, clips: list[Clip], split: str = "test") -> dict:
    """Run an ONNX model (through the runtime) over the cached frames of ``split``."""


    model = load_model(model_path)
    seqs = build_seqs([c for c in clips if c.split == split], chroma=model.takes_chroma)
    preds = {}
    for s in seqs:
        extra = {"chroma": s.chroma.astype(np.float32)} if model.takes_chroma else {}
        o, _ = model.run(s.mel.astype(np.float32), model.zero_state(), **extra)
        preds[s.key] = np.stack([o.valence, o.arousal, o.valence_std, o.arousal_std], 1)
    return evaluate_predictions(seqs, preds)


def baselines(clips: list[Clip], old_model: str | Path | None) -> dict:
    """The previous shipped model (an ONNX file) and the ridge baseline on mel statistics,
    on the test splits of ``clips`` (the ridge fit on their training splits)."""
    seqs = build_seqs(clips)
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val", "test")}
    out = {}
    if old_model:
        out["previous model"] = evaluate_model(old_model, clips, "test")
    ridge = fit_ridge(split["train"], split["val"])
    out["ridge (mel stats)"] = evaluate_predictions(split["test"], predict_ridge(ridge, split["test"]))
    return out


def run_clips(report: dict) -> list[Clip]:
    """The clips a run was trained on, from the sources its report recorded (export and
    ``evaluate --student-runs`` score models on their test split)."""
    src = report.get("sources") or {}
    return load_clips(src.get("data") or None, src.get("datasets"), src.get("roots") or {}, src.get("limit"))


def cmd_evaluate(args) -> int:
    args.json = args.json or args.format == "json"
    for run in (args.student_runs or []) + (args.lodo_runs or []):  # before the baselines' minutes of work
        if not (Path(run) / "report.json").is_file():
            print(f"emotrack evaluate: {run} has no report.json: give the --out folder of a finished "
                  "`emotrack train --teachers` run (a run writes it when it ends)", file=sys.stderr)
            return 2
    try:
        if args.student_runs and not args.datasets:  # the songs the runs were tested on
            report = json.loads((Path(args.student_runs[0]) / "report.json").read_text())
            clips = run_clips(report)
        else:
            clips = load_clips(args.data, args.datasets, roots_of(args))
    except FileNotFoundError as e:
        print(f"emotrack evaluate: {e}", file=sys.stderr)
        return 2
    if args.student_runs:
        base = baselines([c for c in clips if c.dataset != "debian"], args.previous_model)
        res = summary(args.student_runs, args.lodo_runs or [], base)
        print(json.dumps(res, indent=1) if args.json else format_summary(res))
        return 0
    res = {"this model": evaluate_model(args.model, clips, args.split)}
    if args.run:
        rep = json.loads((Path(args.run) / "report.json").read_text())
        res.update({k: v for k, v in rep["test"].items()})
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(format_table(res))
    return 0
