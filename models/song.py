"""The shipped whole-song model: TNN-SVR on the statistics of the VAE codes, as one network
from a song's log-mel frames to its valence and arousal (``emotrack train-song``).

``SongNet``: mel frames (T, n_mels, n_t) -> the VAE encoder's code means (T, latent) ->
their statistics over the song (mean, std, 10th / 50th / 90th percentile per dimension,
exactly ``static.code_statistics``) -> the TNN embedding -> one RBF SVR per dimension ->
valence and arousal clipped to [-1, 1]. Every stage is a torch operation, so the whole
model is one ONNX graph and the runtime needs neither torch nor scikit-learn.

Training (``train_song``): the TNN and the SVRs are fit on the training split of the
chosen datasets, with the benchmark's settings (``TnnConfig``, dimension 10 % of the
features); the report holds song-level metrics on the validation and test splits, next
to two baselines on the same songs: the SVR on the raw code statistics, and the mean of
the dynamic model's trajectory (what ``emotrack index`` stored before).

A third head reads the dynamic model instead of the codes: the same SVR on the same five
statistics of every output of the shipped dynamic model over the song (valence, arousal,
their stds and the descriptors as logits: ``trajectory_statistics``), run from zero state on
every frame, as ``emotrack analyze`` does. Validation (``selection_score``) chooses among the
heads ``heads`` allows: "code" (the better of TNN-SVR and the plain SVR), "trajectory", and
"both" (the mean of those two: where neither head is clearly better on validation, their mean
usually errs less than either, and it does not bet on a difference within validation noise).
The graph always holds the code head; a trajectory head answers (alone, or half of the answer
with "both": ``trajectory_head_share``) only for the dynamic model it was trained on
(``trajectory_model``), and the code head alone for any other.

The shipped answer may then mix in the trajectory's mean: ``w`` × the chosen head + (1 − w)
× the mean of the dynamic model's trajectory over the song, ``w`` in ``BLEND_WEIGHTS`` chosen
on the same validation songs by the same score. The weight, too, holds only for
``trajectory_model`` (stored in the ONNX metadata); with any other dynamic model the runtime
gives the code head's answer alone (``SongModel.whole``).

``cross_validate_song`` (``train-song --cv K``) asks whether validation's choice is more than one
small split's noise: every head fit K times, each scored on a fold of validation songs it was not
fit on (``song_folds``: the splits' own groups), the test split unread.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from emotrack.realtime.core.model import load_model
from emotrack.realtime.core.song import quadrants, trajectory_matrix
from sklearn.svm import SVR
from torch import nn

from .cache import ensure_features, load_chroma, load_features
from .data import Clip
from .evaluate import bootstrap, ccc, pearson, rmse
from .nets import FrameVAE, NetConfig
from .options import SONG_HEADS
from .static import (
    PERCENTILES,
    TnnConfig,
    code_statistics,
    embed,
    standardiser,
    static_labels,
    tnn_net,
    train_tnn,
    vae_checkpoint,
    vae_features,
)
from .static_bench import r2
from .teacher_head import teacher_features
from .teacher_pass import has_targets

DEFAULT_DATASETS = ("soundtracks", "emotify", "panda4q", "vgmidi", "emopia")
SVR_PARAMS = {"C": 1.0, "epsilon": 0.1, "gamma": "scale"}  # as in the benchmark
BLEND_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)  # the head's share; the first is the head alone
CODE_METHODS = ("TNN-SVR", "SVR (raw code statistics)")
TRAJECTORY_METHOD = "SVR (trajectory statistics)"
BOTH_METHOD = "mean of the code and trajectory heads"
LOGIT_EPS = 1e-4  # the descriptors (probabilities) are clipped to [eps, 1 - eps] before the logit


def torch_modules():

    class CodeStats(nn.Module):
        """(T, D) -> (5 D,): mean, std (ddof 0), and the percentiles with numpy's linear
        interpolation, for any T >= 1 (T stays dynamic in the ONNX graph)."""

        def forward(self, z):
            mean = z.mean(0)
            std = ((z - mean) ** 2).mean(0).sqrt()
            s, _ = torch.sort(z, dim=0)
            last = torch.ones_like(z[:, 0]).sum() - 1.0  # T - 1 as a tensor, not a traced constant
            out = [mean, std]
            for q in PERCENTILES:
                pos = last * (q / 100.0)
                lo = torch.floor(pos)
                frac = pos - lo
                lo_i = lo.long().reshape(1)
                hi_i = torch.minimum(lo_i + 1, last.long().reshape(1))
                a = s.index_select(0, lo_i)[0]
                b = s.index_select(0, hi_i)[0]
                out.append(a + (b - a) * frac)
            return torch.cat(out)

    class RbfSvr(nn.Module):
        """A fitted scikit-learn RBF SVR: sum_i coef_i exp(-gamma |x - sv_i|^2) + b."""

        def __init__(self, sv: np.ndarray, coef: np.ndarray, intercept: float, gamma: float):
            super().__init__()
            self.register_buffer("sv", torch.from_numpy(np.asarray(sv, np.float32)))
            self.register_buffer("coef", torch.from_numpy(np.asarray(coef, np.float32).reshape(-1)))
            self.register_buffer("intercept", torch.tensor(float(intercept)))
            self.register_buffer("gamma", torch.tensor(float(gamma)))

        def forward(self, e):  # e: (d,)
            d2 = ((self.sv - e[None, :]) ** 2).sum(-1)
            return (torch.exp(-self.gamma * d2) * self.coef).sum() + self.intercept

    class Standardise(nn.Module):
        """The plain SVR's input: the raw statistics, standardised (in place of the TNN)."""

        def __init__(self, mean: np.ndarray, scale: np.ndarray):
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(np.asarray(mean, np.float32)))
            self.register_buffer("scale", torch.from_numpy(np.asarray(scale, np.float32)))

        def forward(self, x):
            return (x - self.mean) / self.scale

    class TrajectoryHead(nn.Module):
        """trajectory (T, 4 + D) -> valence (), arousal (): the descriptor columns as logits,
        the five statistics of every column (``trajectory_statistics``), standardised, SVRs."""

        def __init__(self, mean: np.ndarray, scale: np.ndarray, svr_v, svr_a):
            super().__init__()
            self.stats, self.standardise, self.svr_v, self.svr_a = CodeStats(), Standardise(mean, scale), svr_v, svr_a

        def statistics(self, traj):
            d = traj[:, 4:].clamp(LOGIT_EPS, 1.0 - LOGIT_EPS)
            return self.stats(torch.cat([traj[:, :4], torch.log(d / (1.0 - d))], 1))

        def forward(self, traj):
            x = self.standardise(self.statistics(traj))
            return self.svr_v(x).clamp(-1.0, 1.0), self.svr_a(x).clamp(-1.0, 1.0)

    class SongNet(nn.Module):
        """mel (T, n_mels, n_t) -> valence (), arousal (), embedding (d,) from the codes; with a
        trajectory head, also trajectory (T', 4 + D) -> trajectory_valence (), trajectory_arousal ()."""

        def __init__(self, encoder, tnn, svr_v, svr_a, trajectory_head=None):
            super().__init__()
            self.encoder, self.stats, self.tnn = encoder, CodeStats(), tnn
            self.svr_v, self.svr_a, self.trajectory_head = svr_v, svr_a, trajectory_head

        def codes(self, mel):
            return self.encoder(mel).chunk(2, dim=-1)[0]  # the mean of q(z|x), as FrameVAE.codes

        def forward(self, mel, trajectory=None):
            e = self.tnn(self.stats(self.codes(mel))[None])[0]
            out = (self.svr_v(e).clamp(-1.0, 1.0), self.svr_a(e).clamp(-1.0, 1.0), e)
            return out if self.trajectory_head is None else out + self.trajectory_head(trajectory)

    return CodeStats, RbfSvr, SongNet, Standardise, TrajectoryHead


