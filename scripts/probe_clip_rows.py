"""Frame rows against clip-mean rows for a ridge map from the teachers' outputs to static labels,
each real-recording set left out in turn (the other two train it, their validation clips choose
the penalty), scored on the left-out set's test clips as W·(clip mean) + b.

    python scripts/probe_clip_rows.py          # about 2 min: reads the teacher cache only

A static label (a rating of a whole excerpt, a quadrant) said of every frame also penalises
whatever varies within the clip: the frame-rows loss is the clip-mean loss plus each clip's
within-clip variance along the map, so directions that move within clips (the loudness of a
passage, say) are shrunk. The ridge teacher head (``teacher_head.fit``) has frame rows; so
have the student's and the accurate head's label losses unless ``label_pool`` is "clip"
(docs/training.md, "Whole-clip labels", has what this measured).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from emotrack.models.cache import load_features
from emotrack.models.cli import add_script_arguments, script_clips
from emotrack.models.teacher_head import solve, teacher_features
from emotrack.models.teacher_pass import has_targets

REAL = ("soundtracks", "panda4q", "emotify")
ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
MIN_T = 2.0  # seconds: labels apply after the warm-up, as in training


def r(a, b) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_script_arguments(ap)
    ap.add_argument("--json", action="store_true", help="one JSON line per row instead of the table")
    args = ap.parse_args()
    args.datasets = args.datasets or list(REAL)
    clips = [c for c in script_clips(args) if c.dataset in REAL and has_targets(c)]
    feats, labels, sets, splits = [], [], [], []
    for c in clips:
        n = len(load_features(c))
        x = teacher_features(c, n)  # both teachers' logits and penultimates, as the ridge head reads them
        x = x[np.isfinite(x).all(1) & (0.5 * np.arange(1, n + 1) >= MIN_T)]
        if not len(x):
            continue
        if c.kind == "quadrant":  # the signs as the teacher head takes them (0.5 × quadrant signs)
            y = (0.5 if c.quadrant in (1, 4) else -0.5, 0.5 if c.quadrant in (1, 2) else -0.5)
        else:
            y = (c.valence, c.arousal)
        feats.append(x)
        labels.append(y)
        sets.append(c.dataset)
        splits.append(c.split)
    Y, D, S = np.array(labels, np.float64), np.array(sets), np.array(splits)
    rows = []
    for out in [d for d in REAL if d in set(D)]:
        tr, va = (S == "train") & (D != out), (S == "val") & (D != out)
        te = (S == "test") & (D == out)
        idx = np.where(tr)[0]
        frames = np.concatenate([feats[i] for i in idx])
        mu, sd = frames.mean(0), frames.std(0) + 1e-6
        M = np.stack([((f - mu) / sd).mean(0) for f in feats])  # clip means, standardised like the frames
        Xr = (frames - mu) / sd
        Yr = np.concatenate([np.repeat(Y[i][None], len(feats[i]), 0) for i in idx])
        Dr = np.concatenate([[D[i]] * len(feats[i]) for i in idx])
        offsets = [d for d in ("soundtracks", "emotify") if d != out and d in set(D)]
        for name, fits in (("frame rows", solve(Xr, Yr, Dr, ALPHAS, offsets)),
                           ("clip-mean rows", solve(M[tr], Y[tr], D[tr], ALPHAS, offsets))):
            best = None
            for alpha, (w, b, _) in zip(ALPHAS, fits, strict=True):
                p = M @ w + b
                v = np.mean([r(p[va & (D == d)][:, j], Y[va & (D == d)][:, j])
                             for d in set(D[va]) for j in (0, 1)])
                if best is None or v > best[0]:
                    best = (v, alpha, p)
            v, alpha, p = best
            row = {"left_out": out, "rows": name, "alpha": alpha, "val_mean_r": v,
                   "valence_r": r(p[te, 0], Y[te, 0]), "arousal_r": r(p[te, 1], Y[te, 1])}
            if out == "panda4q":
                row["valence_sign_accuracy"] = float(np.mean(np.sign(p[te, 0]) == np.sign(Y[te, 0])))
                row["quadrant_accuracy"] = float(np.mean((np.sign(p[te]) == np.sign(Y[te])).all(1)))
            rows.append(row)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print("| left out | rows | α (validation) | validation mean r | valence r | arousal r | Panda quadrant / valence sign |")
    print("|---|---|---|---|---|---|---|")
    for x in rows:
        q = (f"{x['quadrant_accuracy']:.3f} / {x['valence_sign_accuracy']:.3f}" if "quadrant_accuracy" in x else "")
        print(f"| {x['left_out']} | {x['rows']} | {x['alpha']:g} | {x['val_mean_r']:.3f} | {x['valence_r']:.3f} | "
              f"{x['arousal_r']:.3f} | {q} |")


if __name__ == "__main__":
    main()
