"""The teacher head: valence/arousal from the teachers' per-frame outputs, by ridge regression
(training only; no threads). It is the upper bound the student is measured against and the
source of pseudo-labels on unlabelled audio.

Features of a frame: both teachers' 200-d penultimate layers and 50 tag logits (500
numbers, see :mod:`emotrack.models.teacher_pass`), standardised on the training frames.
Targets: a clip's label on each of its frames from 3 s on (a window before then still holds
the silence a stream starts with): Soundtracks' and Emotify's ratings as they are, Panda's
and EMOPIA's quadrants as their centres (±0.5, ±0.5). Every dataset weighs the same in
total. Datasets with continuous labels get an intercept of their own (unpenalised),
learned and then dropped: their rating scales sit at different levels (Soundtracks' mean
is about −0.22), while the quadrant sets' signs fix where zero is. The ridge penalty is
chosen on the validation split. At run time the per-frame answer is smoothed causally
with an exponential average of time constant ``SMOOTH_SECONDS`` (3 s).

Optionally (``rff`` > 0) the ridge also sees ``rff`` random Fourier features (Rahimi & Recht)
of the frame: cosines of random projections of its first ``RFF_PCS`` principal components
(whitened on the training frames), which approximate the RBF kernel exp(-gamma * d^2)
(``RFF_GAMMA``), so the head can bend where valence is not a straight line through the
teachers' space. The features' projections are drawn from a fixed seed and kept in the head;
the expanded design is standardised like the rest. Compared with the linear head by grouped
5-fold cross-validation on the training and validation clips of Soundtracks and Panda
(``scripts/cv_teacher_head.py``, ``docs/model/experiments/teacher-head-cv.json``), it was not
better beyond noise and read valence worse on a set it never heard: off in every recipe.

Optionally (``vgg``) the frame also carries musicnn's MSD_vgg tagger's 562 outputs from its
own pass (``emotrack teacher-pass --vgg``, every second frame; a frame between holds the
last window's, so nothing after the frame is used): an experiment (docs/training.md, "Two
more taggers in the wheel"), off in every recipe.

Optionally (``tonal``, ``StudentConfig.head_tonal``) the frame also carries 22 numbers about
the key and mode of its pitch-class profile, and 22 of the profiles' causal average over the
last seconds (docs/training.md, "The key and the mode"): the teachers' tags hear timbre and
rhythm better than harmony.
"""

from __future__ import annotations

import math

import numpy as np

from .cache import cache_dir, chroma_path, load_chroma
from .data import QUADRANT_SIGNS
from .evaluate import evaluate_predictions
from .nets import tonal_numbers
from .teacher_pass import KEYS, VGG_KEYS, has_targets, load_targets, targets_path

SMOOTH_SECONDS = 3.0
MIN_T = 3.0  # seconds: frames before this see part of the silence that starts every stream
RFF_PCS = 64  # principal components the random features see
RFF_GAMMA = 0.01  # the RBF kernel's gamma, exp(-gamma * d^2), on the whitened components
ALPHAS = (1e2, 1e3, 1e4, 3e4, 1e5, 3e5, 1e6)
CONTINUOUS = ("soundtracks", "emotify", "vgmidi", "deam", "pmemo", "emomusic")


def teacher_features(clip, n_frames: int, vgg: bool = False, tonal: float | None = None) -> np.ndarray:
    """(n_frames, 500) float32: both teachers' penultimate and logits; NaN rows where no
    window was run (every other frame of the stride-2 sets). With ``vgg``, (n_frames, 1062):
    MSD_vgg's outputs beside them (see :func:`vgg_features`). With ``tonal`` (not None), the
    frames' tonal numbers after those (see :func:`tonal_features`)."""
    t = load_targets(clip, n_frames)
    x = np.concatenate([t[k] for k in KEYS], 1)
    parts = [x] + ([vgg_features(clip, n_frames)] if vgg else []) + \
        ([tonal_features(clip, n_frames, tonal)] if tonal is not None else [])
    return np.concatenate(parts, 1) if len(parts) > 1 else x


def tonal_features(clip, n_frames: int, avg_seconds: float) -> np.ndarray:
    """(n_frames, 22) float32: the raw key-and-mode numbers of each frame's pitch-class profile
    (``nets.tonal_numbers``, from the chroma cache); with ``avg_seconds`` > 0, (n_frames, 44):
    those of the profiles' causal average after them. Frames past the cached profiles (none
    where both caches come from the same audio) count as silent."""
    c = load_chroma(clip)[:n_frames]
    if len(c) < n_frames:
        c = np.concatenate([c, np.full((n_frames - len(c), 12), 1 / 12, np.float32)])
    return tonal_numbers(c, avg_seconds)