def load_vae(run: Path):
    ckpt = torch.load(vae_checkpoint(run), map_location="cpu", weights_only=False)
    vae = FrameVAE(NetConfig.from_dict(ckpt["net_config"]))
    vae.load_state_dict(ckpt["vae"])
    return vae.eval()


def fit_svrs(e: np.ndarray, y: np.ndarray, params: dict | None = None) -> list:
    """One RBF SVR per dimension (valence, arousal), with ``params`` (default ``SVR_PARAMS``)."""
    return [SVR(**(params or SVR_PARAMS)).fit(e, y[:, k]) for k in range(2)]


# ---------------------------------------------------------------------- metrics
def song_metrics(y: np.ndarray, p: np.ndarray, quad: np.ndarray | None) -> dict:
    """Song-level metrics across songs, valence and arousal apart: R^2, RMSE, Pearson r and
    CCC (+- bootstrap std over songs); on quadrant sets (labels = quadrant centres) the
    quadrant accuracy, the sign accuracy and the point-biserial r with the sign instead."""
    out: dict = {"songs": int(len(y))}
    if quad is not None:
        out["quadrant_accuracy"] = float((quadrants(p) == quad).mean())
    for d, key in ((0, "valence"), (1, "arousal")):
        if quad is not None:
            sign = np.sign(y[:, d])
            out[key] = {"sign_accuracy": float((np.where(p[:, d] >= 0, 1.0, -1.0) == sign).mean()),
                        "r": bootstrap(pearson, p[:, d], sign)}
        else:
            out[key] = {"r2": r2(y[:, d], p[:, d]),
                        "rmse": rmse(p[:, d], y[:, d]), "r": bootstrap(pearson, p[:, d], y[:, d]),
                        "ccc": bootstrap(ccc, p[:, d], y[:, d])}
    return out


