"""``emotrack export``: the VAE-LSTM of a training run -> ONNX (parity-gated) + model card."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cmd_export(args) -> int:
    from emotrack.models.cli import evaluate_model, load_clips

    from .card import write_card
    from .onnx_export import ExportParityError, export_onnx

    run = Path(args.run)
    if not (run / "vae_lstm.pt").exists():
        print(f"emotrack export: {run}/vae_lstm.pt not found; run `emotrack train --out {run}` first",
              file=sys.stderr)
        return 2
    report = json.loads((run / "report.json").read_text())
    out_dir = Path(args.out) if args.out else Path(__file__).resolve().parent.parent / "assets"
    onnx_path = out_dir / f"{args.name}.onnx"
    try:
        export_onnx(run / "vae_lstm.pt", onnx_path, name=args.name, version=args.model_version,
                    extra_meta={"trained_on": sorted(report["data"])})
    except ExportParityError as e:
        print(f"emotrack export: {e}", file=sys.stderr)
        return 1
    src = report.get("sources", {})
    clips = load_clips(src["data"], src.get("datasets"), src.get("roots") or {}, src.get("limit"))
    onnx_eval = evaluate_model(onnx_path, clips, "test")
    write_card(out_dir, args.name, onnx_path, report, onnx_eval)
    print(f"wrote {onnx_path} and {out_dir}/{args.name}.card.json / MODEL_CARD.md")
    return 0
