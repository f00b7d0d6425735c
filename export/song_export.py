"""``emotrack export-song``: the TNN-SVR of a ``train-song`` run -> one ONNX graph
(mel frames -> whole-song valence, arousal and the TNN embedding), parity-gated, and its
model card. Offline.

Graph: ``mel (T, n_mels, n_t) -> valence (), arousal (), embedding (d,)``; only T is
dynamic. The parity gate compares torch and onnxruntime at several song lengths (one
frame included), and the in-graph code statistics with ``static.code_statistics``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from emotrack.export.card import SONG_PARITY_LENGTHS, write_markdown
from emotrack.export.cli import open_run, out_dir, run_clips
from emotrack.models.cache import load_features
from emotrack.models.song import evaluate_split, load_song_net
from emotrack.models.static import code_statistics, static_labels
from emotrack.realtime.core.config import FEATURES
from emotrack.realtime.core.song import SongModel

from .onnx_export import OPSET, PARITY_TOL, ExportParityError, finish_onnx

PARITY_LENGTHS = SONG_PARITY_LENGTHS


def export_song_onnx(run: Path, out: Path, name: str = "emotrack-song", version: str = "1",
                     extra_meta: dict | None = None) -> tuple[Path, dict]:
    """Write ``out`` and check parity; raise ExportParityError on a mismatch."""

    net, cfg = load_song_net(Path(run))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    mel = torch.randn(7, *FEATURES.frame_shape)
    names_out = ["valence", "arousal", "embedding"]
    torch.onnx.export(net, (mel,), str(out), input_names=["mel"], output_names=names_out,
                      dynamic_axes={"mel": {0: "time"}}, opset_version=OPSET, dynamo=False)
    meta = {"name": name, "version": version, "kind": "song", "features": FEATURES.to_dict(),
            "outputs": names_out, "scale": "DEAM [-1, 1]", "embedding_dim": cfg.dim,
            "method": "TNN-SVR on VAE-code statistics (mean, std, p10, p50, p90)"}
    finish_onnx(out, {**meta, **(extra_meta or {})})
    return out, parity_check(net, out)


@torch.no_grad()
def parity_check(net, path: Path, seed: int = 0) -> dict:

    g = torch.Generator().manual_seed(seed)
    sm = SongModel(path)
    worst = {"torch_vs_onnx": 0.0, "embedding": 0.0, "stats_vs_numpy": 0.0}
    outs = []
    for T in PARITY_LENGTHS:
        mel = torch.randn(T, *FEATURES.frame_shape, generator=g) * 0.7
        v, a, e = net(mel)
        ov, oa, oe = sm.session.run(["valence", "arousal", "embedding"], {"mel": mel.numpy()})
        worst["torch_vs_onnx"] = max(worst["torch_vs_onnx"], abs(float(v) - float(ov)), abs(float(a) - float(oa)))
        worst["embedding"] = max(worst["embedding"], float(np.abs(e.numpy() - oe).max()))
        codes = net.codes(mel)
        ref = code_statistics(codes.numpy())
        worst["stats_vs_numpy"] = max(worst["stats_vs_numpy"], float(np.abs(net.stats(codes).numpy() - ref).max()))
        outs.append((float(ov), float(oa)))
    # different songs must give different answers, or the comparison above proves little
    worst["spread"] = float(np.ptp(np.array(outs), axis=0).max())
    bad = {k: v for k, v in worst.items() if k != "spread" and not v <= PARITY_TOL}
    if bad or worst["spread"] < 1e-4:
        raise ExportParityError(f"{path}: parity failed {worst} (tolerance {PARITY_TOL})")
    return worst


def evaluate_song_onnx(path: Path, clips, split: str = "test") -> dict:
    """The exported graph, through the runtime, on the cached frames of ``split``."""

    sm = SongModel(path)
    clips = [c for c in clips if c.split == split and static_labels(c) is not None]
    p = np.array([sm.predict(load_features(c)) for c in clips])
    return evaluate_split(clips, {"shipped (ONNX)": p})


def cmd_export_song(args) -> int:

    run = Path(args.run)
    report = open_run(run, "song.pt", "export-song", "train-song")
    if report is None:
        return 2
    out = out_dir(args)
    path = out / f"{args.name}.onnx"
    try:
        path, parity = export_song_onnx(run, path, args.name, args.model_version,
                                        {"trained_on": sorted(report["data"])})
    except ExportParityError as e:
        print(f"emotrack export-song: {e}", file=sys.stderr)
        return 1
    card = {"name": args.name, "onnx": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "run": str(run), "parity": parity, "report": report, "onnx_test": evaluate_song_onnx(path, run_clips(report))}
    (out / f"{args.name}.card.json").write_text(json.dumps(card, indent=1) + "\n")
    write_markdown(out)
    print(f"wrote {path} and {out}/{args.name}.card.json / MODEL_CARD.md")
    return 0
