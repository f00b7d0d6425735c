"""The head of a ``train --accurate`` run -> ONNX (parity-gated), checked end to end through
the runtime from audio files, and its model card (``emotrack export --run RUN``). Offline.

Graph: ``features (B,T,500), h (1,B,H), c (1,B,H) -> valence, arousal, valence_std,
arousal_std, descriptors (B,T,K), h_out, c_out``: the teachers' raw outputs in, their
standardisation built in; the descriptors are the sigmoid of the teachers' own logits of
``distill.DESCRIPTORS``. The teachers' graph (``musicnn-teachers.onnx``) sits beside it:
the one already there is used if it is this runtime's, otherwise it is exported from the
torch port. The gate compares torch with onnxruntime on a whole sequence, the whole
sequence with step by step, from a random non-zero state, and checks that swapping h and c
matters; then, for a few test clips with audio files, the runtime's whole path (decoding,
resampling, the numpy front end, both graphs) must reproduce the answers on the cached
training features within 1e-3.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from emotrack.models.accurate import load_accurate
from emotrack.models.cli import evaluate_model, run_clips
from emotrack.models.distill import StudentHead
from emotrack.models.evaluate import evaluate_predictions
from emotrack.models.seqs import build_seqs
from emotrack.models.teacher_head import teacher_features
from emotrack.realtime.assets import TEACHERS_MODEL, default_model_path
from emotrack.realtime.core.accurate import KIND, AccurateModel
from emotrack.realtime.core.config import FEATURES
from emotrack.realtime.core.model import ModelError
from emotrack.realtime.core.teacher import FEATURE_DIM, TeacherModel
from emotrack.realtime.core.tracker import stream_file
from torch import nn

from .card import write_markdown
from .onnx_export import OPSET, PARITY_TOL, ExportParityError, finish_onnx
from .teacher_export import export_teachers

OUTPUTS = ["valence", "arousal", "valence_std", "arousal_std", "descriptors", "h_out", "c_out"]
END_TO_END_TOL = 1e-3  # the float16 step of the front end falls differently for a few bins (numpy vs librosa)


def raw_descriptor_columns(index: list[int]) -> list[int]:
    """Columns of the descriptors in the 500 raw outputs (MSD logits 0-49, MSD penultimate,
    MTT logits 250-299, MTT penultimate), from their index in the 100 logits (MSD's, then MTT's)."""
    return [i if i < 50 else 250 + i - 50 for i in index]


class AccurateGraph(nn.Module):
    """Raw teacher outputs -> standardised -> LSTM head; descriptors from the raw logits."""

    def __init__(self, head: StudentHead, mu: np.ndarray, sd: np.ndarray, columns: list[int]):
        super().__init__()
        self.head = head
        self.register_buffer("mu", torch.from_numpy(np.asarray(mu, np.float32)))
        self.register_buffer("sd", torch.from_numpy(np.asarray(sd, np.float32)))
        self.register_buffer("columns", torch.as_tensor(columns, dtype=torch.long))

    def forward(self, features, h, c):
        mean, std, (h2, c2), _ = self.head((features - self.mu) / self.sd, (h, c))
        desc = torch.sigmoid(features.index_select(-1, self.columns))
        return mean[..., 0], mean[..., 1], std[..., 0], std[..., 1], desc, h2, c2


def teachers_beside(out_dir: Path) -> tuple[Path, dict]:
    """The teachers' graph in ``out_dir``: the one there if this runtime accepts it, else exported."""
    path = out_dir / TEACHERS_MODEL
    if path.exists():
        try:
            return path, {"reused": TeacherModel(path).label}
        except ModelError:
            pass
    return export_teachers(path)


def export_accurate(ckpt: Path, out: Path, name: str = "emotrack-accurate", version: str = "1",
                    extra_meta: dict | None = None) -> tuple[Path, dict]:
    """Write ``out`` (.onnx) and the teachers' graph beside it; raise ExportParityError on a mismatch."""
    head, ck = load_accurate(Path(ckpt))
    graph = AccurateGraph(head, ck["teacher_mu"], ck["teacher_sd"], raw_descriptor_columns(ck["descriptor_index"]))
    graph.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    teachers, teacher_parity = teachers_beside(out.parent)
    L, H = head.cfg.lstm_layers, head.cfg.lstm_hidden
    dyn = {"features": {0: "batch", 1: "time"}, "h": {1: "batch"}, "c": {1: "batch"}, "h_out": {1: "batch"},
           "c_out": {1: "batch"}, **{n: {0: "batch", 1: "time"} for n in OUTPUTS[:5]}}
    with torch.no_grad():
        torch.onnx.export(graph, (torch.randn(1, 6, FEATURE_DIM), torch.zeros(L, 1, H), torch.zeros(L, 1, H)),
                          str(out), input_names=["features", "h", "c"], output_names=OUTPUTS, dynamic_axes=dyn,
                          opset_version=OPSET, dynamo=False)
    meta = {"name": name, "version": version, "kind": KIND, "features": FEATURES.to_dict(),
            "net": head.cfg.to_dict(), "hidden_size": H, "num_layers": L, "outputs": OUTPUTS, "scale": "DEAM [-1, 1]",
            "descriptors": list(ck["descriptors"]), "descriptor_typical": ck["descriptor_typical"],
            "teachers_file": teachers.name, "teachers": TeacherModel(teachers).label,
            "method": "stateful LSTM on the musicnn teachers' outputs (3 s causal windows every 0.5 s)"}
    finish_onnx(out, {**meta, **(extra_meta or {})})
    parity = parity_check(graph, out, ck)
    return out, {**parity, "teachers": teacher_parity}


