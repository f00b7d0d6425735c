"""Metrics on held-out songs (offline): per-song RMSE, Pearson r and CCC for valence and
arousal, quadrant and sign accuracy, and the calibration of the predicted std.

Which numbers a dataset gets depends on its labels:
- ``dynamic`` (VGMIDI, DEAM, PMEmo, emoMusic): per song, over its labelled frames,
  RMSE, r and CCC between the predicted and the annotated curve; mean +- std over songs.
- ``static`` (Soundtracks, Emotify): one label per song. Per-song RMSE is over the song's
  frames (after warm-up) against that label, mean +- std over songs; r and CCC are across
  songs, between the song's mean prediction and its label, +- a bootstrap std over songs.
- ``quadrant`` (Panda 4Q, EMOPIA): from the song's mean prediction, the quadrant accuracy
  and the sign accuracy per dimension; r is the point-biserial correlation across songs
  between the mean prediction and the sign (+-1), +- a bootstrap std.
- calibration: the share of labelled frames whose truth lies within +-1 predicted std
  (a well-calibrated Gaussian gives 68.3 %).
"""

from __future__ import annotations

import numpy as np

from .data import QUADRANT_SIGNS
from .seqs import WARMUP


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() < 1e-9 or y.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2:
        return float("nan")
    cov = ((x - x.mean()) * (y - y.mean())).mean()
    den = x.var() + y.var() + (x.mean() - y.mean()) ** 2
    return float(2 * cov / den) if den > 1e-12 else float("nan")


def rmse(x, y) -> float:
    return float(np.sqrt(np.mean((np.asarray(x, float) - np.asarray(y, float)) ** 2)))


def _ms(values) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    return {"mean": float(v.mean()) if len(v) else float("nan"),
            "std": float(v.std()) if len(v) else float("nan"), "n": int(len(v))}


