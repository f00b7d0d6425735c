"""Probe: do musicnn's other two taggers, MSD_vgg and MTT_vgg (in the same wheel), carry
valence or arousal that MSD_musicnn and MTT_musicnn do not? If so, a teacher head on both
pairs would raise the ceiling the student is held to (Soundtracks valence sits at it).

    python scripts/probe_vgg_teachers.py --jobs 2 --out docs/model/experiments/vgg-teachers-probe.json

1. Each clip of the teacher head's sets (Soundtracks, Panda; every split) through both VGG
   taggers (``emotrack.models.teachers.load_vgg``, the torch port held to TensorFlow by
   ``tests/models/test_teachers.py``): 3 s patches (187 frames of musicnn's front end)
   every 1.5 s from 1.5 s on; per clip the mean over patches of the 50 tag logits, the
   flattened last pool (256) and the fourth pool's channel mean and max (128 + 128).
   Cached per clip in ``$EMOTRACK_CACHE/probe-vgg/`` (a stopped run goes on). For the first
   clips it prints how well each VGG tagger's tags agree with the musicnn tagger of the same
   tag set on the same patches (a sanity check of the whole path).
2. A ridge head at the clip level, as the teacher head fits at the frame level (standardised
   features, each set the same total weight, an unpenalised Soundtracks offset, Panda's
   quadrants as ±0.5): on the cached musicnn outputs' clip means (frames from 3 s on) alone,
   and with the VGG features beside them. Judged by grouped 5-fold cross-validation on the
   training and validation clips (album/artist groups, the same folds as
   ``cv_teacher_head.py``), the penalty at its best mean r; the test split once (fit on
   training clips, penalty on validation) with a paired bootstrap against musicnn alone; and
   fit on one set alone, scored on the other's test split (how it carries to music it never
   heard, as in a leave-one-out run). A linear head on clip means equals the mean of a
   linear head's frame answers, so the musicnn row reproduces the teacher head's numbers.

Wall time on 2 cores: 26 min for the VGG pass (1,140 clips), 30 s for the heads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from emotrack.models import teachers as T
from emotrack.models.cache import cache_dir, clip_audio
from emotrack.models.cli import load_clips
from emotrack.models.data import QUADRANT_SIGNS
from emotrack.models.evaluate import paired_bootstrap_r
from emotrack.models.teacher_head import solve
from emotrack.models.teacher_pass import KEYS, targets_path
from emotrack.realtime.core.audio import StreamingResampler
from emotrack.realtime.core.config import FEATURES

VGGS = T.VGG_TAGGERS
PARTS = ("logits", "pool5", "pool4mean", "pool4max")
SETS = ("soundtracks", "panda4q")
ALPHAS = tuple(float(10 ** e) for e in np.arange(0, 5.01, 0.5))
PATCH, HOP = 187, 93  # musicnn's 3 s patch; 1.5 s between patches


def feature_path(clip) -> Path:
    return cache_dir() / "probe-vgg" / clip.dataset / f"{clip.id.replace('/', '_')}.npz"


_nets: dict = {}


def _init() -> None:
    torch.set_num_threads(1)
    _nets.update({n: T.load_vgg(n) for n in VGGS})
    _nets["check"] = {"MSD_vgg": T.load_teacher("MSD_musicnn"), "MTT_vgg": T.load_teacher("MTT_musicnn")}


def _work(clip, check: bool) -> tuple[str, str]:
    y16 = StreamingResampler(FEATURES.sample_rate, T.SAMPLE_RATE).process(clip_audio(clip))
    m = T.melspectrogram(y16)
    m = m[HOP + 1:] if len(m) >= HOP + 1 + PATCH else m  # from 1.5 s on
    if len(m) < PATCH:  # repeat a short clip, as musicnn pads
        m = np.concatenate([m] * (PATCH // max(len(m), 1) + 1))[:PATCH]
    x = torch.from_numpy(np.stack([m[s:s + PATCH] for s in range(0, len(m) - PATCH + 1, HOP)]))
    res, msg = {}, ""
    with torch.no_grad():
        for n in VGGS:
            logits, flat, pools = _nets[n](x)
            res |= {f"{n}_logits": logits.mean(0).numpy(), f"{n}_pool5": flat.mean(0).numpy(),
                    f"{n}_pool4mean": pools[3].mean((2, 3)).mean(0).numpy(),
                    f"{n}_pool4max": pools[3].amax((2, 3)).mean(0).numpy()}
            if check:  # the tags' agreement with the musicnn tagger of the same tag set, per patch
                ref = _nets["check"][n](x)[0].numpy()
                r = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(logits.numpy(), ref, strict=True)])
                msg += f" {n} vs its musicnn: per-patch tag r {r:.3f};"
    path = feature_path(clip)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **res)
    os.replace(tmp, path)
    return clip.key, msg


def extract(clips, jobs: int) -> None:
    todo = [c for c in clips if not feature_path(c).exists()]
    print(f"VGG features: {len(clips) - len(todo)} clips cached, {len(todo)} to go", flush=True)
    t0 = time.time()
    with ProcessPoolExecutor(jobs, initializer=_init) as ex:
        futs = [ex.submit(_work, c, i < 4) for i, c in enumerate(todo)]
        for i, f in enumerate(as_completed(futs)):
            key, msg = f.result()
            if msg or i % 100 == 0:
                print(f"{i + 1}/{len(todo)} {time.time() - t0:.0f}s {key}{msg}", flush=True)


def musicnn_means(clip) -> np.ndarray:
    z = np.load(targets_path(clip))
    late = z["k"] * FEATURES.frame_seconds >= 3.0
    late = late if late.any() else np.ones_like(late)
    return np.concatenate([z[k][late].astype(np.float32).mean(0) for k in KEYS])


class Probe:
    def __init__(self, clips):
        self.ds = np.array([c.dataset for c in clips])
        self.y = np.array([(c.valence, c.arousal) if c.kind == "static" else 0.5 * np.asarray(QUADRANT_SIGNS[c.quadrant])
                           for c in clips], float)

    def fit(self, X, idx):
        """One ridge head per penalty on clips ``idx`` (``teacher_head.solve``, as the frame-level head)."""
        mu, sd = X[idx].mean(0), X[idx].std(0) + 1e-6
        d = self.ds[idx]
        offsets = ["soundtracks"] if "soundtracks" in d and len(set(d)) > 1 else []
        return [{"alpha": a, "mu": mu, "sd": sd, "W": w, "b": b}
                for a, (w, b, _) in zip(ALPHAS, solve((X[idx] - mu) / sd, self.y[idx], d, ALPHAS, offsets), strict=True)]

    @staticmethod
    def predict(h, X, idx):
        return np.clip((X[idx] - h["mu"]) / h["sd"] @ h["W"] + h["b"], -1, 1)

    def score(self, p, idx):
        out = {}
        for s in SETS:
            m = self.ds[idx] == s
            if not m.any():
                continue
            for j, dim in enumerate(("valence", "arousal")):
                out[f"{s} {dim} r"] = float(np.corrcoef(p[m, j], self.y[idx][m, j])[0, 1])
            if s == "panda4q":
                out["panda4q valence sign accuracy"] = float(np.mean((p[m, 0] > 0) == (self.y[idx][m, 0] > 0)))
        out["mean r"] = float(np.mean([v for k, v in out.items() if k.endswith(" r")]))
        return out

    def best(self, X, train, val):
        """Fit on ``train``, the penalty by the mean r on ``val``."""
        return max(self.fit(X, train), key=lambda h: self.score(self.predict(h, X, val), val)["mean r"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data", help="the shared data folder (default: as `emotrack train`)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, help="at most this many clips per dataset and split (a quick check)")
    args = ap.parse_args()
    clips = sorted((c for c in load_clips(args.data, list(SETS), {}, args.limit) if targets_path(c).exists()),
                   key=lambda c: c.key)
    t0 = time.time()
    extract(clips, args.jobs)
    extract_s = time.time() - t0
    m = np.stack([musicnn_means(c) for c in clips])

    def vgg(keys):
        return np.stack([np.concatenate([np.load(feature_path(c))[k] for k in keys]) for c in clips])

    every = [f"{n}_{p}" for n in VGGS for p in PARTS]
    feats = {"musicnn": m,
             "musicnn + VGG logits and last pool": np.concatenate([m, vgg([f"{n}_{p}" for n in VGGS for p in PARTS[:2]])], 1),
             "musicnn + VGG (all four parts)": np.concatenate([m, vgg(every)], 1),
             "VGG alone (all four parts)": vgg(every),
             "musicnn + MSD_vgg": np.concatenate([m, vgg([f"MSD_vgg_{p}" for p in PARTS])], 1),
             "musicnn + MTT_vgg": np.concatenate([m, vgg([f"MTT_vgg_{p}" for p in PARTS])], 1)}
    pr = Probe(clips)
    split = np.array([c.split for c in clips])
    group = np.array([c.group for c in clips])
    pool = np.flatnonzero(np.isin(split, ["train", "val"]))
    groups = sorted(set(group[pool]))
    np.random.default_rng(1).shuffle(groups)  # the folds of cv_teacher_head.py
    fold = np.array([{g: i % 5 for i, g in enumerate(groups)}[g] for g in group[pool]])
    tr, va, te = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    report = {"what": __doc__.split("\n\n")[0], "clips": {s: int((split == s).sum()) for s in ("train", "val", "test")},
              "vgg pass seconds": round(extract_s), "alphas": ALPHAS, "variants": {}}
    test_pred, transfer_pred = {}, {}
    rng = np.random.default_rng(0)
    for name, X in feats.items():
        held = {a: np.zeros((len(pool), 2)) for a in ALPHAS}
        for f in range(5):
            for h in pr.fit(X, pool[fold != f]):
                held[h["alpha"]][fold == f] = pr.predict(h, X, pool[fold == f])
        cv = {a: pr.score(held[a], pool) for a in ALPHAS}
        a_cv = max(ALPHAS, key=lambda a: cv[a]["mean r"])
        h = pr.best(X, tr, va)
        test_pred[name] = pr.predict(h, X, te)
        row = {"features": X.shape[1], "cv alpha": a_cv, "cv": cv[a_cv],
               "test alpha (validation)": h["alpha"], "test": pr.score(test_pred[name], te), "transfer": {}}
        for s in SETS:
            other = te[pr.ds[te] != s]
            alone = pr.best(X, tr[pr.ds[tr] == s], va[pr.ds[va] == s])
            row["transfer"][f"fit on {s} alone"] = pr.score(pr.predict(alone, X, other), other)
            every = np.flatnonzero(pr.ds != s)  # the other set never reaches this head: all its clips
            transfer_pred[name, s] = pr.predict(alone, X, every)
            row["transfer"][f"fit on {s} alone, every clip of the other set"] = pr.score(transfer_pred[name, s], every)
        if name != "musicnn":
            boot = {}
            for s in SETS:
                idx = np.flatnonzero(pr.ds[te] == s)
                for j, dim in enumerate(("valence", "arousal")):
                    boot[f"{s} {dim} r"] = paired_bootstrap_r(pr.y[te][idx, j], test_pred["musicnn"][idx, j],
                                                              test_pred[name][idx, j], rng)
            row["test: paired bootstrap against musicnn"] = boot
            boot = {}
            for s in SETS:
                idx = np.flatnonzero(pr.ds != s)
                for j, dim in enumerate(("valence", "arousal")):
                    boot[f"fit on {s} alone: {pr.ds[idx][0]} {dim} r"] = paired_bootstrap_r(
                        pr.y[idx, j], transfer_pred["musicnn", s][:, j], transfer_pred[name, s][:, j], rng)
            row["transfer, every clip of the other set: paired bootstrap against musicnn"] = boot
        report["variants"][name] = row
        print(f"{name}: cv mean r {cv[a_cv]['mean r']:.3f}, test {json.dumps({k: round(v, 3) for k, v in row['test'].items()})}",
              flush=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
