"""Whole-song (static) emotion: song-level features, the triplet network (TNN) turned into a
regression tool, and the SVR / PCA-SVR / TNN-SVR comparison (Herremans et al.).

Features (one vector per clip, cached under the feature cache):
- ``compare``: openSMILE's ComParE_2016 functionals, 6,373 per clip, at the file's own
  rate (MIDI is rendered first, as for training).
- ``vae``: statistics over the clip's 0.5 s frames of the VAE codes (the mean of q(z|x))
  of a trained run: mean, std, 10th, 50th and 90th percentile per latent dimension.

The TNN maps standardised features to an L2-normalised embedding through an MLP and is
trained with the triplet margin loss. Triplets are mined by emotion distance, the
Euclidean distance between two songs' (valence, arousal) labels in [-1, 1]: a positive
is closer to the anchor than ``pos_dist``, a negative further than ``neg_dist``, and
songs in between are never used as either, so the network is not asked to separate
songs whose emotions are nearly alike, nor to pull together songs that merely share a
side. The defaults, 0.2 and 0.5, are a tenth and a quarter of the label range; on
quadrant sets, whose labels are the quadrant centres (+-0.5, +-0.5), they make the same
quadrant positive and every other quadrant negative.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from emotrack.realtime.core.config import FEATURES
from torch import nn

from .cache import cache_dir, clip_audio, ensure_features, load_features, progress_bar, save_atomic
from .data import QUADRANT_SIGNS, Clip
from .nets import FrameVAE, NetConfig

FEATURE_SETS = ("compare", "vae")
PERCENTILES = (10, 50, 90)


# ---------------------------------------------------------------------- labels
def static_labels(clip: Clip) -> tuple[np.ndarray, int | None] | None:
    """(valence, arousal) in [-1, 1] and the quadrant (or None) of a clip for the static
    task: static labels as they are, time-varying ones averaged over the piece, quadrants
    as their centres (+-0.5, +-0.5)."""
    if clip.quadrant is not None:
        sv, sa = QUADRANT_SIGNS[clip.quadrant]
        return np.array([0.5 * sv, 0.5 * sa]), clip.quadrant
    if clip.valence is not None:
        return np.array([clip.valence, clip.arousal]), None
    if clip.dyn_v is not None and len(clip.dyn_v):
        return np.array([np.nanmean(clip.dyn_v), np.nanmean(clip.dyn_a)]), None
    return None


# ---------------------------------------------------------------------- features
def _compare_path(clip: Clip) -> Path:
    return cache_dir() / "static" / "compare-2016" / clip.dataset / f"{clip.id.replace('/', '_')}.npy"


def _compare_one(clip: Clip) -> tuple[str, str | None]:
    path = _compare_path(clip)
    if path.exists():
        return clip.key, None
    try:
        import opensmile

        smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                                feature_level=opensmile.FeatureLevel.Functionals)
        if clip.audio is not None:
            y, sr = sf.read(str(clip.audio), dtype="float32", always_2d=True)
            y = y.mean(1)
        else:  # MIDI: rendered at the model rate, as for training
            y, sr = clip_audio(clip), FEATURES.sample_rate
        f = smile.process_signal(y, sr).to_numpy()[0].astype(np.float32)
    except Exception as e:  # report and go on; the caller decides
        return clip.key, f"{type(e).__name__}: {e}"
    save_atomic(path, f)
    return clip.key, None


def compare_features(clips: list[Clip], jobs: int = 2, progress: bool = True) -> tuple[np.ndarray, dict[str, str]]:
    """ComParE_2016 functionals [n, 6373] (NaN rows for clips that failed) and the errors."""

    todo = [c for c in clips if not _compare_path(c).exists()]
    errors: dict[str, str] = {}
    if todo:
        bar = progress_bar(len(todo), "openSMILE ComParE", progress)
        with ProcessPoolExecutor(max(1, jobs)) as ex:
            for key, err in ex.map(_compare_one, todo, chunksize=2):
                if err:
                    errors[key] = err
                bar.update()
        bar.close()
    rows = [np.load(_compare_path(c)) if c.key not in errors else None for c in clips]
    width = next((len(r) for r in rows if r is not None), 6373)
    return np.stack([r if r is not None else np.full(width, np.nan, np.float32) for r in rows]), errors


def code_statistics(codes: np.ndarray) -> np.ndarray:
    """Per latent dimension over the frames: mean, std, 10th/50th/90th percentile."""
    return np.concatenate([codes.mean(0), codes.std(0), *np.percentile(codes, PERCENTILES, axis=0)]).astype(np.float32)


def vae_checkpoint(run: Path) -> Path:
    """The checkpoint of a training run that holds its VAE: the student's (``train
    --teachers``) or the first VAE-LSTM's."""
    for name in ("student.pt", "vae_lstm.pt"):
        if (Path(run) / name).exists():
            return Path(run) / name
    raise FileNotFoundError(f"{run}: neither student.pt nor vae_lstm.pt; the vae features need a trained run "
                            "(`emotrack train --teachers --out RUN`), given with --run RUN")


