"""The student's whole training run (``emotrack train --teachers``; main thread, torch on
``threads`` cores): its teachers' targets and pseudo-labels, stage 1 and stage 2 of
:mod:`emotrack.models.distill`, calibration, and the held-out report.

The pseudo-labels come from one of two teacher heads on the musicnn teachers' outputs
(``StudentConfig.pseudo_source``):

- ``"ridge"``: the ridge teacher head (:mod:`emotrack.models.teacher_head`), smoothed with a
  3 s exponential average; the recipe of emotrack-vae-lstm 2;
- ``"accurate"`` (the default; the recipe of emotrack-vae-lstm 3 and 4): the accurate head
  (:func:`emotrack.models.accurate.pseudo_teacher`, the
  stateful LSTM of emotrack-accurate 1 on the teachers' outputs), trained in the run on the
  real recordings' training clips (its own pseudo-labels being the ridge head's), then run
  on every frame of every clip, the unlabelled music included.

Either way the ridge head stays in the report as the upper bound the issue names (ridge on
the teachers' features); with ``"accurate"`` the accurate head is reported too (the
teachers' features with the same LSTM head), so the student's distance from both is known.
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
from .accurate import pseudo_teacher
from .data import Clip
from .debian import scan as scan_debian
from .debian import summary as debian_summary
from .distill import (
    FrameStudent,
    StudentConfig,
    StudentHead,
    Targets,
    TeacherScaler,
    before_min_t,
    cached_codes,
    calibrate,
    descriptor_index,
    descriptor_names,
    encode_codes,
    eval_frames,
    frame_pool,
    head_and_targets,
    head_tonal_of,
    predict_head,
    predict_tags,
    student_net,
    train_frames,
    train_heads,
    train_joint,
    with_chroma,
)
from .evaluate import evaluate_predictions
from .seqs import Seq, build_seqs, log
from .student_eval import levels
from .teacher_pass import has_targets
from .train import data_summary, json_default

PSEUDO_SOURCES = ("ridge", "accurate")


def student_targets(seqs: list[Seq], split: dict[str, list[Seq]], cfg: StudentConfig, scaler: TeacherScaler,
                    tonal: float | None = None):
    """The ridge teacher head, every clip's standardised teacher targets, and the pseudo-labels
    of ``cfg.pseudo_source`` in them; with ``tonal``, teachers that also read the key and mode
    (``teacher_head.tonal_features``). Returns (ridge head, targets, the accurate head's answers
    {clip key: (T, 2)} or None, its training report or None)."""
    if cfg.pseudo_source not in PSEUDO_SOURCES:
        raise ValueError(f"pseudo_source {cfg.pseudo_source!r}: one of {PSEUDO_SOURCES}")
    th, targets = head_and_targets(seqs, split, cfg.head_sets, scaler, cfg.head_rff, cfg.head_vgg, tonal)
    if cfg.pseudo_source == "ridge":
        return th, targets, None, None
    _, rep, preds = pseudo_teacher(seqs, split, scaler, targets, cfg, tonal)
    new = {}
    for s in seqs:
        t = targets[s.key]
        p = preds.get(s.key)
        new[s.key] = t if p is None else Targets(t.emb, t.tags, before_min_t(p.astype(np.float32)))
    return th, new, preds, rep


def run_student(clips: list[Clip], out: Path, cfg: StudentConfig | None = None, jobs: int = 2,
                sources: dict | None = None) -> dict:
    """Train the student (both stages) and its teacher heads; write ``student.pt`` and
    ``report.json`` (held-out metrics of the student and of the teacher heads) to ``out``."""
    cfg = cfg or StudentConfig()
    net = student_net(cfg)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seqs = build_seqs(clips, jobs=jobs, chroma=cfg.tonal or cfg.head_tonal)
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val", "test")}
    for k, v in split.items():
        log(f"{k}: {len(v)} clips, {sum(len(s.mel) for s in v) / 7200:.2f} h")
    missing = sum(not has_targets(s.clip) for s in seqs)
    if missing:
        log(f"{missing} clips have no teacher targets (run `emotrack teacher-pass` first); they train the VAE only")
    scaler = TeacherScaler(split["train"])
    # stage 1's pseudo-labels come from the accurate head with labels per frame whatever
    # ``label_pool`` says (like ``head_tonal``, a stage-2 setting: stage 1's checkpoint stays valid)
    th, targets, acc, acc_rep = student_targets(seqs, split, replace(cfg, label_pool="frame"), scaler)
    report: dict = {"student_config": asdict(cfg), "net_config": net.to_dict(), "features": FEATURES.to_dict(),
                    "sources": sources, "teacher_head": {k: th[k] for k in ("alpha", "sets", "val_score", "offsets")},
                    "data": data_summary(seqs)}
    if acc_rep:
        report["pseudo_teacher"] = acc_rep
    debian_root = ((sources or {}).get("roots") or {}).get("debian")
    if debian_root:
        report["debian"] = debian_summary(scan_debian(debian_root))
    fs = FrameStudent(net)
    report["frames"] = train_frames(fs, split["train"], split["val"], targets, cfg, out / "frames.pt")
    if cfg.frame_epochs_2:
        more = train_frames(fs, split["train"], split["val"], targets, cfg.stage_1b(), out / "frames-1b.pt",
                            after=report["frames"]["key"])
        report["frames"]["history"] += [{"stage": "1b", **e} for e in more["history"]]
    report["frames"]["test"] = eval_frames(fs, *frame_pool(split["test"], targets)) if split["test"] else {}
    for p in fs.parameters():
        p.requires_grad_(False)
    cached_codes(fs.vae, seqs, out / "codes.npz")
    if cfg.tonal:  # the head reads each frame's pitch-class profile (and their average) beside its code
        with_chroma(seqs, net.tonal_avg)
    if cfg.head_tonal or cfg.label_pool != "frame":  # stage 2's pseudo-labels: teachers that also read the
        # key and the mode, or whose whole-clip labels were scored on the clip's mean
        report["teacher_head_stage1"] = report["teacher_head"]
        if acc_rep:
            report["pseudo_teacher_stage1"] = acc_rep
        th, targets, acc, acc_rep = student_targets(seqs, split, cfg, scaler, head_tonal_of(cfg))
        report["teacher_head"] = {k: th[k] for k in ("alpha", "sets", "val_score", "offsets", "tonal")}
        if acc_rep:
            report["pseudo_teacher"] = acc_rep
    datasets = sorted({s.clip.dataset for s in seqs})
    head, report["head"] = train_heads(net, datasets, split["train"], split["val"], targets, cfg)
    if cfg.joint_epochs:
        report["joint"] = train_joint(fs.vae, head, split["train"], split["val"], targets, cfg)
        encode_codes(fs.vae, seqs)
        report["frames"]["test_after_joint"] = (eval_frames(fs, *frame_pool(split["test"], targets))
                                                if split["test"] else {})
    net = head.cfg  # merged heads: one LSTM of their summed width
    report["net_config"] = net.to_dict()
    report["calibration"] = calibrate(head, split["val"])
    torch.save({"net_config": net.to_dict(), "features": FEATURES.to_dict(), "vae": fs.vae.state_dict(),
                "head": head.state_dict(), "offset_sets": head.offset_sets, "datasets": datasets,
                "teacher_mu": scaler.mu, "teacher_sd": scaler.sd, "descriptors": descriptor_names(),
                "descriptor_index": descriptor_index(), "descriptor_typical": scaler.typical.tolist(),
                "teacher_head": th}, out / "student.pt")
    preds = {"student": predict_head(head, split["test"]), "teacher head": teacher_head.predictions(th, split["test"])}
    if acc is not None:  # the teachers' features with the student's kind of head: the other upper bound
        preds["accurate head"] = {s.key: np.concatenate([acc[s.key], np.full_like(acc[s.key], np.nan)], 1)
                                  for s in split["test"] if s.key in acc}
    report["test"] = {k: evaluate_predictions(split["test"], p) for k, p in preds.items()}
    report["levels"] = {k: levels(split["test"], p) for k, p in preds.items()}
    report["descriptor_agreement"] = descriptor_agreement(head, split["test"], targets, scaler)
    report["train_seconds"] = time.time() - t0
    (out / "report.json").write_text(json.dumps(report, indent=1, default=json_default))
    log(f"student done in {report['train_seconds'] / 60:.1f} min -> {out}")
    return report


def descriptor_agreement(head: StudentHead, seqs: list[Seq], targets: dict, scaler: TeacherScaler) -> dict:
    """Per descriptor, the Pearson r between the student's and the teachers' tag logits over
    the held-out frames the teachers were run on (pooled over clips)."""
    idx = descriptor_index()
    ps, ts = [], []
    for s in seqs:
        t = targets[s.key].tags
        ok = np.isfinite(t).all(1)
        if ok.any():
            ps.append(predict_tags(head, s)[ok][:, idx])
            ts.append(t[ok][:, idx])
    if not ps:
        return {}
    p, t = np.concatenate(ps), np.concatenate(ts)
    return {n: float(np.corrcoef(p[:, i], t[:, i])[0, 1]) for i, n in enumerate(descriptor_names())}
