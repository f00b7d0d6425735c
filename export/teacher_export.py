"""The musicnn teachers as one ONNX graph for the runtime (``musicnn-teachers.onnx``), from
the torch port of :mod:`emotrack.models.teachers`, parity-gated. Offline (needs the train
extra and musicnn's wheel for the weights); ``emotrack export-song`` writes it next to an
accurate whole-song model.

Graph: ``patches (B, 187, 96)`` compressed mel windows (the runtime's front end,
:mod:`emotrack.realtime.core.teacher`) -> ``features (B, 500)``: MSD_musicnn's 50 tag
logits and 200-d penultimate layer, then MTT_musicnn's, the order of the teacher pass's
cache. The weights are musicnn's (Pons & Serra, ISC licence; see MODEL_LICENSE.md).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from emotrack.models.teacher_pass import KEYS
from emotrack.models.teachers import LABELS, TEACHERS, load_teacher
from emotrack.realtime.core.config import FEATURES
from emotrack.realtime.core.teacher import (
    FEATURE_DIM,
    FRONT_END,
    N_MELS,
    PATCH_FRAMES,
    TeacherModel,
)
from torch import nn

from .onnx_export import OPSET, PARITY_TOL, ExportParityError, finish_onnx

VERSION = "1"


class BothTeachers(nn.Module):
    def __init__(self):
        super().__init__()
        self.nets = nn.ModuleList([load_teacher(n) for n in TEACHERS])

    def forward(self, patches):
        outs = []
        for net in self.nets:
            logits, pen, _, _ = net(patches)
            outs += [logits, pen]
        return torch.cat(outs, 1)


def feature_names() -> list[str]:
    names = []
    for key in KEYS:
        teacher, kind = key.rsplit("_", 1)
        names += ([f"{teacher}:{tag}" for tag in LABELS[teacher]] if kind == "logits"
                  else [f"{teacher}:penultimate{i}" for i in range(200)])
    return names


def export_teachers(out: Path) -> tuple[Path, dict]:
    """Write ``out`` (the ONNX graph) and check it against torch; raise ExportParityError."""

    net = BothTeachers().eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding
        torch.onnx.export(net, (torch.zeros(2, PATCH_FRAMES, N_MELS),), str(out), input_names=["patches"],
                          output_names=["features"], dynamic_axes={"patches": {0: "b"}, "features": {0: "b"}},
                          opset_version=OPSET, dynamo=False)
    names = feature_names()
    assert len(names) == FEATURE_DIM
    meta = {"name": "musicnn-teachers", "version": VERSION, "kind": "teachers", "features": FEATURES.to_dict(),
            "front_end": FRONT_END, "feature_names": names, "teachers": list(TEACHERS),
            "source": "musicnn 0.1.0 (Pons & Serra 2019), ISC licence; ported to torch by emotrack"}
    finish_onnx(out, meta)
    return out, parity_check(net, out)


@torch.no_grad()
def parity_check(net: nn.Module, path: Path, seed: int = 0) -> dict:
    """torch and onnxruntime on random patches at the compressed spectrogram's range (0-4),
    batches of 1 and 11 (more than the runtime's batch)."""
    rng = np.random.default_rng(seed)
    tm = TeacherModel(path)
    worst = 0.0
    outs = []
    for b in (1, 11):
        x = (rng.random((b, PATCH_FRAMES, N_MELS)) ** 3 * 4).astype(np.float32)
        ref = net(torch.from_numpy(x)).numpy()
        got = tm.run(x)
        worst = max(worst, float(np.abs(ref - got).max()))
        outs.append(got)
    spread = float(np.ptp(np.concatenate(outs), axis=0).max())  # different patches, different answers
    if not worst <= PARITY_TOL or spread < 1e-3:
        raise ExportParityError(f"{path}: teachers' parity failed (max |torch - onnx| {worst}, spread {spread}; "
                                f"tolerance {PARITY_TOL})")
    return {"torch_vs_onnx": worst, "spread": spread}
