"""How much of the teachers' outputs, and of the pseudo-labels' valence and arousal, a linear map
recovers from the last K frames' codes of a student run (K = 1 is one 0.5 s frame, as the
encoder sees it; K = 12 the last 6 s), on the validation frames:

    python scripts/probe_context.py --run runs/student-s0

If the past codes add much, the sequence of one-frame codes already carries the context the
LSTM needs, and what falls short is elsewhere; if not, the encoder itself would have to see
more than one frame. Rows for each frame's log-mel averaged over its time bins (no encoder)
give the floor. Ridge (alpha 10 on standardised inputs) fit on at most 200,000 random
training frames (seed 0); R^2 = 1 - residual / total variance over the target dimensions.
Reads ``RUN/codes.npz`` (written by ``scripts/sweep_head.py``) and the teacher cache.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from emotrack.models import distill, student
from emotrack.models.cli import add_script_arguments, script_clips
from emotrack.models.seqs import build_seqs, log
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def stack(x: np.ndarray, k: int) -> np.ndarray:
    """Row t holds x[t], x[t-1], ..., x[t-k+1] (row 0 repeated before the start): causal."""
    idx = np.clip(np.arange(len(x))[:, None] - np.arange(k)[None, :], 0, None)
    return x[idx].reshape(len(x), -1)


def ridge(x: np.ndarray, y: np.ndarray, alpha: float = 10.0):
    """Ridge on standardised inputs: its predict function."""
    return make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x, y).predict


def r2(p: np.ndarray, y: np.ndarray) -> float:
    return float(1 - ((p - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, type=Path, help="a student run with codes.npz")
    add_script_arguments(ap)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 6, 12])
    args = ap.parse_args()
    codes = np.load(args.run / "codes.npz")
    seqs = [s for s in build_seqs(script_clips(args), jobs=2) if s.key in codes.files]
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val")}
    scaler = distill.TeacherScaler(split["train"])
    _, targets, _, _ = student.student_targets(seqs, split, distill.StudentConfig(), scaler)
    rng = np.random.default_rng(0)
    feats = {"code": lambda s: codes[s.key][1],  # the 0 dB gain
             "log-mel band means": lambda s: s.mel.mean(-1).astype(np.float32)}

    def pool(seqs, feat, k, n=None):
        xs, ys, vs = [], [], []
        for s in seqs:
            t = targets[s.key]
            y = np.concatenate([t.emb, t.tags], 1)
            ok = np.isfinite(y).all(1)
            if ok.any():
                xs.append(stack(feat(s), k)[ok])
                ys.append(y[ok])
                vs.append(t.pseudo[ok])
        x, y, v = np.concatenate(xs), np.concatenate(ys), np.concatenate(vs)
        if n and len(x) > n:
            sel = rng.choice(len(x), n, replace=False)
            x, y, v = x[sel], y[sel], v[sel]
        return x, y, v

    print("| input | K (s) | teachers' outputs R² | pseudo valence R² | pseudo arousal R² |\n|---|---|---|---|---|")
    for name, feat in feats.items():
        for k in args.ks:
            t0 = time.time()
            x, y, v = pool(split["train"], feat, k, n=200_000)
            vx, vy, vv = pool(split["val"], feat, k)
            ok, vok = np.isfinite(v).all(1), np.isfinite(vv).all(1)
            pv = ridge(x[ok], v[ok])(vx[vok])
            print(f"| {name} | {k} ({k / 2:g}) | {r2(ridge(x, y)(vx), vy):.3f} | {r2(pv[:, :1], vv[vok][:, :1]):.3f} | "
                  f"{r2(pv[:, 1:], vv[vok][:, 1:]):.3f} |", flush=True)
            log(f"{name} K={k}: {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
