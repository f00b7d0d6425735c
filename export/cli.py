"""``emotrack export``: the VAE-LSTM of a training run -> ONNX (parity-gated) + model card."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from emotrack.models.cli import evaluate_model, run_clips

from .accurate_export import export_accurate_run
from .card import write_card, write_student_card
from .onnx_export import ExportParityError, export_onnx
from .student_export import export_student


def open_run(run: Path, weights: str, prog: str, train: str) -> dict | None:
    """The report.json of a training run, or None after telling the user which command
    makes the missing ``weights`` file. Both export commands start here."""
    if not (run / weights).exists():
        print(f"emotrack {prog}: {run}/{weights} not found; run `emotrack {train} --out {run}` first",
              file=sys.stderr)
        return None
    return json.loads((run / "report.json").read_text())


def out_dir(args) -> Path:
    """``--out``, or the package's assets folder (where the shipped models live)."""
    return Path(args.out) if args.out else Path(__file__).resolve().parent.parent / "assets"


def cmd_export(args) -> int:
    run = Path(args.run)
    if (run / "student.pt").exists():
        return export_student_run(args, run)
    if (run / "accurate.pt").exists():
        return export_accurate_run(args, run, out_dir(args))
    report = open_run(run, "vae_lstm.pt", "export", "train")
    if report is None:
        return 2
    out = out_dir(args)
    onnx_path = out / f"{args.name}.onnx"
    try:
        export_onnx(run / "vae_lstm.pt", onnx_path, name=args.name, version=args.model_version,
                    extra_meta={"trained_on": sorted(report["data"])})
    except ExportParityError as e:
        print(f"emotrack export: {e}", file=sys.stderr)
        return 1
    onnx_eval = evaluate_model(onnx_path, run_clips(report), "test")
    write_card(out, args.name, onnx_path, report, onnx_eval)
    print(f"wrote {onnx_path} and {out}/{args.name}.card.json / MODEL_CARD.md")
    return 0


def export_student_run(args, run: Path) -> int:
    """The student of a ``train --teachers`` run: ONNX (parity-gated), evaluated through the
    runtime on the test splits, and its card, with the seed and leave-one-dataset-out summary
    of ``--summary`` (``emotrack evaluate --student-runs ... --format json``)."""
    report = open_run(run, "student.pt", "export", "train --teachers")
    if report is None:
        return 2
    if args.previous_summary and not Path(args.previous_summary[1]).exists():
        print(f"emotrack export: --previous-summary: {args.previous_summary[1]} not found", file=sys.stderr)
        return 2
    if not args.summary or not Path(args.summary).exists():
        print("emotrack export: a student's card needs --summary FILE, the output of `emotrack evaluate "
              "--student-runs RUN... --lodo-runs RUN... --format json` (scripts/train-student.sh writes it)",
              file=sys.stderr)
        return 2
    out = out_dir(args)
    onnx_path = out / f"{args.name}.onnx"
    test = [c for c in run_clips(report) if c.dataset != "debian"]
    with tempfile.TemporaryDirectory() as tmp:
        float_copy = None if args.float else Path(tmp) / "float.onnx"
        try:
            _, parity = export_student(run / "student.pt", onnx_path, name=args.name, version=args.model_version,
                                       extra_meta={"trained_on": sorted(report["data"])}, int8=not args.float,
                                       float_copy=float_copy)
        except ExportParityError as e:
            print(f"emotrack export: {e}", file=sys.stderr)
            return 1
        onnx_eval = evaluate_model(onnx_path, test, "test")
        # what the int8 layer costs, on the same songs: the float graph's results, for the card
        float_eval = evaluate_model(float_copy, test, "test") if float_copy else None
    summary = json.loads(Path(args.summary).read_text())
    previous = None
    if args.previous_summary:
        label, path = args.previous_summary
        previous = {"name": label, "path": path, "summary": json.loads(Path(path).read_text())}
    write_student_card(out, args.name, args.model_version, onnx_path, report, onnx_eval, summary, parity,
                       previous=previous, float_eval=float_eval)
    print(f"wrote {onnx_path} and {out}/{args.name}.card.json / MODEL_CARD.md")
    return 0
