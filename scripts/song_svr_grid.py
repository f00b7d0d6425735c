"""The trajectory song head (``emotrack train-song``'s "SVR (trajectory statistics)") with a
grid of SVR settings, cross-validated on folds of the validation songs, as ``train-song --cv``
deals them (each fold's head fit on the training songs and the other folds, scored on the held-out
fold with ``selection_score``; the test split is not read). The rule it served:
docs/model/experiments/song-head-cv/DECISION-RULE-SVR.md.

    EMOTRACK_MODEL=assets/emotrack-vae-lstm.onnx python scripts/song_svr_grid.py \\
        --out docs/model/experiments/song-head-cv/svr-grid.json

The trajectory comes from the dynamic model ``EMOTRACK_MODEL`` names (the shipped one by default),
from zero state over every song, as ``train-song`` runs it. With C 1 and epsilon 0.1 (``SVR_PARAMS``)
the fold scores are those of ``train-song --cv``'s trajectory head, to rounding.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import numpy as np
from emotrack.models.cli import load_clips
from emotrack.models.song import (
    DEFAULT_DATASETS,
    SVR_PARAMS,
    deal_folds,
    fit_trajectory_head,
    fold_score,
    trajectories,
    trajectory_statistics,
)
from emotrack.models.static import static_labels
from emotrack.realtime.core.model import load_model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="the shared data folder")
    ap.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    ap.add_argument("--limit", type=int, help="at most N clips per dataset and split (for quick checks)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--c", type=float, nargs="+", default=[0.25, 0.5, 1, 2, 4, 8])
    ap.add_argument("--epsilon", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--out", help="also write the fold scores as JSON here")
    args = ap.parse_args(argv)

    t0 = time.time()
    clips = [c for c in load_clips(args.data, args.datasets, {}, args.limit)
             if c.split in ("train", "val") and static_labels(c) is not None]
    try:
        fold = deal_folds(clips, args.folds)
    except ValueError as e:
        print(f"song_svr_grid: {e}", file=sys.stderr)
        return 2
    dynamic = load_model()
    print(f"trajectories of {len(clips)} songs with {dynamic.label}", file=sys.stderr)
    ts = np.stack([trajectory_statistics(m) for m in trajectories(clips, dynamic)])
    y = np.array([static_labels(c)[0] for c in clips])
    grid = {}
    for c, eps in itertools.product(args.c, args.epsilon):
        params = {**SVR_PARAMS, "C": c, "epsilon": eps}
        scores = []
        for f in range(args.folds):
            p = fit_trajectory_head(ts, y, fold != f, params)[0]
            scores.append(fold_score(clips, fold == f, p))
        grid[f"C {c:g}, epsilon {eps:g}"] = {"C": c, "epsilon": eps, "folds": scores, "mean": float(np.mean(scores)),
                                            "sd": float(np.std(scores, ddof=1))}
        print(f"C {c:g} epsilon {eps:g}: {np.mean(scores):.4f}", file=sys.stderr)
    base = f"C {SVR_PARAMS['C']:g}, epsilon {SVR_PARAMS['epsilon']:g}"
    best = max(grid, key=lambda k: grid[k]["mean"])
    lines = ["| setting | " + " | ".join(f"fold {f + 1}" for f in range(args.folds)) + " | mean | sd |",
             "|---|" + "---|" * (args.folds + 2)]
    for k, r in grid.items():
        lines.append(f"| {k} | " + " | ".join(f"{v:.4f}" for v in r["folds"]) + f" | {r['mean']:.4f} | {r['sd']:.4f} |")
    report = {"folds": args.folds, "fold_songs": [int((fold == f).sum()) for f in range(args.folds)],
              "trajectory_model": dynamic.label, "trajectory_model_sha256": dynamic.sha256, "grid": grid,
              "best": best, "seconds": round(time.time() - t0, 1),
              "command": "python scripts/song_svr_grid.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if base in grid:
        d = np.subtract(grid[best]["folds"], grid[base]["folds"])
        report["best_minus_default"] = {"folds": d.tolist(), "mean": float(d.mean()), "sd": float(np.std(d, ddof=1))}
        lines += ["", f"best: {best}; best − {base}: " + ", ".join(f"{v:+.4f}" for v in d)
                  + f" (mean {d.mean():+.4f}, sd {np.std(d, ddof=1):.4f})"]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