def trajectories(clips: list[Clip], model=None) -> list[np.ndarray]:
    """The dynamic ``model``'s outputs (default: the shipped one) over each clip from zero
    state, every frame (``trajectory_matrix``: valence, arousal, their stds, descriptors),
    through the ONNX runtime."""

    model = model or load_model()
    if model.takes_chroma:
        ensure_features(clips, chroma=True, progress=False)
    out = []
    for c in clips:
        extra = {"chroma": load_chroma(c)} if model.takes_chroma else {}
        o, _ = model.run(load_features(c).astype(np.float32), model.zero_state(), **extra)
        out.append(trajectory_matrix(o.valence, o.arousal, o.valence_std, o.arousal_std, o.descriptors))
    return out


def trajectory_statistics(traj: np.ndarray) -> np.ndarray:
    """What the trajectory head reads (numpy, as its graph): the descriptor columns as logits,
    then mean, std, p10, p50, p90 of every column over the frames."""
    traj = np.asarray(traj, np.float32)
    # clipped in float32, as the graph does, so that both take the logit of the same numbers
    d = np.clip(traj[:, 4:], np.float32(LOGIT_EPS), np.float32(1 - LOGIT_EPS)).astype(np.float64)
    return code_statistics(np.concatenate([traj[:, :4], np.log(d / (1 - d))], 1))


def evaluate_split(clips: list[Clip], preds: dict[str, np.ndarray]) -> dict:
    """{dataset: {method: song_metrics}} for these clips and {method: (n, 2) predictions}."""
    res: dict = {}
    for ds in sorted({c.dataset for c in clips}):
        idx = [i for i, c in enumerate(clips) if c.dataset == ds]
        labels = [static_labels(clips[i]) for i in idx]
        y = np.array([lab[0] for lab in labels])
        quad = np.array([lab[1] for lab in labels]) if labels[0][1] is not None else None
        res[ds] = {m: song_metrics(y, p[idx], quad) for m, p in preds.items()}
    return res


