"""The accurate dynamic model, opt-in (``emotrack train --accurate``; main thread, torch on
``threads`` cores): a stateful LSTM head on the musicnn teachers' outputs, which run at run
time (:mod:`emotrack.realtime.core.accurate`).

Input of a frame: the 500 teacher outputs on the causal ~3 s window ending at the frame
(both models' 50 tag logits and 200-d penultimate layers, the cache of ``emotrack
teacher-pass``), standardised on the training frames. There is one gain only (the pass
runs at the clips' own level), so unlike the student it sees no gain augmentation.

The head is the student's stage 2 (:class:`emotrack.models.distill.StudentHead`) on these
inputs instead of the VAE codes, with the same label loss, per-set offsets (learned in
training, dropped at run time), selection on the real recordings' validation clips and
std calibration:

    L = labels + lambda_pseudo * pseudo

``pseudo`` is the Gaussian NLL against the ridge teacher head's smoothed answer
(:mod:`emotrack.models.teacher_head`) from 3 s on; the distillation terms of the student
(``tags``, ``embed``) are off, as the input already is what they would distil. The
settings in ``SETTINGS`` (LSTM width, input dropout, ``lambda_pseudo``) are each trained
and the best by validation mean r is kept; every setting's validation score is in the
report. Test splits are scored once, for the kept head, next to the ridge teacher head on
the same frames.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from emotrack.realtime.core.config import FEATURES

from . import teacher_head
from .data import Clip
from .distill import (
    StudentConfig,
    StudentHead,
    TeacherScaler,
    calibrate,
    descriptor_index,
    descriptor_names,
    head_and_targets,
    predict_head,
    train_heads,
    within_one_std,
)
from .evaluate import evaluate_predictions
from .nets import NetConfig
from .seqs import build_seqs, log
from .student_eval import levels
from .teacher_pass import has_targets
from .train import data_summary, json_default

REAL_SETS = ("soundtracks", "panda4q", "emotify")
# compared on validation; the first is the reference
SETTINGS = ({"lstm_hidden": 64, "head_dropout": 0.2, "lambda_pseudo": 1.0},
            {"lstm_hidden": 128, "head_dropout": 0.2, "lambda_pseudo": 1.0},
            {"lstm_hidden": 64, "head_dropout": 0.2, "lambda_pseudo": 0.0},
            {"lstm_hidden": 64, "head_dropout": 0.5, "lambda_pseudo": 1.0})


def base_config(seed: int = 0, threads: int = 2, quick: bool = False) -> StudentConfig:
    cfg = StudentConfig(seed=seed, threads=threads, lambda_tags=0.0, lambda_embed=0.0, head_epochs=60, patience=12,
                        pseudo_source="ridge", lambda_frame_va=0.0)  # its pseudo-labels are the ridge head's
    if quick:
        cfg = replace(cfg, head_epochs=2, batch_seqs=8, patience=2)
    return cfg


def accurate_net(hidden: int, inputs: int = 500) -> NetConfig:
    """The head's shape: 500 inputs (the teachers' outputs; 1062 with MSD_vgg's) into an LSTM of
    ``hidden`` units."""
    return NetConfig(latent_dim=inputs, lstm_hidden=hidden, lstm_layers=1)


def attach_inputs(seqs, scaler: TeacherScaler, hold: bool = False, vgg: bool = False,
                  tonal: float | None = None) -> None:
    """Each clip's standardised teacher outputs as the head's input, ``codes["student"]`` (1, T, 500);
    a frame without a window takes the training mean, or with ``hold`` the last frame that has one.
    With ``vgg``, MSD_vgg's outputs after them (1, T, 1062); with ``tonal``, the frames' tonal
    numbers after those (``teacher_head.tonal_features``)."""
    for s in seqs:
        z = scaler.apply(teacher_head.teacher_features(s.clip, len(s.mel), vgg, tonal))
        s.codes["student"] = (hold_last(z) if hold else np.nan_to_num(z, nan=0.0))[None]


def run_accurate(clips: list[Clip], out: Path, cfg: StudentConfig | None = None, settings=SETTINGS,
                 jobs: int = 2, sources: dict | None = None) -> dict:
    """Train the accurate head (every setting in ``settings``, the best on validation kept);
    write ``accurate.pt`` and ``report.json`` to ``out``."""
    cfg = cfg or base_config()
    torch.set_num_threads(cfg.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    missing = sorted({c.dataset for c in clips if not has_targets(c)})
    clips = [c for c in clips if has_targets(c)]
    if missing:
        log(f"clips of {missing} have no teacher outputs and are left out (run `emotrack teacher-pass` for them)")
    if not clips:
        raise teacher_head.no_features("clip")
    seqs = build_seqs(clips, jobs=jobs)
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val", "test")}
    for k, v in split.items():
        log(f"{k}: {len(v)} clips, {sum(len(s.mel) for s in v) / 7200:.2f} h")
    scaler = TeacherScaler(split["train"])
    th, targets = head_and_targets(seqs, split, cfg.head_sets, scaler, cfg.head_rff)
    attach_inputs(seqs, scaler)
    datasets = sorted({s.clip.dataset for s in seqs})
    tried, best = [], None
    for k, setting in enumerate(settings):
        c = replace(cfg, **setting)
        torch.manual_seed(cfg.seed * 1000 + k)
        ts = time.time()
        head, rep = train_heads(accurate_net(c.lstm_hidden), datasets, split["train"], split["val"], targets, c)
        tried.append({"setting": setting, "val_mean_r": rep["best_val_mean_r"], "epochs": len(rep["history"]),
                      "seconds": time.time() - ts})
        log(f"accurate head {setting}: val mean r {rep['best_val_mean_r']:.4f} ({time.time() - ts:.0f} s)")
        if best is None or rep["best_val_mean_r"] > best[2]["best_val_mean_r"]:
            best = (head, c, rep)
    head, chosen, rep = best
    report: dict = {"kind": "accurate", "config": asdict(chosen), "net_config": head.cfg.to_dict(),
                    "features": FEATURES.to_dict(), "sources": sources, "settings": tried, "head": rep,
                    "teacher_head": {k: th[k] for k in ("alpha", "sets", "val_score", "offsets")},
                    "data": data_summary(seqs), "calibration": calibrate(head, split["val"])}
    torch.save({"kind": "accurate", "net_config": head.cfg.to_dict(), "features": FEATURES.to_dict(),
                "head": head.state_dict(), "datasets": datasets, "teacher_mu": scaler.mu, "teacher_sd": scaler.sd,
                "descriptors": descriptor_names(), "descriptor_index": descriptor_index(),
                "descriptor_typical": scaler.typical.tolist()}, out / "accurate.pt")
    preds = {"accurate": predict_head(head, split["test"]), "teacher head": teacher_head.predictions(th, split["test"])}
    report["test"] = {k: evaluate_predictions(split["test"], p) for k, p in preds.items()}
    report["levels"] = {k: levels(split["test"], p) for k, p in preds.items()}
    report["test_within_1std"] = within_one_std(split["test"], preds["accurate"], np.ones(2)).tolist()
    report["train_seconds"] = time.time() - t0
    (out / "report.json").write_text(json.dumps(report, indent=1, default=json_default))
    log(f"accurate head done in {report['train_seconds'] / 60:.1f} min -> {out}")
    return report


def load_accurate(path: Path) -> tuple[StudentHead, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if ck.get("kind") != "accurate":
        raise ValueError(f"{path}: not an accurate head (made by `emotrack train --accurate`)")
    head = StudentHead(NetConfig.from_dict(ck["net_config"]), ck["datasets"])
    head.load_state_dict(ck["head"], strict=True)
    return head.eval(), ck


# ---------------------------------------------------------------------- the student's pseudo-label teacher
# emotrack-accurate 1's kept setting (validation mean r 0.738, the best of ``SETTINGS``)
PSEUDO_SETTING = {"lstm_hidden": 128, "head_dropout": 0.2, "lambda_pseudo": 1.0}


def hold_last(z: np.ndarray) -> np.ndarray:
    """Rows without a teacher window (NaN: every other frame of the stride-2 sets) take the
    last row that has one (causal; the training mean before the first)."""
    out = np.nan_to_num(z, nan=0.0)
    ok = np.isfinite(z).all(1)
    if ok.all() or not ok.any():
        return out
    last = np.maximum.accumulate(np.where(ok, np.arange(len(z)), -1))
    fill = ~ok & (last >= 0)
    out[fill] = out[last[fill]]
    return out


def pseudo_teacher(seqs, split: dict, scaler: TeacherScaler, targets: dict, cfg: StudentConfig,
                   tonal: float | None = None):
    """The accurate head as the student's pseudo-label teacher (``StudentConfig.pseudo_source
    = "accurate"``): trained with ``PSEUDO_SETTING`` on the training clips of the real-recording
    sets among ``seqs`` (its own pseudo-labels are the ridge head's, in ``targets``), selected
    on their validation clips, then run on every clip from a zero state. Returns the head, its
    training report and {clip key: (T, 2)} valence, arousal (no offsets, as at run time).
    A leave-one-out run's clips hold no training clip of the left-out set, so neither does
    this head's training. With ``tonal``, it also reads the frames' key-and-mode numbers
    (``teacher_head.tonal_features``)."""
    vgg = cfg.head_vgg
    train = [s for s in split["train"] if s.clip.dataset in REAL_SETS and s.clip.dataset in cfg.select_sets
             and teacher_head.has_features(s.clip, vgg, tonal)]
    real = [d for d in REAL_SETS if any(s.clip.dataset == d for s in train)]
    val = [s for s in split["val"] if s.clip.dataset in real and teacher_head.has_features(s.clip, vgg, tonal)]
    if not train or not val:
        raise ValueError(f"the accurate pseudo-label teacher needs training and validation clips of {real} "
                         "with teacher outputs (run `emotrack teacher-pass`)")
    quick = cfg.head_epochs <= 2  # a --quick run keeps its tiny epochs
    c = replace(cfg, **PSEUDO_SETTING, lambda_tags=0.0, lambda_embed=0.0, head_epochs=2 if quick else 60,
                patience=2 if quick else 12, head_ema=0.0, head_ensemble=1)  # as base_config
    if vgg or tonal is not None:  # the inputs with MSD_vgg's outputs or tonal numbers, standardised on the same clips
        scaler = TeacherScaler(split["train"], vgg=vgg, tonal=tonal)
    saved = {s.key: s.codes.pop("student", None) for s in seqs}
    try:
        attach_inputs(train + val, scaler, vgg=vgg, tonal=tonal)
        torch.manual_seed(cfg.seed * 1000 + 17)
        head, rep = train_heads(accurate_net(c.lstm_hidden, len(scaler.mu)), sorted({s.clip.dataset for s in train}),
                                train, val, targets, c)
        preds = {}
        for s in seqs:
            if not teacher_head.has_features(s.clip, vgg, tonal):
                continue
            attach_inputs([s], scaler, hold=True, vgg=vgg, tonal=tonal)
            preds[s.key] = predict_head(head, [s])[s.key][:, :2]
            del s.codes["student"]
    finally:
        for s in seqs:
            s.codes.pop("student", None)
            if saved[s.key] is not None:
                s.codes["student"] = saved[s.key]
    rep = {"setting": PSEUDO_SETTING, "sets": real, "best_val_mean_r": rep["best_val_mean_r"],
           "epochs": len(rep["history"]), "seconds": float(sum(e["seconds"] for e in rep["history"]))}
    log(f"accurate pseudo-label teacher: val mean r {rep['best_val_mean_r']:.4f} after {rep['epochs']} epochs "
        f"({rep['seconds']:.0f} s)")
    return head, rep, preds