def vae_features(clips: list[Clip], run: Path, jobs: int = 2, progress: bool = True) -> tuple[np.ndarray, dict[str, str]]:
    """VAE-code statistics [n, 5 * latent] from the VAE of a training run."""
    ckpt_path = vae_checkpoint(run)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    vae = FrameVAE(NetConfig.from_dict(ckpt["net_config"]))
    vae.load_state_dict(ckpt["vae"])
    vae.eval()
    errors = ensure_features(clips, jobs=jobs, progress=progress)
    tag = hashlib.sha256(ckpt_path.read_bytes()).hexdigest()[:12]
    out = []
    for c in clips:
        if c.key in errors:
            out.append(None)
            continue
        path = cache_dir() / "static" / f"vae-{tag}" / c.dataset / f"{c.id.replace('/', '_')}.npy"
        if not path.exists():
            with torch.no_grad():
                codes = vae.codes(torch.from_numpy(load_features(c))).numpy()
            save_atomic(path, code_statistics(codes))
        out.append(np.load(path))
    width = 5 * vae.cfg.latent_dim
    return np.stack([r if r is not None else np.full(width, np.nan, np.float32) for r in out]), errors


# ---------------------------------------------------------------------- the TNN
@dataclass(frozen=True)
class TnnConfig:
    dim: int = 64  # embedding size
    hidden: int = 512
    dropout: float = 0.2
    pos_dist: float = 0.2  # emotion distance below which a song is a positive
    neg_dist: float = 0.5  # ... above which it is a negative
    margin: float = 0.2
    epochs: int = 60
    triplets_per_anchor: int = 8
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


def mine_triplets(y: np.ndarray, cfg: TnnConfig, rng: np.random.Generator) -> np.ndarray:
    """[n, 3] (anchor, positive, negative) indices: for each song with at least one positive
    and one negative, ``triplets_per_anchor`` random pairs of them."""
    d = np.linalg.norm(y[:, None, :] - y[None, :, :], axis=-1)
    out = []
    for i in range(len(y)):
        pos = np.flatnonzero((d[i] < cfg.pos_dist) & (np.arange(len(y)) != i))
        neg = np.flatnonzero(d[i] > cfg.neg_dist)
        if len(pos) and len(neg):
            k = cfg.triplets_per_anchor
            out.append(np.column_stack([np.full(k, i), rng.choice(pos, k), rng.choice(neg, k)]))
    return np.concatenate(out) if out else np.zeros((0, 3), np.int64)


def tnn_net(n_in: int, cfg: TnnConfig, x_train: np.ndarray | None = None):
    """An untrained TNN; with ``x_train``, its standardisation is set from those features."""

    class Tnn(nn.Module):
        """standardise -> MLP -> L2-normalised embedding (the standardisation is part of
        the network, so the ONNX export takes raw features)."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(n_in))
            self.register_buffer("scale", torch.ones(n_in))
            self.mlp = nn.Sequential(nn.Linear(n_in, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                     nn.Linear(cfg.hidden, cfg.dim))

        def forward(self, x):
            z = self.mlp((x - self.mean) / self.scale)
            return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    net = Tnn()
    if x_train is not None:
        mean, scale = standardiser(x_train)
        net.mean.copy_(torch.from_numpy(mean))
        net.scale.copy_(torch.from_numpy(scale))
    return net


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.nanmean(x, 0)
    scale = np.nanstd(x, 0)
    scale[~(scale > 1e-8)] = 1.0
    return np.nan_to_num(mean).astype(np.float32), scale.astype(np.float32)


def triplet_loss(net, x: np.ndarray, triplets: np.ndarray, margin: float) -> float:
    """Mean triplet margin loss of ``net`` on these triplets (eval mode, no gradient)."""

    if not len(triplets):
        return float("nan")
    net.eval()
    with torch.no_grad():
        e = net(torch.from_numpy(x.astype(np.float32)))
        t = torch.from_numpy(triplets)
        return float(torch.nn.functional.triplet_margin_loss(e[t[:, 0]], e[t[:, 1]], e[t[:, 2]], margin=margin))


def train_tnn(x: np.ndarray, y: np.ndarray, cfg: TnnConfig):
    """Train a TNN on features ``x`` [n, f] with emotion labels ``y`` [n, 2]; new triplets
    are mined every epoch."""

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = tnn_net(x.shape[1], cfg, x)
    xt = torch.from_numpy(np.nan_to_num(x, nan=0.0).astype(np.float32))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(cfg.epochs):
        trip = mine_triplets(y, cfg, rng)
        if not len(trip):
            raise ValueError("no triplets: no song has both a positive (closer than "
                             f"{cfg.pos_dist}) and a negative (further than {cfg.neg_dist}) in the training set")
        net.train()
        perm = rng.permutation(len(trip))
        for s in range(0, len(perm), cfg.batch):
            t = torch.from_numpy(trip[perm[s:s + cfg.batch]])
            e = net(xt[t.reshape(-1)]).reshape(len(t), 3, -1)
            loss = torch.nn.functional.triplet_margin_loss(e[:, 0], e[:, 1], e[:, 2], margin=cfg.margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net


def embed(net, x: np.ndarray) -> np.ndarray:

    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(np.nan_to_num(x, nan=0.0).astype(np.float32))).numpy()