def bootstrap(f, x, y, n=500, seed=0) -> dict:
    """``f(x, y)`` and its spread: the std over ``n`` bootstrap resamples of the pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    val = f(x, y)
    rng = np.random.default_rng(seed)
    bs = [f(x[i], y[i]) for i in (rng.integers(0, len(x), len(x)) for _ in range(n))]
    bs = [b for b in bs if np.isfinite(b)]
    return {"mean": val, "std": float(np.std(bs)) if bs else float("nan"), "n": int(len(x))}


def paired_bootstrap_r(y, a, b, rng, n: int = 1000) -> dict:
    """Pearson r(b, y) - r(a, y) (two predictions ``a``, ``b`` of the same labels ``y``) and its
    95 % interval over ``n`` paired resamples drawn from ``rng``."""
    y, a, b = (np.asarray(v, float) for v in (y, a, b))
    diffs = [pearson(b[k], y[k]) - pearson(a[k], y[k]) for k in (rng.integers(0, len(y), len(y)) for _ in range(n))]
    return {"difference": pearson(b, y) - pearson(a, y),
            "95% interval": [float(v) for v in np.percentile(diffs, [2.5, 97.5])]}


def evaluate_predictions(seqs, preds: dict[str, np.ndarray]) -> dict:
    """``seqs``: objects with ``.clip``, ``.v``, ``.a``, ``.sign`` (see train.Seq);
    ``preds``: {clip key: (T, 4) [v, a, v_std, a_std]}. Returns {dataset: metrics}."""
    by_ds: dict[str, list] = {}
    for s in seqs:
        if s.key in preds and s.clip.kind != "unlabelled":  # unlabelled audio (Debian's) has nothing to score
            by_ds.setdefault(s.clip.dataset, []).append(s)
    return {ds: evaluate_dataset(items, preds) for ds, items in sorted(by_ds.items())}


def evaluate_dataset(items, preds) -> dict:
    kind = items[0].clip.kind
    out: dict = {"kind": kind, "songs": len(items)}
    inside, total = 0, 0
    if kind == "dynamic":
        for d, key in ((0, "valence"), (1, "arousal")):
            r_, c_, e_ = [], [], []
            for s in items:
                p = preds[s.key]
                y = s.v if d == 0 else s.a
                ok = np.isfinite(y[: len(p)])
                if ok.sum() < 2:
                    continue
                yy, pp = y[: len(p)][ok], p[ok, d]
                r_.append(pearson(pp, yy))
                c_.append(ccc(pp, yy))
                e_.append(rmse(pp, yy))
                if np.isfinite(p[ok, d + 2]).all():
                    inside += int((np.abs(pp - yy) <= p[ok, d + 2]).sum())
                    total += int(ok.sum())
            out[key] = {"rmse": _ms(e_), "r": _ms(r_), "ccc": _ms(c_)}
    elif kind == "static":
        for d, key in ((0, "valence"), (1, "arousal")):
            means, truth, e_ = [], [], []
            for s in items:
                p = preds[s.key]
                lab = s.clip.valence if d == 0 else s.clip.arousal
                body = p[WARMUP:] if len(p) > WARMUP else p
                means.append(float(p[:, d].mean()))
                truth.append(lab)
                e_.append(rmse(body[:, d], lab))
                if np.isfinite(body[:, d + 2]).all():
                    inside += int((np.abs(body[:, d] - lab) <= body[:, d + 2]).sum())
                    total += len(body)
            out[key] = {"rmse": _ms(e_), "r": bootstrap(pearson, means, truth), "ccc": bootstrap(ccc, means, truth)}
    elif kind == "quadrant":
        m = np.array([preds[s.key][:, :2].mean(0) for s in items])
        signs = np.array([QUADRANT_SIGNS[s.clip.quadrant] for s in items])
        pred_sign = np.where(m >= 0, 1.0, -1.0)
        out["quadrant_accuracy"] = float((pred_sign == signs).all(1).mean())
        for d, key in ((0, "valence"), (1, "arousal")):
            out[key] = {"sign_accuracy": float((pred_sign[:, d] == signs[:, d]).mean()),
                        "r": bootstrap(pearson, m[:, d], signs[:, d])}
    if total:
        out["within_1std"] = inside / total
    return out


def format_table(results: dict[str, dict]) -> str:
    """Markdown table: one row per (dataset, model); the metrics that dataset has."""
    lines = []
    datasets = sorted({ds for r in results.values() for ds in r})
    for ds in datasets:
        first = next(r[ds] for r in results.values() if ds in r)
        kind = first["kind"]
        lines.append(f"\n**{ds}** ({kind}, {first['songs']} test songs)\n")
        if kind == "quadrant":
            lines.append("| model | quadrant acc. | valence sign acc. | arousal sign acc. | valence r | arousal r |")
            lines.append("|---|---|---|---|---|---|")
            for name, r in results.items():
                if ds not in r:
                    continue
                m = r[ds]
                lines.append(f"| {name} | {m['quadrant_accuracy']:.3f} | {m['valence']['sign_accuracy']:.3f} | "
                             f"{m['arousal']['sign_accuracy']:.3f} | {_f(m['valence']['r'])} | {_f(m['arousal']['r'])} |")
        else:
            lines.append("| model | valence RMSE | valence r | valence CCC | arousal RMSE | arousal r | arousal CCC | within ±1σ |")
            lines.append("|---|---|---|---|---|---|---|---|")
            for name, r in results.items():
                if ds not in r:
                    continue
                m = r[ds]
                cal = f"{100 * m['within_1std']:.1f} %" if "within_1std" in m else "—"
                lines.append(f"| {name} | {_f(m['valence']['rmse'])} | {_f(m['valence']['r'])} | {_f(m['valence']['ccc'])} | "
                             f"{_f(m['arousal']['rmse'])} | {_f(m['arousal']['r'])} | {_f(m['arousal']['ccc'])} | {cal} |")
    return "\n".join(lines)


def _f(m: dict) -> str:
    if not np.isfinite(m["mean"]):
        return "—"
    return f"{m['mean']:.3f} ± {m['std']:.3f}"