# ---------------------------------------------------------------------- training
def train_song(clips: list[Clip], run: Path, out: Path, cfg: TnnConfig | None = None, jobs: int = 2,
               progress: bool = True, log=print, sources: dict | None = None, dim: int | None = None,
               heads: tuple[str, ...] = SONG_HEADS) -> dict:
    """Fit the TNN and the SVRs on the training clips; write ``out``/song.pt and report.json.
    ``dim``: the embedding size (default 10 % of the features); ``heads``: what validation
    may choose among (``SONG_HEADS``)."""

    cfg = cfg or TnnConfig()
    if not heads or not set(heads) <= set(SONG_HEADS):
        raise ValueError(f"heads must be some of {SONG_HEADS}, got {heads}")
    clips = [c for c in clips if static_labels(c) is not None]
    t0 = time.time()
    x, errors = vae_features(clips, Path(run), jobs=jobs, progress=progress)
    for key, err in list(errors.items())[:5]:
        log(f"{key}: {err} (left out)")
    keep = ~np.isnan(x).all(1)
    clips, x = [c for c, k in zip(clips, keep, strict=True) if k], x[keep]
    y = np.array([static_labels(c)[0] for c in clips])
    split = np.array([c.split for c in clips])
    train = split == "train"
    if train.sum() < 10:
        raise ValueError(f"only {int(train.sum())} training songs with song-level labels; need at least 10")
    dim = max(2, dim or round(0.1 * x.shape[1]))
    cfg = replace(cfg, dim=dim)
    log(f"TNN on {int(train.sum())} training songs, {x.shape[1]} features -> {dim} dims")
    dynamic = load_model()  # the shipped dynamic model, over every clip, every frame
    runs = trajectories(clips, dynamic)
    traj = np.array([m[:, :2].mean(0) for m in runs])
    ts = np.stack([trajectory_statistics(m) for m in runs])
    preds, fitted = fit_heads(x, ts, y, train, cfg)
    preds["trajectory mean (VAE-LSTM)"] = np.where(train[:, None], np.nan, traj)
    tnn, svrs, raw_svrs, t_svrs = fitted["tnn"], fitted["svrs"], fitted["raw_svrs"], fitted["t_svrs"]
    raw_mean, raw_scale, t_mean, t_scale = fitted["raw_mean"], fitted["raw_scale"], fitted["t_mean"], fitted["t_scale"]
    teacher = teacher_song_features(clips)
    if teacher is not None:  # the upper bound: the same SVR on the teachers' outputs, run offline
        tm, tsd = standardiser(teacher[train])
        tt = np.nan_to_num((teacher - tm) / tsd)
        up_svrs = fit_svrs(tt[train], y[train])
        preds["SVR (teacher features, upper bound)"] = np.column_stack([s.predict(tt) for s in up_svrs]).clip(-1, 1)
    val = split == "val"
    score = lambda p: fold_score(clips, val, p)  # noqa: E731
    choice = {m: score(preds[m]) for m in CODE_METHODS + (TRAJECTORY_METHOD,)}
    code_method = max(CODE_METHODS, key=choice.get)  # the graph's code head, whatever answers
    preds[BOTH_METHOD] = 0.5 * (preds[code_method] + preds[TRAJECTORY_METHOD])  # both clipped already
    choice[BOTH_METHOD] = score(preds[BOTH_METHOD])
    method = max([code_method] * ("code" in heads) + [TRAJECTORY_METHOD] * ("trajectory" in heads)
                 + [BOTH_METHOD] * ("both" in heads), key=choice.get)
    head, blend = preds[method], {}
    head_share = 0.5 if method == BOTH_METHOD else 1.0  # the trajectory head's share, where it answers
    for w in BLEND_WEIGHTS:  # then how much of the trajectory mean to mix in, on the same songs
        blend[w] = score((w * head + (1 - w) * traj).clip(-1, 1))
    weight = max(BLEND_WEIGHTS, key=lambda w: np.nan_to_num(blend[w], nan=-np.inf))  # ties keep more of the head
    if weight < 1.0:
        preds[blend_name(method, weight)] = (weight * head + (1 - weight) * traj).clip(-1, 1)
    label = dynamic.label
    report = {"tnn": asdict(cfg), "svr": SVR_PARAMS, "features": f"VAE-code statistics ({x.shape[1]})",
              "trajectory_features": f"trajectory statistics ({ts.shape[1]}) of {label}",
              "run": str(run), "data": data_summary(clips), "sources": sources or {},
              "train_seconds": round(time.time() - t0, 1), "heads": list(heads), "method": method,
              "code_method": code_method, "selection_val_score": choice,
              "trajectory_head_share": head_share,
              "trajectory_weight": weight, "trajectory_model": label, "trajectory_model_sha256": dynamic.sha256,
              "blend_val_score": {f"{w:g}": v for w, v in blend.items()}}
    for sp in ("val", "test"):
        m = split == sp
        report[sp] = evaluate_split([c for c, k in zip(clips, m, strict=True) if k], {k: v[m] for k, v in preds.items()})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = svrs if code_method == "TNN-SVR" else raw_svrs
    state = {"tnn_config": asdict(cfg), "n_features": int(x.shape[1]), "tnn": tnn.state_dict(),
             "svrs": [svr_state(s) for s in chosen], "method": method, "code_method": code_method,
             "raw_mean": raw_mean, "raw_scale": raw_scale, "vae_run": str(run), "trajectory_weight": weight,
             "trajectory_model": label, "trajectory_model_sha256": dynamic.sha256,
             "trajectory_head_share": head_share}
    if method in (TRAJECTORY_METHOD, BOTH_METHOD):
        state["trajectory_head"] = {"columns": int(runs[0].shape[1]), "mean": t_mean, "scale": t_scale,
                                    "svrs": [svr_state(s) for s in t_svrs]}
    torch.save(state, out / "song.pt")
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def fit_heads(x: np.ndarray, ts: np.ndarray, y: np.ndarray, fit: np.ndarray, cfg: TnnConfig) -> tuple[dict, dict]:
    """Fit every head on the rows ``fit`` of the code statistics ``x`` and the trajectory
    statistics ``ts`` (labels ``y``); their predictions on every row (clipped to [-1, 1]) and the
    fitted parts (the TNN, its SVRs, the plain SVRs, the trajectory head's SVRs, standardisers)."""
    tnn = train_tnn(x[fit], y[fit], cfg)
    e = embed(tnn, x)
    svrs = fit_svrs(e[fit], y[fit])
    raw_mean, raw_scale = tnn.mean.numpy(), tnn.scale.numpy()
    z = np.nan_to_num((x - raw_mean) / raw_scale)
    raw_svrs = fit_svrs(z[fit], y[fit])
    t_pred, t_mean, t_scale, t_svrs = fit_trajectory_head(ts, y, fit)
    preds = {"TNN-SVR": np.column_stack([s.predict(e) for s in svrs]).clip(-1, 1),
             "SVR (raw code statistics)": np.column_stack([s.predict(z) for s in raw_svrs]).clip(-1, 1),
             TRAJECTORY_METHOD: t_pred}
    fitted = {"tnn": tnn, "svrs": svrs, "raw_svrs": raw_svrs, "raw_mean": raw_mean, "raw_scale": raw_scale,
              "t_svrs": t_svrs, "t_mean": t_mean, "t_scale": t_scale}
    return preds, fitted


