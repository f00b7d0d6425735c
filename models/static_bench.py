"""``emotrack static-benchmark``: SVR on the raw song-level features, PCA-SVR and TNN-SVR at
the same dimension, by repeated cross-validation by song group, per dataset and feature set.

Every fold: the features are standardised on its training songs; PCA and the TNN are fit
on its training songs only; one SVR per dimension (RBF kernel, C = 1, epsilon = 0.1,
gamma "scale", the same for all three) is fit on the training songs' features, PCA
components or embeddings, and scored on the held-out songs. Songs of one group (a film
album, a VGMIDI piece, an EMOPIA source video) stay on one side. The dimension of PCA
and of the TNN is 10 % of the feature count (as in the paper), at most the number of
training songs less one. Reported: R^2 for valence and arousal apart; on quadrant sets
also the quadrant accuracy (the quadrant of the predicted point) and the sign accuracy
per dimension; and the triplet loss on the held-out songs' triplets before and after
training, which shows whether the embedding learnt anything that generalises.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from emotrack.realtime.core.song import quadrants
from sklearn.decomposition import PCA
from sklearn.svm import SVR

from .cli import load_clips
from .data import Clip
from .static import (
    TnnConfig,
    compare_features,
    embed,
    mine_triplets,
    standardiser,
    static_labels,
    tnn_net,
    train_tnn,
    triplet_loss,
    vae_features,
)

METHODS = ("SVR", "PCA-SVR", "TNN-SVR")


def _svr_fit_predict(xtr, ytr, xte) -> np.ndarray:

    return np.column_stack([SVR(C=1.0, epsilon=0.1, gamma="scale").fit(xtr, ytr[:, k]).predict(xte) for k in range(2)])


def r2(y, p) -> float:
    ss = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - p) ** 2).sum() / ss) if ss > 0 else float("nan")


def group_folds(groups: np.ndarray, folds: int, repeat: int) -> np.ndarray:
    """Fold number per song: whole groups, shuffled with the repeat as seed."""
    uniq = np.unique(groups)
    order = np.random.default_rng(1000 + repeat).permutation(len(uniq))
    fold_of = {g: i % folds for i, g in zip(order, uniq, strict=True)}
    return np.array([fold_of[g] for g in groups])


def evaluate_fold(x, y, quad, train, test, cfg: TnnConfig, dim: int) -> dict:

    mean, scale = standardiser(x[train])
    z = np.nan_to_num((x - mean) / scale)
    preds = {"SVR": _svr_fit_predict(z[train], y[train], z[test])}
    pca = PCA(n_components=dim, random_state=0).fit(z[train])
    preds["PCA-SVR"] = _svr_fit_predict(pca.transform(z[train]), y[train], pca.transform(z[test]))
    tnn_cfg = replace(cfg, dim=dim)
    held = mine_triplets(y[test], tnn_cfg, np.random.default_rng(7))
    loss_before = triplet_loss(tnn_net(x.shape[1], tnn_cfg, x[train]), x[test], held, cfg.margin)
    net = train_tnn(x[train], y[train], tnn_cfg)
    loss_after = triplet_loss(net, x[test], held, cfg.margin)
    e = embed(net, x)
    preds["TNN-SVR"] = _svr_fit_predict(e[train], y[train], e[test])
    out = {"triplet_loss_before": loss_before, "triplet_loss_after": loss_after, "held_out_triplets": len(held)}
    for m, p in preds.items():
        r = {"r2_valence": r2(y[test, 0], p[:, 0]), "r2_arousal": r2(y[test, 1], p[:, 1])}
        if quad is not None:
            r["quadrant_accuracy"] = float((quadrants(p) == quad[test]).mean())
            r["sign_accuracy_valence"] = float((np.sign(p[:, 0]) == np.sign(y[test, 0])).mean())
            r["sign_accuracy_arousal"] = float((np.sign(p[:, 1]) == np.sign(y[test, 1])).mean())
        out[m] = r
    return out


def benchmark(clips: list[Clip], features: dict[str, np.ndarray], folds: int = 5, repeats: int = 3,
              cfg: TnnConfig | None = None, log=print, dim: int | None = None,
              progress: bool = True) -> list[dict]:
    """One row per (dataset, feature set): mean and std over folds x repeats of each metric.
    ``dim``: the PCA and TNN dimension (default 10 % of the features); at most the
    smallest training fold less one."""
    cfg = cfg or TnnConfig()
    rows = []
    for ds in sorted({c.dataset for c in clips}):
        idx = [i for i, c in enumerate(clips) if c.dataset == ds and static_labels(c) is not None]
        labels = [static_labels(clips[i]) for i in idx]
        y_all = np.array([lab[0] for lab in labels])
        quad_all = np.array([lab[1] for lab in labels]) if labels[0][1] is not None else None
        groups_all = np.array([clips[i].group for i in idx])
        for name, feats in features.items():
            x = feats[idx]
            ok = ~np.isnan(x).all(1)
            x, y, groups = x[ok], y_all[ok], groups_all[ok]
            quad = quad_all[ok] if quad_all is not None else None
            assignments = [group_folds(groups, folds, r) for r in range(repeats)]
            n_train = min(int((fold != f).sum()) for fold in assignments for f in range(folds))
            d = int(max(2, min(dim or round(0.1 * x.shape[1]), n_train - 1)))
            t0 = time.time()
            per_fold = []
            for r, fold in enumerate(assignments):
                for f in range(folds):
                    test = np.flatnonzero(fold == f)
                    train = np.flatnonzero(fold != f)
                    per_fold.append(evaluate_fold(x, y, quad, train, test, replace(cfg, seed=cfg.seed + r), d))
                    if progress:  # a ComParE fold takes minutes; say how far it is
                        log(f"{ds} / {name}: fold {len(per_fold)}/{folds * repeats} done, {time.time() - t0:.0f} s")
            row = {"dataset": ds, "features": name, "songs": int(len(x)), "feature_dims": int(x.shape[1]),
                   "dim": d, "folds": folds, "repeats": repeats, "quadrants": quad is not None,
                   "seconds": round(time.time() - t0, 1)}
            for key in ("triplet_loss_before", "triplet_loss_after"):
                v = np.array([p[key] for p in per_fold])
                row[key] = [float(np.nanmean(v)), float(np.nanstd(v))]
            for m in METHODS:
                row[m] = {k: [float(np.mean([p[m][k] for p in per_fold])), float(np.std([p[m][k] for p in per_fold]))]
                          for k in per_fold[0][m]}
            rows.append(row)
            log(f"{ds} / {name}: {len(x)} songs, {x.shape[1]} features -> {d} dims, {row['seconds']} s")
    return rows


def format_table(rows: list[dict]) -> str:
    pm = lambda v: f"{v[0]:.3f} ± {v[1]:.3f}"  # noqa: E731
    lines = ["| dataset | features (dims → d) | songs | folds × repeats | method | R² valence | R² arousal "
             "| quadrant acc. | sign acc. V / A |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for m in METHODS:
            s = r[m]
            q = pm(s["quadrant_accuracy"]) if r["quadrants"] else ""
            sg = f"{s['sign_accuracy_valence'][0]:.3f} / {s['sign_accuracy_arousal'][0]:.3f}" if r["quadrants"] else ""
            lines.append(f"| {r['dataset']} | {r['features']} ({r['feature_dims']} → {r['dim']}) | {r['songs']} | "
                         f"{r['folds']} × {r['repeats']} | {m} | "
                         f"{pm(s['r2_valence'])} | {pm(s['r2_arousal'])} | {q} | {sg} |")
    lines += ["", "| dataset | features | triplet loss on held-out songs, untrained | after training |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['features']} | {pm(r['triplet_loss_before'])} | {pm(r['triplet_loss_after'])} |")
    return "\n".join(lines)


def cmd_static_benchmark(args) -> int:

    if args.report:
        return print_report(args.report)
    clips = load_clips(args.data, args.datasets or ["soundtracks"], {}, args.limit)
    clips = [c for c in clips if static_labels(c) is not None]
    if not clips:
        print("emotrack static-benchmark: no clips with song-level labels", file=sys.stderr)
        return 2
    feats = {}
    for name in args.features:
        if name == "compare":
            feats[name], errors = compare_features(clips, jobs=args.jobs, progress=not args.no_progress)
        else:
            feats[name], errors = vae_features(clips, Path(args.run), jobs=args.jobs, progress=not args.no_progress)
        for key, err in list(errors.items())[:5]:
            print(f"emotrack static-benchmark: {key}: {err} (left out)", file=sys.stderr)
    cfg = TnnConfig(epochs=args.epochs)
    rows = benchmark(clips, feats, folds=args.folds, repeats=args.repeats, cfg=cfg,
                     log=lambda s: print(f"emotrack static-benchmark: {s}", file=sys.stderr), dim=args.dim,
                     progress=not args.no_progress)
    table = format_table(rows)
    print(table)
    if args.tsne:
        for ds in sorted({c.dataset for c in clips}):
            idx = [i for i, c in enumerate(clips) if c.dataset == ds]
            y = np.array([static_labels(clips[i])[0] for i in idx])
            groups = np.array([clips[i].group for i in idx])
            for name, x in feats.items():
                ok = ~np.isnan(x[idx]).all(1)
                row = next(r for r in rows if r["dataset"] == ds and r["features"] == name)
                path = Path(args.tsne) / f"tsne-{ds}-{name}.png"
                tsne_picture(x[idx][ok], y[ok], groups[ok], cfg, row["dim"], path, f"{ds}, {name}")
                print(f"emotrack static-benchmark: wrote {path}", file=sys.stderr)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tnn_settings = {k: v for k, v in asdict(cfg).items() if k != "dim"}  # each row has its own dim
        out.write_text(json.dumps({"command": "emotrack " + " ".join(sys.argv[1:]), "tnn": tnn_settings, "rows": rows},
                                  indent=1) + "\n")
    return 0


def print_report(paths: list[str]) -> int:
    """One table from several ``--out`` files, and the commands that made them."""
    rows, commands = [], []
    for p in paths:
        try:
            d = json.loads(Path(p).read_text())
            rows += d["rows"]
            commands.append(d["command"])
        except (OSError, ValueError, KeyError) as e:
            print(f"emotrack static-benchmark: {p} is not a file written by --out ({e})", file=sys.stderr)
            return 2
    print(format_table(rows))
    print("\nMade by:\n" + "\n".join(commands))
    return 0


def tsne_picture(x: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: TnnConfig, dim: int, path: Path,
                 title: str) -> None:
    """t-SNE (openTSNE) of the standardised original features and of the TNN embedding,
    coloured by valence and by arousal. The TNN is trained on the first fold's training
    songs only; the songs it never saw are drawn with a black ring."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from openTSNE import TSNE

    fold = group_folds(groups, 5, 0)
    train = fold != 0
    mean, scale = standardiser(x[train])
    z = np.nan_to_num((x - mean) / scale)
    e = embed(train_tnn(x[train], y[train], replace(cfg, dim=dim)), x)
    maps = [TSNE(perplexity=min(30, (len(x) - 1) // 3), random_state=0, n_jobs=1).fit(a) for a in (z, e)]
    fig, axes = plt.subplots(2, 2, figsize=(10, 9.4), constrained_layout=True)
    for r, (m, what) in enumerate(zip(maps, [f"original features ({x.shape[1]})", f"TNN embedding ({dim})"], strict=True)):
        for c, (k, name) in enumerate([(0, "valence"), (1, "arousal")]):
            ax = axes[r, c]
            m = np.asarray(m)
            sc = ax.scatter(m[train, 0], m[train, 1], c=y[train, k], cmap="coolwarm", vmin=-1, vmax=1, s=14)
            ax.scatter(m[~train, 0], m[~train, 1], c=y[~train, k], cmap="coolwarm", vmin=-1, vmax=1, s=22,
                       edgecolors="black", linewidths=0.8)
            ax.set_title(f"{what}, coloured by {name}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(sc, ax=ax, shrink=0.8, label=name)
    fig.suptitle(f"{title}: t-SNE; ringed = songs the TNN did not train on", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
