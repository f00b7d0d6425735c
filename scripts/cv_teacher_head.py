"""Compare ridge teacher heads (linear, and with random Fourier features) by grouped k-fold
cross-validation on the training and validation clips of the teacher head's sets; the test
split is scored once per variant, as a run fits it (training clips, alpha on validation).

    python scripts/cv_teacher_head.py --out docs/model/experiments/teacher-head-cv.json \\
        0 2000:0.003 2000:0.01 2000:0.02 1000:0.01 4000:0.01

Each argument is ``N_FEATURES[:GAMMA][+vgg]`` (0: the linear head; ``+vgg``: MSD_vgg's outputs
beside the teachers', from ``emotrack teacher-pass --vgg``; clips without them are left out of
every variant, so all are scored on the same clips). Folds are drawn by clip group
(album, artist: what the splits keep apart) with a fixed seed, the same for every variant. For
each variant and penalty: Pearson r of clip means against labels, valence and arousal apart,
per dataset, over the held-out predictions of all folds pooled; the penalty a variant is
judged at is its best by the mean of those r (the validation score a run uses). The test
rows add a paired bootstrap (1,000 resamples of the test clips) of each variant's difference
from the linear head. With ``--transfer``, each variant is also fit on one set alone (its
training clips, the penalty on its validation clips) and scored on the other sets' test
splits: how a head carries to music of a kind it never heard, as in a leave-one-out run.
Numpy only; about two minutes a variant on one core.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from emotrack.models import teacher_head as th
from emotrack.models.cli import load_clips
from emotrack.models.evaluate import evaluate_predictions, paired_bootstrap_r
from emotrack.models.seqs import build_seqs

ALPHAS = (1e3, 3e3, 1e4, 3e4, 1e5, 3e5)  # the cross-validation's; fits as a run's use teacher_head.ALPHAS


def scores(res: dict) -> dict:
    """The numbers reported per dataset, from ``evaluate_predictions``' result."""
    out = {}
    for ds, m in res.items():
        row = {"valence r": m["valence"]["r"]["mean"], "arousal r": m["arousal"]["r"]["mean"]}
        if "quadrant_accuracy" in m:
            row |= {"quadrant accuracy": m["quadrant_accuracy"], "valence sign accuracy": m["valence"]["sign_accuracy"]}
        out[ds] = row
    return out


def clip_means(seqs, preds) -> np.ndarray:
    return np.array([preds[s.key][:, :2].mean(0) for s in seqs])


def bootstrap_diff(seqs, a, b, n=1000, seed=0) -> dict:
    """Paired bootstrap over clips of r(b) - r(a), per dataset with continuous labels and dimension."""
    rng = np.random.default_rng(seed)
    out = {}
    for ds in sorted({s.clip.dataset for s in seqs}):
        idx = [i for i, s in enumerate(seqs) if s.clip.dataset == ds]
        sub = [seqs[i] for i in idx]
        if sub[0].clip.kind == "static":
            lab = np.array([(s.clip.valence, s.clip.arousal) for s in sub])
        else:  # the quadrant sets: r against the signs
            lab = np.array([s.sign for s in sub], float)
        pa, pb = clip_means(sub, a), clip_means(sub, b)
        for d, name in ((0, "valence"), (1, "arousal")):
            out[f"{ds} {name} r"] = paired_bootstrap_r(lab[:, d], pa[:, d], pb[:, d], rng, n)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data", help="the shared data folder (default: as `emotrack train`)")
    ap.add_argument("--sets", nargs="+", default=["soundtracks", "panda4q"], help="the teacher head's sets")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--transfer", action="store_true", help="also fit on each set alone, score the others")
    ap.add_argument("--limit", type=int, help="at most this many clips per dataset and split (a quick check)")
    ap.add_argument("variants", nargs="+", help="N_FEATURES[:GAMMA][+vgg], 0 for the linear head")
    args = ap.parse_args()
    vgg_any = any(v.endswith("+vgg") for v in args.variants)
    seqs = [s for s in build_seqs(load_clips(args.data, args.sets, {}, args.limit), jobs=1)
            if th.has_features(s.clip, vgg_any)]
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val", "test")}
    pool = split["train"] + split["val"]
    groups = sorted({s.clip.group for s in pool})
    np.random.default_rng(1).shuffle(groups)
    fold = {g: i % max(args.folds, 1) for i, g in enumerate(groups)}
    report = {"what": __doc__.split("\n\n")[0], "sets": args.sets, "folds": args.folds, "cv alphas": ALPHAS,
              "run alphas": th.ALPHAS,
              "clips": {k: len(v) for k, v in split.items()}, "variants": []}
    test_preds = {}
    for text in args.variants:
        vgg = text.endswith("+vgg")
        n, _, g = text.removesuffix("+vgg").partition(":")
        n, gamma = int(n), float(g) if g else th.RFF_GAMMA
        t0 = time.time()
        held = {a: {} for a in ALPHAS}
        row: dict = {"features": n, "gamma": gamma if n else None, "vgg": vgg}
        for f in range(args.folds):
            heads = th.fit_all([s for s in pool if fold[s.clip.group] != f], ALPHAS, n, gamma, vgg)
            out = [s for s in pool if fold[s.clip.group] == f]
            for h in heads:
                held[h["alpha"]].update(th.predictions(h, out))
        if args.folds:
            cv = {a: evaluate_predictions(pool, held[a]) for a in ALPHAS}
            best = max(ALPHAS, key=lambda a: th.mean_r(cv[a]))
            row |= {"cv": {f"{a:g}": {"mean r": th.mean_r(cv[a]), **scores(cv[a])} for a in ALPHAS},
                    "cv best alpha": best, "cv best mean r": th.mean_r(cv[best])}
        head = th.fit(split["train"], split["val"], th.ALPHAS, n, gamma, vgg)  # as a run fits it
        test_preds[text] = th.predictions(head, split["test"])
        row["test"] = {"alpha (validation)": head["alpha"], "validation mean r": head["val_score"],
                       **scores(evaluate_predictions(split["test"], test_preds[text]))}
        if args.transfer:
            row["transfer"] = {}
            for ds in args.sets:
                alone = th.fit([s for s in split["train"] if s.clip.dataset == ds],
                               [s for s in split["val"] if s.clip.dataset == ds], th.ALPHAS, n, gamma, vgg)
                others = [s for s in split["test"] if s.clip.dataset != ds]
                row["transfer"][f"fit on {ds} alone"] = {"alpha (validation)": alone["alpha"],
                                                         **scores(evaluate_predictions(others, th.predictions(alone, others)))}
        row["seconds"] = round(time.time() - t0)
        first = args.variants[0]
        if text != first:
            row["test"]["paired bootstrap against " + first] = bootstrap_diff(split["test"], test_preds[first], test_preds[text])
        report["variants"].append(row)
        print(f"{text}: cv mean r {row.get('cv best mean r', math.nan):.4f}; test {json.dumps(row['test'], default=str)[:400]}",
              flush=True)
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
