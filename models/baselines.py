"""The non-neural baselines, in numpy (torch-free: ``emotrack evaluate`` fits them too):
ridge regression on per-frame mel statistics, and the constant predictor. Offline.
"""

from __future__ import annotations

import numpy as np

from .seqs import WARMUP, Seq


def mel_stats(mel: np.ndarray) -> np.ndarray:
    """Per-frame statistics: mean and std over time of each mel band, plus a bias."""
    m = mel.astype(np.float32)
    return np.concatenate([m.mean(-1), m.std(-1), np.ones((len(m), 1), np.float32)], -1)


def _ridge_xy(seqs: list[Seq]):
    X, Y, W = [], [], []
    for s in seqs:
        f = mel_stats(s.mel)
        y = np.stack([s.v, s.a], -1)
        if s.sign.any():
            y = np.where(np.arange(len(y))[:, None] >= WARMUP, 0.5 * s.sign[None], np.nan)
        ok = np.isfinite(y).all(-1)
        X.append(f[ok])
        Y.append(y[ok])
        W.append(np.full(ok.sum(), s.weight, np.float32))
    return np.concatenate(X), np.concatenate(Y), np.concatenate(W)


def fit_ridge(train: list[Seq], val: list[Seq]) -> dict:
    """Weighted ridge regression on per-frame mel statistics; alpha picked on val."""
    X, Y, W = _ridge_xy(train)
    Xv, Yv, Wv = _ridge_xy(val)
    mu, sd = X[:, :-1].mean(0), X[:, :-1].std(0) + 1e-6

    def z(A):
        return np.concatenate([(A[:, :-1] - mu) / sd, A[:, -1:]], 1)

    Xz, Xvz = z(X), z(Xv)
    A = (Xz * W[:, None]).T @ Xz
    B = (Xz * W[:, None]).T @ Y
    best = None
    for alpha in (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0):
        reg = alpha * np.eye(A.shape[0])
        reg[-1, -1] = 0
        coef = np.linalg.solve(A + reg, B)
        err = float((Wv[:, None] * (np.clip(Xvz @ coef, -1, 1) - Yv) ** 2).sum() / Wv.sum())
        if best is None or err < best[0]:
            best = (err, alpha, coef)
    return {"alpha": best[1], "coef": best[2], "mu": mu, "sd": sd, "val_mse": best[0]}


def predict_ridge(r: dict, seqs: list[Seq]) -> dict[str, np.ndarray]:
    out = {}
    for s in seqs:
        f = mel_stats(s.mel)
        fz = np.concatenate([(f[:, :-1] - r["mu"]) / r["sd"], f[:, -1:]], 1)
        p = np.clip(fz @ r["coef"], -1, 1)
        out[s.key] = np.concatenate([p, np.full_like(p, np.nan)], -1)
    return out


def fit_constant(train: list[Seq]) -> np.ndarray:
    """Weighted mean of the continuous training targets, per dimension."""
    num, den = np.zeros(2), np.zeros(2)
    for s in train:
        y = np.stack([s.v, s.a], -1)
        ok = np.isfinite(y)
        num += np.where(ok, y, 0).sum(0) * s.weight
        den += ok.sum(0) * s.weight
    return num / np.maximum(den, 1e-9)


def predict_constant(c: np.ndarray, seqs: list[Seq]) -> dict[str, np.ndarray]:
    return {s.key: np.concatenate([np.tile(c, (len(s.mel), 1)), np.full((len(s.mel), 2), np.nan)], -1)
            for s in seqs}
