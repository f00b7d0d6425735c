"""How well the student generalises, from the reports of its training runs (offline, main
thread; torch-free: it reads ``report.json`` files and runs ONNX models).

- ``seed runs``: the same training with seeds 0, 1, 2: every test metric as mean ± sd over
  the seeds, so that a difference can be told from noise;
- ``leave-one-dataset-out runs`` (``train --teachers --leave-out SET``): the left-out set's
  test split, by a student that never heard that dataset, and by the teacher head fit
  without it;
- the teacher upper bound: the teacher head (ridge on the teachers' outputs, run offline)
  on the same songs, and the student's distance from it;
- the previous shipped model and the ridge baseline on mel statistics, on the same songs;
- levels: each set's bias (mean prediction - mean label over its test songs), and the
  movement within songs (sd of the trajectory over a song's frames after the warm-up,
  next to the labels' own sd for the sets with time-varying labels).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .seqs import WARMUP

REAL = ("soundtracks", "panda4q", "emotify")  # the real-recording sets


def levels(seqs, preds: dict[str, np.ndarray]) -> dict:
    """Per dataset: bias (mean prediction - mean label, over songs) for continuous labels, the
    mean prediction for quadrant sets, and the within-song sd of predictions (and labels)."""
    by: dict[str, list] = {}
    for s in seqs:
        if s.key in preds:
            by.setdefault(s.clip.dataset, []).append(s)
    out = {}
    for ds, items in sorted(by.items()):
        kind = items[0].clip.kind
        m: dict = {}
        for d, key in ((0, "valence"), (1, "arousal")):
            means, labels, sd_p, sd_l = [], [], [], []
            for s in items:
                p = preds[s.key][:, d]
                body = p[WARMUP:] if len(p) > 2 * WARMUP else p
                means.append(float(p.mean()))
                sd_p.append(float(body.std()))
                if kind == "static":
                    labels.append(s.clip.valence if d == 0 else s.clip.arousal)
                elif kind == "dynamic":
                    y = (s.v if d == 0 else s.a)[: len(p)]
                    ok = np.isfinite(y)
                    if ok.sum() > 1:
                        labels.append(float(y[ok].mean()))
                        sd_l.append(float(y[ok].std()))
            m[key] = {"mean_prediction": float(np.mean(means)), "within_song_sd": float(np.mean(sd_p))}
            if labels:
                m[key]["mean_label"] = float(np.mean(labels))
                m[key]["bias"] = float(np.mean(means) - np.mean(labels))
            if sd_l:
                m[key]["label_within_song_sd"] = float(np.mean(sd_l))
        out[ds] = {"kind": kind, **m}
    return out


def headline(metrics: dict) -> dict[str, float]:
    """The numbers the goals are stated in, flat: '<set> valence r', '<set> quadrant acc.', ..."""
    out = {}
    for ds, m in metrics.items():
        if m["kind"] == "quadrant":
            out[f"{ds} quadrant accuracy"] = m["quadrant_accuracy"]
            for d in ("valence", "arousal"):
                out[f"{ds} {d} sign accuracy"] = m[d]["sign_accuracy"]
                out[f"{ds} {d} r"] = m[d]["r"]["mean"]
        else:
            for d in ("valence", "arousal"):
                out[f"{ds} {d} r"] = m[d]["r"]["mean"]
                out[f"{ds} {d} CCC"] = m[d]["ccc"]["mean"]
            if "within_1std" in m:
                out[f"{ds} within ±1σ"] = m["within_1std"]
    return out


def over_seeds(reports: list[dict], model: str = "student") -> dict[str, tuple[float, float, int]]:
    """{metric: (mean, sd, runs)} over the seed runs' test metrics."""
    rows: dict[str, list[float]] = {}
    for r in reports:
        for k, v in headline(r["test"][model]).items():
            if v is not None and math.isfinite(v):
                rows.setdefault(k, []).append(v)
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in rows.items()}


def load_reports(runs: list[str | Path]) -> list[dict]:
    return [json.loads((Path(r) / "report.json").read_text()) for r in runs]


def summary(seed_runs: list[str | Path], lodo_runs: list[str | Path], baselines: dict | None = None) -> dict:
    """Everything the model card's evaluation section needs, from the runs' reports (and the
    previous model's and the ridge baseline's metrics, computed by ``baselines``)."""
    seeds = load_reports(seed_runs)
    out = {"seed_runs": [str(r) for r in seed_runs], "student": over_seeds(seeds, "student"),
           "teacher_head": over_seeds(seeds, "teacher head"),
           "levels": [r.get("levels", {}) for r in seeds], "descriptors": _descriptors(seeds),
           "train_minutes": [round(r.get("train_seconds", 0) / 60, 1) for r in seeds]}
    out["lodo"] = {}
    for rep, path in zip(load_reports(lodo_runs), lodo_runs, strict=True):
        ds = rep["sources"]["leave_out"]
        out["lodo"][ds] = {"run": str(path), "student": {k: v for k, v in headline(rep["test"]["student"]).items()
                                                         if k.startswith(ds)},
                           "teacher head": {k: v for k, v in headline(rep["test"]["teacher head"]).items()
                                            if k.startswith(ds)}}
    if baselines:
        out["baselines"] = {name: headline(m) for name, m in baselines.items()}
    return out


def _descriptors(reports: list[dict]) -> dict[str, tuple[float, float]]:
    vals: dict[str, list[float]] = {}
    for r in reports:
        for k, v in (r.get("descriptor_agreement") or {}).items():
            vals.setdefault(k, []).append(v)
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in vals.items()}