def fit_trajectory_head(ts: np.ndarray, y: np.ndarray, fit: np.ndarray, params: dict | None = None):
    """The trajectory head fit on the rows ``fit`` of the trajectory statistics ``ts``: its
    predictions on every row (clipped to [-1, 1]), the standardiser (mean, scale) and the SVRs."""
    mean, scale = standardiser(ts[fit])
    tz = np.nan_to_num((ts - mean) / scale)
    svrs = fit_svrs(tz[fit], y[fit], params)
    return np.column_stack([s.predict(tz) for s in svrs]).clip(-1, 1), mean, scale, svrs


def fold_score(clips: list[Clip], held: np.ndarray, p: np.ndarray) -> float:
    """``selection_score`` of the predictions ``p`` (one row per clip) on the clips ``held``."""
    return selection_score(evaluate_split([c for c, h in zip(clips, held, strict=True) if h], {"x": p[held]}))


def deal_folds(clips: list[Clip], k: int, songs: str = "val") -> np.ndarray:
    """Each clip's fold for ``cross_validate_song``: the validation songs (``songs`` "val") or
    the training and validation songs ("all") dealt by ``song_folds``; -1 for the others, which
    are always fit and never scored."""
    dealt = [i for i, c in enumerate(clips) if songs == "all" or c.split == "val"]
    fold = np.full(len(clips), -1)
    fold[dealt] = song_folds([clips[i] for i in dealt], k)
    return fold


