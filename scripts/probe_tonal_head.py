"""Does knowing the key and the mode help the teachers' valence? The ridge teacher head with
tonal features (``nets.TonalFeatures`` of the frames' pitch-class profiles, from the chroma
cache) beside the teachers' outputs, two ways (numpy and torch on one core, about two
minutes; the chroma cache is filled first where it lacks clips):

1. clip level, grouped 6-fold cross-validation over all 240 Soundtracks clips (folds by
   album, Panda's training clips always in): Pearson r of clip means, valence and arousal,
   with a paired bootstrap of the difference from the teachers' outputs alone; and the
   transfer a leave-one-out run depends on: fit on Panda (and Emotify), score all of
   Soundtracks;
2. frame level, the shipped head's protocol (``teacher_head.fit``: frames from 3 s on, per-set
   offsets, alpha on validation, 3 s smoothing): test-split r with the profile of the frame
   averaged causally over the last W frames, for each W given.

    python scripts/probe_tonal_head.py --windows 6 20 60
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from emotrack.models import teacher_head as th
from emotrack.models.cache import ensure_features, load_chroma
from emotrack.models.cli import add_script_arguments, script_clips
from emotrack.models.data import QUADRANT_SIGNS
from emotrack.models.evaluate import evaluate_predictions, pearson
from emotrack.models.nets import TonalFeatures
from emotrack.models.seqs import build_seqs
from emotrack.models.teacher_pass import KEYS, targets_path

SETS = ["soundtracks", "panda4q", "emotify"]
ALPHAS = (10, 30, 100, 300, 1000, 3000, 10000)
TONAL = TonalFeatures()


def tonal(chroma: np.ndarray) -> np.ndarray:
    """(N, 12) profiles -> (N, 22) raw tonal features (the profiles renormalised first)."""
    c = chroma / np.maximum(chroma.sum(1, keepdims=True), 1e-12)
    with torch.no_grad():
        return TONAL.raw(torch.from_numpy(c.astype(np.float32))).numpy()


def causal_mean(c: np.ndarray, w: int) -> np.ndarray:
    cs = np.cumsum(np.concatenate([np.zeros((1, 12)), c]), 0)
    i = np.arange(1, len(c) + 1)
    return cs[i] - cs[np.maximum(i - w, 0)]


def label(c) -> np.ndarray:
    return 0.5 * np.array(QUADRANT_SIGNS[c.quadrant], float) if c.quadrant else np.array([c.valence, c.arousal])


def clip_rows(clips, with_tonal: bool) -> np.ndarray:
    rows = []
    for c in clips:
        z = np.load(targets_path(c))
        x = np.concatenate([z[k][z["k"] >= 6].astype(np.float32) for k in KEYS], 1).mean(0)
        if with_tonal:
            ch = load_chroma(c)[6:].astype(np.float64)
            x = np.concatenate([x, tonal(ch.mean(0, keepdims=True))[0]])
        rows.append(x)
    return np.array(rows)


def fit_predict(train, test, with_tonal: bool) -> list[np.ndarray]:
    X = clip_rows(train, with_tonal)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    d = np.array([c.dataset for c in train])
    fits = th.solve((X - mu) / sd, np.array([label(c) for c in train]), d, ALPHAS,
                    [s for s in sorted(set(d)) if s in th.CONTINUOUS])
    Z = (clip_rows(test, with_tonal) - mu) / sd
    return [Z @ w + b for w, b, _ in fits]


def boot(y, a, b, n=2000) -> tuple[float, float, float]:
    rng = np.random.default_rng(1)
    d = [pearson(b[i], y[i]) - pearson(a[i], y[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(n))]
    return float(np.mean(d)), float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))


def clip_level(clips) -> None:
    st = [c for c in clips if c.dataset == "soundtracks"]
    groups = sorted({c.group for c in st})
    np.random.default_rng(0).shuffle(groups)
    fold = {g: i % 6 for i, g in enumerate(groups)}
    pan = [c for c in clips if c.dataset == "panda4q" and c.split == "train"]
    emo = [c for c in clips if c.dataset == "emotify" and c.split == "train"]
    y = np.array([label(c) for c in st])

    def best(preds):  # the penalty with the best mean r (the same favour for both rows)
        return max(preds, key=lambda p: pearson(p[:, 0], y[:, 0]) + pearson(p[:, 1], y[:, 1]))

    res = {}
    for name, tn in (("teachers", False), ("teachers + tonal", True)):
        P = np.zeros((len(ALPHAS), len(st), 2))
        for f in range(6):
            te = [i for i, c in enumerate(st) if fold[c.group] == f]
            tr = [c for c in st if fold[c.group] != f] + pan
            for a, p in enumerate(fit_predict(tr, [st[i] for i in te], tn)):
                P[a, te] = p
        res[name] = best(list(P))
        print(f"| CV, Soundtracks | {name} | {pearson(res[name][:, 0], y[:, 0]):.3f} | "
              f"{pearson(res[name][:, 1], y[:, 1]):.3f} |")
    for d, dn in ((0, "valence"), (1, "arousal")):
        m, lo, hi = boot(y[:, d], res["teachers"][:, d], res["teachers + tonal"][:, d])
        print(f"  tonal - teachers, {dn}: {m:+.3f} [{lo:+.3f}, {hi:+.3f}] (95 % bootstrap over clips)")
    for what, tr in (("Panda", pan), ("Panda + Emotify", pan + emo)):
        for name, tn in (("teachers", False), ("teachers + tonal", True)):
            p = best(fit_predict(tr, st, tn))
            print(f"| fit on {what}, all Soundtracks | {name} | {pearson(p[:, 0], y[:, 0]):.3f} | "
                  f"{pearson(p[:, 1], y[:, 1]):.3f} |")


def frame_level(clips, windows) -> None:
    orig = th.teacher_features
    seqs = [s for s in build_seqs(clips, jobs=1) if th.has_features(s.clip)]

    def with_windows(ws):
        def feats(clip, n, vgg=False, tonal=None):
            ch = load_chroma(clip)[:n].astype(np.float64)
            return np.concatenate([orig(clip, n, vgg, tonal)] + [tonal(causal_mean(ch, w)) for w in ws], 1).astype(np.float32)
        return feats

    for ws in [()] + [(w,) for w in windows]:
        th.teacher_features = with_windows(ws) if ws else orig
        tr = [s for s in seqs if s.clip.split == "train" and s.clip.dataset in ("soundtracks", "panda4q")]
        va = [s for s in seqs if s.clip.split == "val" and s.clip.dataset in ("soundtracks", "panda4q")]
        head = th.fit(tr, va)
        te = [s for s in seqs if s.clip.split == "test"]
        m = evaluate_predictions(te, th.predictions(head, te))
        st, pa, em = m["soundtracks"], m["panda4q"], m["emotify"]
        print(f"| {'teachers' if not ws else f'+ tonal, last {ws[0]} frames'} | {st['valence']['r']['mean']:.3f} | "
              f"{st['arousal']['r']['mean']:.3f} | {pa['quadrant_accuracy']:.3f} | {pa['valence']['sign_accuracy']:.3f} | "
              f"{em['valence']['r']['mean']:.3f} | {em['arousal']['r']['mean']:.3f} |")
    th.teacher_features = orig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_script_arguments(ap)
    ap.add_argument("--windows", type=int, nargs="*", default=[6, 20, 60],
                    help="frame level: causal averages of the profile over this many frames (0.5 s each)")
    args = ap.parse_args()
    args.datasets = args.datasets or SETS
    args.debian_root = args.debian_root or "/nonexistent"  # labelled clips only
    clips = [c for c in script_clips(args) if c.dataset in SETS and th.has_features(c)]
    ensure_features(clips, jobs=1, chroma=True, progress=False)
    print("| clips | head | valence r | arousal r |\n|---|---|---|---|")
    clip_level(clips)
    print("\n| frame-level head, test split | Soundtracks valence r | arousal r | Panda quadrant | Panda valence sign "
          "| Emotify valence r | arousal r |\n|---|---|---|---|---|---|---|")
    frame_level(clips, args.windows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