def vgg_features(clip, n_frames: int) -> np.ndarray:
    """(n_frames, 562) float32: MSD_vgg's outputs on the window ending at each frame, or the
    last one before it (the pass runs every second frame); NaN before the first."""
    z = np.load(targets_path(clip, vgg=True))
    k = z["k"]
    k = k[k <= n_frames]
    out = np.full((n_frames, sum(z[key].shape[1] for key in VGG_KEYS)), np.nan, np.float32)
    if len(k):
        rows = np.concatenate([z[key][: len(k)].astype(np.float32) for key in VGG_KEYS], 1)
        idx = np.searchsorted(k, np.arange(1, n_frames + 1), side="right") - 1  # the last window at or before
        ok = idx >= 0
        out[ok] = rows[idx[ok]]
    return out


def has_features(clip, vgg: bool = False, tonal: float | None = None) -> bool:
    return has_targets(clip) and (not vgg or has_targets(clip, vgg=True)) and \
        (tonal is None or chroma_path(clip).exists())


def no_features(what: str, vgg: bool = False) -> ValueError:
    """The error when none of ``what`` (e.g. "training clip") has the outputs a step reads."""
    outputs, cmd = ("the teachers' and MSD_vgg's outputs", "emotrack teacher-pass` and `emotrack teacher-pass --vgg") \
        if vgg else ("the teachers' outputs", "emotrack teacher-pass")
    return ValueError(f"no {what} has {outputs} in the cache ({cache_dir() / 'teacher'}): run `{cmd}` first, "
                      "with the same --data, --debian-root and EMOTRACK_CACHE as this command")


def clip_targets(seq) -> np.ndarray:
    """(T, 2) per-frame targets of a training sequence for the head; NaN where none."""
    T = len(seq.mel)
    y = np.full((T, 2), np.nan, np.float32)
    frames_t = 0.5 * np.arange(1, T + 1)
    late = frames_t >= MIN_T
    c = seq.clip
    if c.kind == "quadrant":
        y[late] = 0.5 * np.asarray(QUADRANT_SIGNS[c.quadrant], np.float32)
    elif c.kind == "static":
        y[late] = (c.valence, c.arousal)
    elif c.kind == "dynamic":
        y[:, 0], y[:, 1] = seq.v, seq.a
        y[~late] = np.nan
    return y


def random_features(n_features: int, x: np.ndarray, seed: int = 0, gamma: float = RFF_GAMMA) -> dict:
    """The random-feature map fit on standardised training frames ``x`` (N, 500): the
    whitened principal directions, the random projections and phases (the RBF kernel
    exp(-gamma * d^2) on the whitened components), and the features' standardising statistics."""
    _, s, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    k = min(RFF_PCS, len(s))
    rng = np.random.default_rng(seed)
    rff = {"pcs": (vt[:k] / (s[:k, None] / math.sqrt(len(x)) + 1e-9)).T,
           "W": rng.normal(0.0, math.sqrt(2 * gamma), (k, n_features)),
           "b": rng.uniform(0.0, 2 * math.pi, n_features), "mu": 0.0, "sd": 1.0}
    f = _cosines(rff, x)
    rff["mu"], rff["sd"] = f.mean(0), f.std(0) + 1e-6
    return rff


def _cosines(rff: dict, x: np.ndarray) -> np.ndarray:
    return np.cos((x @ rff["pcs"]) @ rff["W"] + rff["b"])


def expand(head: dict, x: np.ndarray) -> np.ndarray:
    """Standardised frames (N, 500) -> the head's design rows (with its random features, if any)."""
    rff = head.get("rff")
    if not rff:
        return x
    return np.concatenate([x, (_cosines(rff, x) - rff["mu"]) / rff["sd"]], 1)


def _design(seqs, mu=None, sd=None, vgg: bool = False, tonal: float | None = None):
    xs, ys, ds = [], [], []
    for s in seqs:
        if not has_features(s.clip, vgg, tonal):
            continue
        x = teacher_features(s.clip, len(s.mel), vgg, tonal)
        y = clip_targets(s)
        ok = np.isfinite(x).all(1) & np.isfinite(y).all(1)
        if ok.any():
            xs.append(x[ok])
            ys.append(y[ok])
            ds += [s.clip.dataset] * int(ok.sum())
    if not xs:
        raise no_features("labelled training clip of the teacher head's sets", vgg)
    X, Y, D = np.concatenate(xs), np.concatenate(ys), np.array(ds)
    if mu is None:
        mu, sd = X.mean(0), X.std(0) + 1e-6
    return (X - mu) / sd, Y, D, mu, sd


def fit(train, val, alphas=ALPHAS, rff: int = 0, gamma: float = RFF_GAMMA, vgg: bool = False,
        tonal: float | None = None) -> dict:
    """The ridge head on the training sequences, its penalty picked on the validation ones by
    the mean Pearson r (clip means against labels) over their datasets and both dimensions;
    with ``rff`` random Fourier features beside the teachers' outputs, with ``vgg`` MSD_vgg's,
    with ``tonal`` the frames' key-and-mode numbers (:func:`tonal_features`)."""
    best = None
    for head in fit_all(train, alphas, rff, gamma, vgg, tonal):
        score = val_score(head, val)
        if best is None or score > best[0]:
            best = (score, head)
    best[1]["val_score"] = best[0]
    return best[1]