def song_folds(clips: list[Clip], k: int) -> np.ndarray:
    """Each clip's fold (0..k-1): every dataset's groups (Soundtracks' albums, a piece's
    segments...) dealt into ``k`` folds of about equal size (``GroupKFold``), so that no group
    is in two folds. Deterministic: it depends only on the clips."""
    from sklearn.model_selection import GroupKFold

    fold = np.full(len(clips), -1)
    for ds in sorted({c.dataset for c in clips}):
        idx = np.array([i for i, c in enumerate(clips) if c.dataset == ds])
        groups = np.array([clips[i].group for i in idx])
        if len(set(groups)) < k:
            raise ValueError(f"{ds} has {len(set(groups))} groups (songs, albums, pieces) to deal into folds; "
                             f"--cv {k} needs at least {k}: use fewer folds or more data (without --limit)")
        for f, (_, held) in enumerate(GroupKFold(n_splits=k).split(idx, groups=groups)):
            fold[idx[held]] = f
    return fold


def cross_validate_song(clips: list[Clip], run: Path, k: int = 5, cfg: TnnConfig | None = None, jobs: int = 2,
                        progress: bool = True, log=print, sources: dict | None = None,
                        dim: int | None = None, songs: str = "val", fit: str = "all") -> dict:
    """How much of a difference between the heads is more than the noise of one validation split:
    the heads ``train_song`` chooses among, fit ``k`` times with one fold of songs held out each
    time (``song_folds``), each scored on its held-out fold with the validation score
    (``selection_score``); the test split is not read.

    ``songs`` says which songs are dealt into folds. "val" (the default): the validation songs,
    each fold fit on every training song and the other validation folds. Only these are fair to
    score, because the VAE and the dynamic model whose trajectory the trajectory head reads were
    trained on the training songs (the dynamic model fit their labels), so on a training song
    the heads read representations that have seen its answer. "all": the training and
    validation songs together (more songs per fold, but a score biased towards the heads that
    lean on the trained representation the most, the trajectory head above all).

    ``fit`` says what each fold's heads are fit on: "all" (the default) every song not held out;
    "val" the other folds alone (with ``songs`` "val": only songs the representations never
    trained on); "train" the training songs alone, as ``train_song`` fits them (the same fit for
    every fold: what refitting on the validation songs too would add).

    The code head of "both" is the code method with the higher mean score over the folds, as
    ``train_song`` takes the better one on validation. Returns the report (fold scores, mean,
    sd, and the paired differences of "both" and "code" against "trajectory")."""

    cfg = cfg or TnnConfig()
    if k < 2:
        raise ValueError(f"--cv needs at least 2 folds, got {k}")
    if songs not in ("val", "all"):
        raise ValueError(f"the songs dealt into folds are 'val' or 'all', got {songs!r}")
    if fit not in ("val", "all", "train"):
        raise ValueError(f"the songs the heads are fit on are 'all', 'val' or 'train', got {fit!r}")
    if fit == "train" and songs != "val":
        raise ValueError("fitting on the training songs alone (--cv-fit train) needs the validation songs in folds "
                         "(--cv-songs val)")
    clips = [c for c in clips if c.split in ("train", "val") and static_labels(c) is not None]
    t0 = time.time()
    fold = deal_folds(clips, k, songs)
    x, errors = vae_features(clips, Path(run), jobs=jobs, progress=progress)
    for key, err in list(errors.items())[:5]:
        log(f"{key}: {err} (left out)")
    keep = ~np.isnan(x).all(1)
    clips, x, fold = [c for c, kk in zip(clips, keep, strict=True) if kk], x[keep], fold[keep]
    y = np.array([static_labels(c)[0] for c in clips])
    cfg = replace(cfg, dim=max(2, dim or round(0.1 * x.shape[1])))
    dynamic = load_model()
    ts = np.stack([trajectory_statistics(m) for m in trajectories(clips, dynamic)])
    scores: dict[str, list[float]] = {}
    for f in range(k):
        held = fold == f
        # "all": every song not held out; "val": the other folds only; "train": the songs outside the folds only
        fit_on = ~held & {"all": True, "val": fold >= 0, "train": fold < 0}[fit]
        log(f"fold {f + 1}/{k}: fit on {int(fit_on.sum())} songs, score on {int(held.sum())}")
        preds, _ = fit_heads(x, ts, y, fit_on, cfg)
        for code in CODE_METHODS:
            preds[f"mean of the {code} and trajectory heads"] = 0.5 * (preds[code] + preds[TRAJECTORY_METHOD])
        for m, p in preds.items():
            scores.setdefault(m, []).append(fold_score(clips, held, p))
    code_method = max(CODE_METHODS, key=lambda m: np.mean(scores[m]))
    heads = {"code": scores[code_method], "trajectory": scores[TRAJECTORY_METHOD],
             "both": scores[f"mean of the {code_method} and trajectory heads"]}
    summary = lambda v: {"folds": [float(a) for a in v], "mean": float(np.mean(v)),  # noqa: E731
                         "sd": float(np.std(v, ddof=1))}
    report = {"folds": k, "songs": songs, "fit": fit, "tnn": asdict(cfg), "svr": SVR_PARAMS, "run": str(run),
              "trajectory_model": dynamic.label, "trajectory_model_sha256": dynamic.sha256, "sources": sources or {},
              "data": data_summary(clips), "fold_songs": [int((fold == f).sum()) for f in range(k)],
              "code_method": code_method, "methods": {m: summary(v) for m, v in scores.items()},
              "heads": {h: summary(v) for h, v in heads.items()},
              "paired_vs_trajectory": {h: summary(np.subtract(heads[h], heads["trajectory"])) for h in ("code", "both")},
              "seconds": round(time.time() - t0, 1)}
    return report


