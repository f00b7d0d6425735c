"""``emotrack export``: the VAE-LSTM of a training run -> ONNX (parity-gated) + model card."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from emotrack.models.cli import evaluate_model, load_clips

from .card import write_card
from .onnx_export import ExportParityError, export_onnx


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


def run_clips(report: dict) -> list:
    """The clips the run was trained on, from the sources its report recorded (the export
    evaluates the ONNX file on their test split)."""

    src = report.get("sources") or {}
    return load_clips(src.get("data") or None, src.get("datasets"), src.get("roots") or {}, src.get("limit"))


def cmd_export(args) -> int:


    run = Path(args.run)
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