def fit_all(train, alphas=ALPHAS, rff: int = 0, gamma: float = RFF_GAMMA, vgg: bool = False,
            tonal: float | None = None) -> list[dict]:
    """One ridge head on the training sequences for each penalty in ``alphas``."""
    X, Y, D, mu, sd = _design(train, vgg=vgg, tonal=tonal)
    feats = random_features(rff, X, gamma=gamma) if rff else None
    if feats:
        X = expand({"rff": feats}, X)
    sets = sorted(set(D))
    fits = solve(X, Y, D, alphas, [d for d in sets if d in CONTINUOUS])
    return [{"coef": w.astype(np.float32), "bias": b.astype(np.float32), "offsets": off, "mu": mu.astype(np.float32),
             "sd": sd.astype(np.float32), "alpha": alpha, "sets": sets, "rff": feats, "vgg": vgg,
             "tonal": tonal}
            for alpha, (w, b, off) in zip(alphas, fits, strict=True)]


def solve(X: np.ndarray, Y: np.ndarray, D: np.ndarray, alphas, offset_sets) -> list[tuple]:
    """The ridge fit on standardised rows ``X`` (N, k) against ``Y`` (N, 2), each dataset in
    ``D`` (N,) weighing the same in total (the mean row weight is 1), with an unpenalised
    intercept and an unpenalised offset of its own for each dataset in ``offset_sets``; one
    (coef (k, 2), bias (2,), {dataset: offset}) per penalty in ``alphas``."""
    sets = sorted(set(D))
    w = np.zeros(len(D))
    for d in sets:
        w[D == d] = len(D) / (len(sets) * (D == d).sum())
    dummies = np.stack([(D == d).astype(np.float64) for d in offset_sets], 1) if offset_sets else np.zeros((len(D), 0))
    A = np.concatenate([X, np.ones((len(D), 1)), dummies], 1)
    Aw = A * w[:, None]
    G, B = Aw.T @ A, Aw.T @ Y
    k = X.shape[1]
    out = []
    for alpha in alphas:
        reg = np.full(A.shape[1], alpha)
        reg[k:] = 0.0  # intercepts are not penalised
        coef = np.linalg.solve(G + np.diag(reg) + 1e-9 * np.eye(len(reg)), B)
        out.append((coef[:k], coef[k], {d: coef[k + 1 + i].tolist() for i, d in enumerate(offset_sets)}))
    return out


def smooth(raw: np.ndarray, hop: float = 0.5, seconds: float = SMOOTH_SECONDS) -> np.ndarray:
    """Causal exponential average of (T, d) rows (time constant ``seconds``), holding the last
    value over rows that are NaN (frames the teachers were not run on)."""
    out = np.full_like(raw, np.nan)
    state, gap = None, 1
    for i, r in enumerate(raw):
        if not np.isfinite(r).all():
            gap += 1
            if state is not None:
                out[i] = state
            continue
        a = 1.0 - math.exp(-gap * hop / seconds)
        state = r.copy() if state is None else state + a * (r - state)
        out[i] = state
        gap = 1
    return out


def predict(head: dict, clip, n_frames: int, smoothed: bool = True) -> np.ndarray:
    """(n_frames, 2) valence, arousal from the teachers' outputs (no per-dataset offset)."""
    x = (teacher_features(clip, n_frames, head.get("vgg", False), head.get("tonal")) - head["mu"]) / head["sd"]
    raw = np.clip(expand(head, x) @ head["coef"] + head["bias"], -1, 1)
    out = smooth(raw) if smoothed else raw
    # before the first window, hold its answer (a stream's first frames)
    first = np.flatnonzero(np.isfinite(out).all(1))
    if len(first):
        out[: first[0]] = out[first[0]]
    return out.astype(np.float32)


def predictions(head: dict, seqs) -> dict[str, np.ndarray]:
    """{clip key: (T, 4)} as the evaluation takes them (no predicted std)."""
    out = {}
    for s in seqs:
        if has_features(s.clip, head.get("vgg", False), head.get("tonal")):
            p = predict(head, s.clip, len(s.mel))
            out[s.key] = np.concatenate([p, np.full_like(p, np.nan)], 1)
    return out


def val_score(head: dict, seqs) -> float:
    return mean_r(evaluate_predictions(seqs, predictions(head, seqs)))


def mean_r(res: dict) -> float:
    """The mean Pearson r over the datasets and both dimensions of ``evaluate_predictions``'
    result (what picks the penalty); -inf where there is none."""
    rs = [m[d]["r"]["mean"] for m in res.values() for d in ("valence", "arousal")]
    rs = [r for r in rs if math.isfinite(r)]
    return float(np.mean(rs)) if rs else -math.inf