def format_cv_report(report: dict) -> str:
    """Markdown: each method's score on every held-out fold, mean and sd; then the paired
    differences against the trajectory head."""
    k = report["folds"]
    which = ("the validation songs" if report.get("songs", "val") == "val" else "the training and validation songs")
    which += {"all": ", each fold fit on every song not held out", "val": ", each fold fit on the other folds alone",
              "train": ", every fold fit on the training songs alone"}[report.get("fit", "all")]
    lines = [f"Cross-validated song-level score ({k} folds of {which}; score: the mean over the datasets of "
             "the mean valence/arousal CCC, or the quadrant accuracy)", "",
             "| method | " + " | ".join(f"fold {f + 1} ({n})" for f, n in enumerate(report["fold_songs"]))
             + " | mean | sd |", "|---|" + "---|" * (k + 2)]
    for m, r in report["methods"].items():
        lines.append(f"| {m} | " + " | ".join(f"{v:.4f}" for v in r["folds"]) + f" | {r['mean']:.4f} | {r['sd']:.4f} |")
    lines += ["", f"code head: {report['code_method']}", "",
              "| paired difference | " + " | ".join(f"fold {f + 1}" for f in range(k)) + " | mean | sd |",
              "|---|" + "---|" * (k + 2)]
    for h, r in report["paired_vs_trajectory"].items():
        lines.append(f"| {h} − trajectory | " + " | ".join(f"{v:+.4f}" for v in r["folds"])
                     + f" | {r['mean']:+.4f} | {r['sd']:.4f} |")
    return "\n".join(lines) + "\n"


def blend_name(method: str, weight: float) -> str:
    return f"{method} × {weight:g} + trajectory mean × {1 - weight:g}"


def svr_state(s) -> dict:
    return {"sv": s.support_vectors_.astype(np.float32), "coef": s.dual_coef_.reshape(-1).astype(np.float32),
            "intercept": float(s.intercept_[0]), "gamma": float(s._gamma)}


