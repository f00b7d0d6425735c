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

The shipped answer may mix the two: ``w`` × the chosen head + (1 − w) × the mean of the
dynamic model's trajectory over the song, ``w`` in ``BLEND_WEIGHTS`` chosen on the validation
split by the same score as the head (the trajectory carries what the LSTM hears over time,
the head the song's level). The weight holds for the dynamic model it was chosen with
(``trajectory_model``, stored in the ONNX metadata); with any other, the runtime gives the
head's answer alone (``SongModel.blend``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from emotrack.realtime.core.model import load_model
from emotrack.realtime.core.song import quadrants
from sklearn.svm import SVR
from torch import nn

from .cache import load_features
from .data import Clip
from .evaluate import bootstrap, ccc, pearson, rmse
from .nets import FrameVAE, NetConfig
from .static import (
    PERCENTILES,
    TnnConfig,
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

    class SongNet(nn.Module):
        """mel (T, n_mels, n_t) -> valence (), arousal (), embedding (d,)."""

        def __init__(self, encoder, tnn, svr_v, svr_a):
            super().__init__()
            self.encoder, self.stats, self.tnn = encoder, CodeStats(), tnn
            self.svr_v, self.svr_a = svr_v, svr_a

        def codes(self, mel):
            return self.encoder(mel).chunk(2, dim=-1)[0]  # the mean of q(z|x), as FrameVAE.codes

        def forward(self, mel):
            e = self.tnn(self.stats(self.codes(mel))[None])[0]
            return self.svr_v(e).clamp(-1.0, 1.0), self.svr_a(e).clamp(-1.0, 1.0), e

    return CodeStats, RbfSvr, SongNet, Standardise


def load_vae(run: Path):
    ckpt = torch.load(vae_checkpoint(run), map_location="cpu", weights_only=False)
    vae = FrameVAE(NetConfig.from_dict(ckpt["net_config"]))
    vae.load_state_dict(ckpt["vae"])
    return vae.eval()


def fit_svrs(e: np.ndarray, y: np.ndarray) -> list:

    return [SVR(**SVR_PARAMS).fit(e, y[:, k]) for k in range(2)]


def build_song_net(vae, tnn, svrs):
    """The torch SongNet from a VAE, a trained TNN and the two fitted SVRs (eval mode)."""
    _, RbfSvr, SongNet, _ = torch_modules()
    heads = [RbfSvr(s.support_vectors_, s.dual_coef_, float(s.intercept_[0]), float(s._gamma)) for s in svrs]
    return SongNet(vae.encoder, tnn, *heads).eval()


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


def trajectory_label(model_path=None) -> str:
    """``name version`` of the dynamic model ``trajectory_means`` runs."""
    return load_model(model_path).label


def trajectory_means(clips: list[Clip], model_path=None) -> np.ndarray:
    """The mean of the dynamic model's trajectory per clip (through the ONNX runtime)."""

    model = load_model(model_path)
    out = []
    for c in clips:
        o, _ = model.run(load_features(c).astype(np.float32), model.zero_state())
        out.append([float(o.valence.mean()), float(o.arousal.mean())])
    return np.array(out)


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
               progress: bool = True, log=print, sources: dict | None = None, dim: int | None = None) -> dict:
    """Fit the TNN and the SVRs on the training clips; write ``out``/song.pt and report.json.
    ``dim``: the embedding size (default 10 % of the features)."""

    cfg = cfg or TnnConfig()
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
    tnn = train_tnn(x[train], y[train], cfg)
    e = embed(tnn, x)
    svrs = fit_svrs(e[train], y[train])
    raw_mean, raw_scale = tnn.mean.numpy(), tnn.scale.numpy()
    z = np.nan_to_num((x - raw_mean) / raw_scale)
    raw_svrs = fit_svrs(z[train], y[train])
    traj = np.full((len(clips), 2), np.nan)
    held = np.flatnonzero(~train)
    traj[held] = trajectory_means([clips[i] for i in held])
    preds = {"TNN-SVR": np.column_stack([s.predict(e) for s in svrs]).clip(-1, 1),
             "SVR (raw code statistics)": np.column_stack([s.predict(z) for s in raw_svrs]).clip(-1, 1),
             "trajectory mean (VAE-LSTM)": traj}
    teacher = teacher_song_features(clips)
    if teacher is not None:  # the upper bound: the same SVR on the teachers' outputs, run offline
        tm, ts = standardiser(teacher[train])
        tz = np.nan_to_num((teacher - tm) / ts)
        t_svrs = fit_svrs(tz[train], y[train])
        preds["SVR (teacher features, upper bound)"] = np.column_stack([s.predict(tz) for s in t_svrs]).clip(-1, 1)
    val = split == "val"
    val_clips = [c for c, k in zip(clips, val, strict=True) if k]
    choice = {m: selection_score(evaluate_split(val_clips, {m: preds[m][val]})) for m in
              ("TNN-SVR", "SVR (raw code statistics)")}
    method = max(choice, key=choice.get)
    head, blend = preds[method], {}
    for w in BLEND_WEIGHTS:  # then how much of the trajectory mean to mix in, on the same songs
        mixed = (w * head[val] + (1 - w) * traj[val]).clip(-1, 1)
        blend[w] = selection_score(evaluate_split(val_clips, {"x": mixed}))
    weight = max(BLEND_WEIGHTS, key=lambda w: np.nan_to_num(blend[w], nan=-np.inf))  # ties keep more of the head
    if weight < 1.0:
        preds[blend_name(method, weight)] = (weight * head + (1 - weight) * traj).clip(-1, 1)
    report = {"tnn": asdict(cfg), "svr": SVR_PARAMS, "features": f"VAE-code statistics ({x.shape[1]})",
              "run": str(run), "data": data_summary(clips), "sources": sources or {},
              "train_seconds": round(time.time() - t0, 1), "method": method, "selection_val_score": choice,
              "trajectory_weight": weight, "trajectory_model": trajectory_label(),
              "blend_val_score": {f"{w:g}": v for w, v in blend.items()}}
    for sp in ("val", "test"):
        m = split == sp
        report[sp] = evaluate_split([c for c, k in zip(clips, m, strict=True) if k], {k: v[m] for k, v in preds.items()})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = svrs if method == "TNN-SVR" else raw_svrs
    torch.save({"tnn_config": asdict(cfg), "n_features": int(x.shape[1]), "tnn": tnn.state_dict(),
                "svrs": [svr_state(s) for s in chosen], "method": method, "raw_mean": raw_mean,
                "raw_scale": raw_scale, "vae_run": str(run), "trajectory_weight": weight,
                "trajectory_model": report["trajectory_model"]}, out / "song.pt")
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def blend_name(method: str, weight: float) -> str:
    return f"{method} × {weight:g} + trajectory mean × {1 - weight:g}"


def svr_state(s) -> dict:
    return {"sv": s.support_vectors_.astype(np.float32), "coef": s.dual_coef_.reshape(-1).astype(np.float32),
            "intercept": float(s.intercept_[0]), "gamma": float(s._gamma)}


def load_song_net(run: Path, vae_run: Path | None = None):
    """The torch SongNet of a ``train-song`` run (its VAE from the run it names, or ``vae_run``)."""

    ck = torch.load(Path(run) / "song.pt", map_location="cpu", weights_only=False)
    cfg = TnnConfig(**ck["tnn_config"])
    _, RbfSvr, SongNet, Standardise = torch_modules()
    if ck.get("method", "TNN-SVR") == "TNN-SVR":
        middle = tnn_net(ck["n_features"], cfg)
        middle.load_state_dict(ck["tnn"])
    else:  # the plain SVR on the standardised statistics
        middle = Standardise(ck["raw_mean"], ck["raw_scale"])
    heads = [RbfSvr(s["sv"], s["coef"], s["intercept"], s["gamma"]) for s in ck["svrs"]]
    vae = load_vae(Path(vae_run or ck["vae_run"]))
    return SongNet(vae.encoder, middle.eval(), *heads).eval(), cfg


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
