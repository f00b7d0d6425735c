"""The accurate whole-song model, opt-in (``emotrack train-song --teacher-features``): one RBF
SVR per dimension on the statistics of the musicnn teachers' outputs over a song.

Features: the teachers' 500 outputs (both models' tag logits and penultimate layers, see
:mod:`emotrack.models.teacher_pass`) on the causal ~3 s windows ending every ``stride``
frames of 0.5 s (t = 0.5 s * stride * k), their mean and std (ddof 0) over the song: 1,000
numbers, standardised on the training songs. The stride is chosen on the validation split
among ``STRIDES``: the longest whose validation score is within ``STRIDE_TOLERANCE`` of the
best (a window every 0.5 s costs six times the teachers' time of one every 3 s). The SVRs have the benchmark's settings (``SVR_PARAMS``)
and are fit on the training splits of the chosen datasets, the same songs as the default
song model. The report holds the validation and test tables with, on the same songs, the
shipped song model and the mean of the shipped dynamic model's trajectory, both through
the runtime.

At run time the teachers run (``musicnn-teachers.onnx``) on windows computed by
:mod:`emotrack.realtime.core.teacher` from the same 22,050 Hz signal, so training and run
time see the same features (tested).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from emotrack.realtime.core.model import load_model
from emotrack.realtime.core.song import SongModel
from torch import nn

from .cache import load_features
from .data import Clip
from .song import (
    SVR_PARAMS,
    data_summary,
    evaluate_split,
    fit_svrs,
    selection_score,
    svr_state,
    torch_modules,
    trajectories,
)
from .static import standardiser, static_labels
from .teacher_head import teacher_features
from .teacher_pass import has_targets

STRIDES = (6, 2, 1)  # frames of 0.5 s between windows, the cheapest first
# a stride within this much of the best validation score counts as as good: the score's bootstrap
# spread over the validation songs is several times larger, and every 3 s costs a sixth of every 0.5 s
STRIDE_TOLERANCE = 0.01
METHOD = "SVR (teacher features)"


def window_features(clip: Clip, stride: int) -> np.ndarray:
    """(windows, 500): the cached teacher outputs at frames stride, 2 stride, ... of a clip."""
    f = teacher_features(clip, len(load_features(clip)))[stride - 1::stride]
    return f[np.isfinite(f).all(1)]


def song_statistics(f: np.ndarray) -> np.ndarray:
    """(windows, 500) -> (1000,): mean and std (ddof 0) of each output."""
    return np.concatenate([f.mean(0), f.std(0)]).astype(np.float32)


def train_accurate_song(clips: list[Clip], out: Path, strides=STRIDES, log=print, sources: dict | None = None) -> dict:
    """Fit the SVRs for each stride, keep the best on validation; write ``out``/song_accurate.pt
    and report.json."""
    t0 = time.time()
    clips = [c for c in clips if static_labels(c) is not None]
    missing = [c.key for c in clips if not has_targets(c)]
    if missing:
        raise ValueError(f"{len(missing)} clips have no teacher outputs (e.g. {missing[0]}): run "
                         "`emotrack teacher-pass` over the same datasets first")
    y = np.array([static_labels(c)[0] for c in clips])
    split = np.array([c.split for c in clips])
    train, val = split == "train", split == "val"
    if train.sum() < 10:
        raise ValueError(f"only {int(train.sum())} training songs with song-level labels; need at least 10")
    fits, preds, scores = {}, {}, {}
    val_clips = [c for c, k in zip(clips, val, strict=True) if k]
    for stride in strides:
        x = np.array([song_statistics(window_features(c, stride)) for c in clips])
        mean, scale = standardiser(x[train])
        z = np.nan_to_num((x - mean) / scale)
        svrs = fit_svrs(z[train], y[train])
        p = np.column_stack([s.predict(z) for s in svrs]).clip(-1, 1)
        name = f"{METHOD}, a window every {0.5 * stride:g} s"
        fits[stride], preds[name] = (mean, scale, svrs), p
        scores[stride] = selection_score(evaluate_split(val_clips, {name: p[val]}))
        log(f"stride {0.5 * stride:g} s: validation score {scores[stride]:.3f}")
    best = max(scores.values())
    stride = max(s for s in strides if scores[s] >= best - STRIDE_TOLERANCE)  # the cheapest near the best
    held = np.flatnonzero(~train)
    shipped, traj = np.full((len(clips), 2), np.nan), np.full((len(clips), 2), np.nan)
    song_model, dynamic = SongModel(), load_model()  # the shipped song model reads this trajectory if made for it
    runs = trajectories([clips[i] for i in held], dynamic)
    traj[held] = [m[:, :2].mean(0) for m in runs]
    shipped[held] = [song_model.whole(load_features(clips[i]), m, dynamic) for i, m in zip(held, runs, strict=True)]
    preds[f"shipped song model ({song_model.label})"] = shipped
    preds["trajectory mean (shipped VAE-LSTM)"] = traj
    mean, scale, svrs = fits[stride]
    report = {"method": METHOD, "stride_frames": stride, "stride_seconds": 0.5 * stride, "svr": SVR_PARAMS,
              "features": "mean and std of the musicnn teachers' 500 outputs over the song's windows (1000)",
              "selection_val_score": {f"{0.5 * s:g} s": scores[s] for s in strides},
              "data": data_summary(clips), "sources": sources or {}, "train_seconds": round(time.time() - t0, 1)}
    for sp in ("val", "test"):
        m = split == sp
        report[sp] = evaluate_split([c for c, k in zip(clips, m, strict=True) if k], {k: v[m] for k, v in preds.items()})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"kind": "song-accurate", "stride_frames": stride, "mean": mean, "scale": scale,
                "svrs": [svr_state(s) for s in svrs]},
               out / "song_accurate.pt")
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def accurate_head(run: Path) -> tuple[nn.Module, int]:
    """The torch head of a run: features (N, 500) -> valence (), arousal (); and its stride."""
    ck = torch.load(Path(run) / "song_accurate.pt", map_location="cpu", weights_only=False)
    _, RbfSvr, _, Standardise, _ = torch_modules()

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.standardise = Standardise(ck["mean"], ck["scale"])
            self.svr_v, self.svr_a = (RbfSvr(s["sv"], s["coef"], s["intercept"], s["gamma"]) for s in ck["svrs"])

        def forward(self, features):
            mean = features.mean(0)
            std = ((features - mean) ** 2).mean(0).sqrt()
            z = self.standardise(torch.cat([mean, std]))
            return self.svr_v(z).clamp(-1.0, 1.0), self.svr_a(z).clamp(-1.0, 1.0)

    return Head().eval(), int(ck["stride_frames"])