def load_song_net(run: Path, vae_run: Path | None = None):
    """The torch SongNet of a ``train-song`` run (its VAE from the run it names, or ``vae_run``)."""

    ck = torch.load(Path(run) / "song.pt", map_location="cpu", weights_only=False)
    cfg = TnnConfig(**ck["tnn_config"])
    _, RbfSvr, SongNet, Standardise, TrajectoryHead = torch_modules()
    if ck.get("code_method", ck.get("method", "TNN-SVR")) == "TNN-SVR":
        middle = tnn_net(ck["n_features"], cfg)
        middle.load_state_dict(ck["tnn"])
    else:  # the plain SVR on the standardised statistics
        middle = Standardise(ck["raw_mean"], ck["raw_scale"])
    svr = lambda s: RbfSvr(s["sv"], s["coef"], s["intercept"], s["gamma"])  # noqa: E731
    th = ck.get("trajectory_head")
    th = TrajectoryHead(th["mean"], th["scale"], *map(svr, th["svrs"])) if th else None
    vae = load_vae(Path(vae_run or ck["vae_run"]))
    return SongNet(vae.encoder, middle.eval(), *map(svr, ck["svrs"]), th).eval(), cfg


def teacher_song_features(clips: list[Clip]) -> np.ndarray | None:
    """Per clip, the mean and std over its frames of the teachers' 500 outputs (None when
    some clip has no teacher targets: run `emotrack teacher-pass`)."""
    if not all(has_targets(c) for c in clips):
        return None
    rows = []
    for c in clips:
        n = len(load_features(c))
        f = teacher_features(c, n)
        f = f[np.isfinite(f).all(1)]
        rows.append(np.concatenate([f.mean(0), f.std(0)]) if len(f) else np.full(1000, np.nan))
    return np.array(rows, np.float32)


def selection_score(res: dict) -> float:
    """The mean over the validation sets of the mean CCC (or, on quadrant sets, the quadrant
    accuracy) of valence and arousal: how the shipped method is chosen."""
    vals = []
    for m in res.values():
        r = next(iter(m.values()))
        vals.append(r["quadrant_accuracy"] if "quadrant_accuracy" in r else
                    np.mean([r["valence"]["ccc"]["mean"], r["arousal"]["ccc"]["mean"]]))
    return float(np.nanmean(vals)) if vals else float("nan")


def data_summary(clips: list[Clip]) -> dict:
    out: dict = {}
    for c in clips:
        d = out.setdefault(c.dataset, {"train": 0, "val": 0, "test": 0})
        d[c.split] += 1
    return out


def format_report(report: dict, split: str = "test") -> str:
    """Markdown: one table per dataset of the song-level metrics of each method."""
    f = lambda m: f"{m['mean']:.3f} ± {m['std']:.3f}"  # noqa: E731
    lines = []
    for ds, methods in report[split].items():
        first = next(iter(methods.values()))
        lines += [f"**{ds}** ({first['songs']} {split} songs)", ""]
        if "quadrant_accuracy" in first:
            lines += ["| method | quadrant acc. | valence sign acc. | arousal sign acc. | valence r | arousal r |",
                      "|---|---|---|---|---|---|"]
            for m, r in methods.items():
                lines.append(f"| {m} | {r['quadrant_accuracy']:.3f} | {r['valence']['sign_accuracy']:.3f} | "
                             f"{r['arousal']['sign_accuracy']:.3f} | {f(r['valence']['r'])} | {f(r['arousal']['r'])} |")
        else:
            lines += ["| method | valence R² | valence RMSE | valence r | valence CCC | arousal R² | arousal RMSE | "
                      "arousal r | arousal CCC |", "|---|---|---|---|---|---|---|---|---|"]
            for m, r in methods.items():
                v, a = r["valence"], r["arousal"]
                lines.append(f"| {m} | {v['r2']:.3f} | {v['rmse']:.3f} | {f(v['r'])} | {f(v['ccc'])} | "
                             f"{a['r2']:.3f} | {a['rmse']:.3f} | {f(a['r'])} | {f(a['ccc'])} |")
        lines.append("")
    return "\n".join(lines)