@torch.no_grad()
def parity_check(graph: AccurateGraph, path: Path, ck: dict, T: int = 24, seed: int = 0) -> dict:
    m = AccurateModel(path)
    g = torch.Generator().manual_seed(seed)
    H = m.hidden_size
    # inputs spread like the teachers' outputs: the training mean plus the training std times noise
    x = torch.from_numpy(ck["teacher_mu"]) + torch.from_numpy(ck["teacher_sd"]) * torch.randn(1, T, FEATURE_DIM, generator=g)
    h0, c0 = torch.randn(1, 1, H, generator=g) * 0.5, torch.randn(1, 1, H, generator=g) * 0.5
    ref = [r.numpy() for r in graph(x, h0, c0)]
    s0 = m.zero_state()
    s0.h, s0.c = h0.numpy(), c0.numpy()
    whole, s1 = m.run_features(x[0].numpy(), s0)
    state, steps = s0, []
    for t in range(T):
        o, state = m.run_features(x[0, t:t + 1].numpy(), state)
        steps.append([o.valence[0], o.arousal[0], o.valence_std[0], o.arousal_std[0], *o.descriptors[0]])
    arr = lambda o: np.column_stack([o.valence, o.arousal, o.valence_std, o.arousal_std, o.descriptors])  # noqa: E731
    torch_arr = np.column_stack([r[0] for r in ref[:4]] + [ref[4][0]])
    diffs = {"torch_vs_onnx": float(np.abs(torch_arr - arr(whole)).max()),
             "torch_vs_onnx_state": float(max(np.abs(ref[5] - s1.h).max(), np.abs(ref[6] - s1.c).max())),
             "whole_vs_steps": float(np.abs(arr(whole) - np.array(steps)).max()),
             "final_state_whole_vs_steps": float(max(np.abs(s1.h - state.h).max(), np.abs(s1.c - state.c).max()))}
    s0.h, s0.c = c0.numpy(), h0.numpy()
    diffs["swapped_state_effect"] = float(np.abs(m.run_features(x[0].numpy(), s0)[0].valence - whole.valence).max())
    bad = {k: v for k, v in diffs.items() if k != "swapped_state_effect" and not v <= PARITY_TOL}
    if bad or diffs["swapped_state_effect"] < 1e-6:
        raise ExportParityError(f"{path}: parity failed {diffs} (tolerance {PARITY_TOL})")
    return diffs


def evaluate_accurate(path: Path, clips, split: str = "test", end_to_end: int = 6) -> tuple[dict, dict]:
    """The exported model through the runtime on the cached teacher outputs of ``split``
    (metrics per dataset); and, for ``end_to_end`` of its clips with audio files, the whole
    runtime path from the file against those answers."""
    m = AccurateModel(path)
    seqs = build_seqs([c for c in clips if c.split == split])
    preds = {}
    for s in seqs:
        o, _ = m.run_features(np.nan_to_num(teacher_features(s.clip, len(s.mel)), nan=0.0), m.zero_state())
        preds[s.key] = np.stack([o.valence, o.arousal, o.valence_std, o.arousal_std], 1)
    by_set: dict[str, list] = {}
    for s in seqs:
        if s.clip.audio is not None:
            by_set.setdefault(s.clip.dataset, []).append(s)
    per_set = max(1, end_to_end // max(1, len(by_set)))
    worst, checked = 0.0, []
    for s in [s for ds in sorted(by_set) for s in by_set[ds][:per_set]]:
        got = np.array([[p.valence, p.arousal, p.valence_std, p.arousal_std] for p in stream_file(m, s.clip.audio)])
        n = min(len(got), len(preds[s.key]))
        worst = max(worst, float(np.abs(got[:n] - preds[s.key][:n]).max()))
        checked.append(s.key)
    return evaluate_predictions(seqs, preds), {"clips": checked, "max_abs_difference": worst}


def export_accurate_run(args, run: Path, out: Path) -> int:
    """``emotrack export --run RUN`` for a ``train --accurate`` run: the ONNX head (parity-gated),
    evaluated through the runtime, checked end to end, and its card, in ``out``."""
    report = json.loads((run / "report.json").read_text())
    name = args.name if args.name != "emotrack-vae-lstm" else "emotrack-accurate"
    version = args.model_version if args.name != "emotrack-vae-lstm" else "1"
    path = out / f"{name}.onnx"
    try:
        path, parity = export_accurate(run / "accurate.pt", path, name, version, {"trained_on": sorted(report["data"])})
    except ExportParityError as e:
        print(f"emotrack export: {e}", file=sys.stderr)
        return 1
    clips = run_clips(report)
    onnx_test, e2e = evaluate_accurate(path, clips)
    if not e2e["max_abs_difference"] <= END_TO_END_TOL:
        print(f"emotrack export: the runtime's path from audio files does not reproduce the training features "
              f"({e2e})", file=sys.stderr)
        return 1
    teachers = out / TEACHERS_MODEL
    default_test = evaluate_model(default_model_path(), [c for c in clips if c.dataset != "debian"])
    card = {"name": name, "version": version, "kind": "accurate", "onnx": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "teachers_onnx": teachers.name,
            "teachers_sha256": hashlib.sha256(teachers.read_bytes()).hexdigest(), "run": str(run), "parity": parity,
            "report": report, "onnx_test": onnx_test, "default_test": default_test, "end_to_end": e2e}
    card["other_runs"] = {str(r): json.loads((Path(r) / "report.json").read_text()) for r in args.accurate_runs}
    if args.bench:
        card["bench"] = json.loads(Path(args.bench).read_text())
    (out / f"{name}.card.json").write_text(json.dumps(card, indent=1) + "\n")
    write_markdown(out)
    print(f"wrote {path} and {out}/{name}.card.json / MODEL_CARD.md")
    return 0
