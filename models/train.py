"""Training: VAE pretraining on all audio, the LSTM head on VAE codes, and the baselines
(AE-LSTM, CNN-LSTM, ridge on mel statistics, constant) on the same splits. Offline.

How targets are combined (one loss for every set):
- frame-level labels (VGMIDI per measure, DEAM/PMEmo/emoMusic at 2 Hz) and clip-level
  continuous labels (Soundtracks ratings, Emotify GEMS mapped to V/A) both enter a Gaussian
  negative log-likelihood on each frame with the predicted mean and std; a clip-level
  label is the target of every frame after a warm-up of ``WARMUP`` frames;
- quadrant labels (Panda 4Q, EMOPIA) give only signs: a logistic loss on each predicted
  mean after the warm-up, softplus(-sign * mean / 0.2), and no std target;
- every dataset contributes its weight (``DATASET_WEIGHTS``) in total, whatever its size.
Gain augmentation: frames are shifted by a random gain of -6, 0 or +6 dB (in the log-mel
domain, then floored) so that a quiet microphone does not read as low arousal.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from emotrack.realtime.core.config import FEATURES

from .baselines import fit_constant, fit_ridge, predict_constant, predict_ridge
from .data import Clip
from .evaluate import evaluate_predictions
from .nets import ConvEncoder, EmotionHead, FrameAE, FrameVAE, NetConfig, SeqModel, vae_code_fn
from .seqs import GAINS_DB, MAX_LEN, WARMUP, Seq, build_seqs, log, shift_gain  # noqa: F401


@dataclass(frozen=True)
class TrainConfig:
    vae_epochs: int = 4
    vae_frames_per_epoch: int = 80_000
    head_epochs: int = 60
    cnn_epochs: int = 5
    cnn_max_len: int = 40  # the end-to-end CNN-LSTM trains on 20 s crops (CPU time)
    batch_frames: int = 256
    batch_seqs: int = 32
    lr: float = 1e-3
    patience: int = 12
    seed: int = 0
    threads: int = 2
    baselines: bool = True

    @classmethod
    def quick(cls) -> TrainConfig:
        """Tiny settings for tests: proves the code path, not a usable model."""
        return cls(vae_epochs=1, vae_frames_per_epoch=512, head_epochs=2, cnn_epochs=1,
                   batch_frames=64, batch_seqs=8, patience=2, cnn_max_len=16)


# ------------------------------------------------------------------ frame autoencoders



class BestEpoch:
    """Early stopping on a validation score: keeps the weights of the best epoch (an
    improvement is more than 1e-4) and says when ``patience`` epochs brought none."""

    def __init__(self, patience: int):
        self.patience, self.best, self.bad, self.state = patience, -math.inf, 0, None

    def update(self, score: float, model: torch.nn.Module) -> bool:
        """Record an epoch's score; True when training should stop."""
        if score > self.best + 1e-4:
            self.best, self.bad = score, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)

def train_frame_model(model, train: list[Seq], val: list[Seq], cfg: TrainConfig, name: str) -> dict:
    """Pretrain an AE/VAE on frames of the train split (labels unused)."""
    rng = np.random.default_rng(cfg.seed)
    pool = np.concatenate([s.mel for s in train])
    vpool = np.concatenate([s.mel for s in val]) if val else pool[:1024]
    if len(vpool) > 8000:
        vpool = vpool[rng.choice(len(vpool), 8000, replace=False)]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    beta = getattr(model, "cfg", NetConfig()).beta if isinstance(model, FrameVAE) else 0.0
    history = []
    for ep in range(cfg.vae_epochs):
        model.train()
        idx = rng.choice(len(pool), min(cfg.vae_frames_per_epoch, len(pool)), replace=False)
        gains = rng.choice(GAINS_DB, len(idx))
        tot = 0.0
        for b in range(0, len(idx), cfg.batch_frames):
            sl = idx[b : b + cfg.batch_frames]
            x = np.stack([shift_gain(pool[i], g) for i, g in zip(sl, gains[b : b + cfg.batch_frames], strict=True)])
            x = torch.from_numpy(x.astype(np.float32))
            rec, kl = model.losses(x)
            loss = rec + beta * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(sl)
        ev = eval_frame_model(model, vpool)
        history.append({"epoch": ep + 1, "train_loss": tot / len(idx), **ev})
        log(f"{name} epoch {ep + 1}: train {tot / len(idx):.2f}  val mse {ev['mse']:.4f} kl {ev['kl']:.2f}")
    return {"history": history}


@torch.no_grad()
def eval_frame_model(model, frames: np.ndarray) -> dict:
    """Held-out reconstruction MSE (per log-mel value, posterior mean) and KL (nats/frame)."""
    model.eval()
    se, kl, n = 0.0, 0.0, 0
    for b in range(0, len(frames), 1024):
        x = torch.from_numpy(frames[b : b + 1024].astype(np.float32))
        if isinstance(model, FrameVAE):
            mu, logvar = model.encode(x)
            xh = model.decoder(mu)
            kl += float((-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).sum())
        else:
            xh = model.decoder(model.encoder(x))
        se += float(((xh - x) ** 2).sum())
        n += len(x)
    return {"mse": se / (n * x[0].numel()), "kl": kl / n}


@torch.no_grad()
def encode_all(code_fn, seqs: list[Seq], name: str, gains=GAINS_DB) -> None:
    for s in seqs:
        out = []
        for g in gains:
            x = torch.from_numpy(shift_gain(s.mel, g).astype(np.float32))
            out.append(torch.cat([code_fn(x[i : i + 2048]) for i in range(0, len(x), 2048)]).numpy())
        s.codes[name] = np.stack(out).astype(np.float32)


# ------------------------------------------------------------------ sequence heads


def _label_parts(mean, std, tv, ta, sign, w, valid):
    """What both label losses start from: the labelled frames ``has`` (B, T, 2), the labels with
    zeros elsewhere ``y0``, the frames' Gaussian NLL ``nll`` (zero where unlabelled), the frames a
    quadrant sign applies to ``sgn_mask`` (B, T), and the loss's denominator (the weighted count
    of frames with any label)."""
    y = torch.stack([tv, ta], -1)
    has = torch.isfinite(y) & valid.unsqueeze(-1)
    y0 = torch.where(has, y, torch.zeros_like(y))
    nll = 0.5 * ((y0 - mean) / std) ** 2 + torch.log(std)
    nll = torch.where(has, nll, torch.zeros_like(nll))
    t = torch.arange(mean.shape[1]).unsqueeze(0)
    sgn_mask = (sign.abs().sum(-1, keepdim=True) > 0) & (t >= WARMUP) & valid
    denom = (has.any(-1) | sgn_mask).float().mul(w.unsqueeze(1)).sum().clamp_min(1e-6)
    return has, y0, nll, sgn_mask, denom


def seq_loss(mean, std, tv, ta, sign, w, valid):
    """Gaussian NLL on frame targets + logistic sign loss for quadrant clips (see module doc)."""
    _, _, nll, sgn_mask, denom = _label_parts(mean, std, tv, ta, sign, w, valid)
    sgn = torch.nn.functional.softplus(-sign.unsqueeze(1) * mean / 0.2)
    sgn = torch.where(sgn_mask.unsqueeze(-1), sgn, torch.zeros_like(sgn))
    per = (nll + sgn).sum(-1) * w.unsqueeze(1)
    return per.sum() / denom


def clip_label_loss(mean, std, tv, ta, sign, w, valid):
    """:func:`seq_loss` with a whole-clip label on the clip's mean: a sequence whose labelled
    frames all carry one value (a static label: a rating of the whole excerpt) is scored by the
    Gaussian NLL of its mean prediction over those frames (with their mean std), and a quadrant
    sign by the sign loss of the mean over its frames after the warm-up; each counts as many
    frames as it has, so the term weighs what :func:`seq_loss` does. Frame labels that vary
    (a dynamic set) are scored frame by frame as before. Scored per frame, a static label
    also penalises whatever the prediction does within the clip (for a squared error, the
    frame loss is the clip-mean loss plus the within-clip variance of the prediction); this
    loss leaves that movement free (docs/training.md, "Whole-clip labels")."""
    has, y0, nll, sgn_mask, denom = _label_parts(mean, std, tv, ta, sign, w, valid)
    n = has.sum(1)  # (B, 2) labelled frames
    ybar = y0.sum(1) / n.clamp_min(1)
    dev = torch.where(has, (y0 - ybar.unsqueeze(1)) ** 2, torch.zeros_like(y0)).sum(1)
    const = (n > 0) & (dev <= 1e-12)  # (B, 2): one value over the clip's labelled frames
    per_frame = torch.where(const.unsqueeze(1), torch.zeros_like(nll), nll).sum(1)  # (B, 2): labels that vary
    m_bar = torch.where(has, mean, torch.zeros_like(mean)).sum(1) / n.clamp_min(1)
    s_bar = torch.where(has, std, torch.zeros_like(std)).sum(1) / n.clamp_min(1)
    clip_nll = 0.5 * ((ybar - m_bar) / s_bar.clamp_min(1e-6)) ** 2 + torch.log(s_bar.clamp_min(1e-6))
    per_clip = torch.where(const, clip_nll * n, torch.zeros_like(clip_nll))
    k = sgn_mask.sum(1, keepdim=True)  # (B, 1)
    m_sign = torch.where(sgn_mask.unsqueeze(-1), mean, torch.zeros_like(mean)).sum(1) / k.clamp_min(1)
    sgn = torch.nn.functional.softplus(-sign * m_sign / 0.2) * k  # (B, 2)
    sgn = torch.where(k > 0, sgn, torch.zeros_like(sgn))
    per = (per_frame + per_clip + sgn).sum(-1) * w
    return per.sum() / denom


def _batch(seqs: list[Seq], rng, inputs: str, train: bool, max_len: int = MAX_LEN):
    """Pad a batch: inputs 'mel' or a codes name. Random crop and gain when training."""
    xs, tvs, tas = [], [], []
    for s in seqs:
        T = len(s.mel)
        st = int(rng.integers(0, T - max_len + 1)) if train and T > max_len else 0
        en = min(T, st + max_len) if train else T
        gi = int(rng.integers(len(GAINS_DB))) if train else GAINS_DB.index(0.0)
        if inputs == "mel":
            x = shift_gain(s.mel[st:en], GAINS_DB[gi]).astype(np.float32)
        else:
            x = s.codes[inputs][gi, st:en]
        tv, ta = s.v[st:en], s.a[st:en]
        if st > 0 and s.clip.kind == "static":  # crop starts mid-clip: warm-up again
            tv, ta = tv.copy(), ta.copy()
            tv[:WARMUP] = np.nan
            ta[:WARMUP] = np.nan
        xs.append(x)
        tvs.append(tv)
        tas.append(ta)
    L = max(len(x) for x in xs)
    X = np.zeros((len(xs), L) + xs[0].shape[1:], dtype=np.float32)
    TV = np.full((len(xs), L), np.nan, dtype=np.float32)
    TA = TV.copy()
    valid = np.zeros((len(xs), L), dtype=bool)
    for i, (x, tv, ta) in enumerate(zip(xs, tvs, tas, strict=True)):
        X[i, : len(x)] = x
        TV[i, : len(x)] = tv
        TA[i, : len(x)] = ta
        valid[i, : len(x)] = True
    sign = np.stack([s.sign for s in seqs])
    w = np.array([s.weight for s in seqs], dtype=np.float32)
    return (torch.from_numpy(X), torch.from_numpy(TV), torch.from_numpy(TA), torch.from_numpy(sign),
            torch.from_numpy(w), torch.from_numpy(valid))


def val_score(model: SeqModel, val: list[Seq], inputs: str) -> float:
    """Model selection: mean Pearson r over validation datasets and both dimensions
    (per-song r for dynamic sets, across songs for static and quadrant sets)."""

    res = evaluate_predictions(val, predict_sequences(model, val, inputs))
    rs = [m[d]["r"]["mean"] for m in res.values() for d in ("valence", "arousal")]
    rs = [r for r in rs if math.isfinite(r)]
    return float(np.mean(rs)) if rs else -math.inf


def train_sequence(model: SeqModel, params, train: list[Seq], val: list[Seq], cfg: TrainConfig,
                   inputs: str, epochs: int, name: str, max_len: int = MAX_LEN) -> dict:
    """Train ``params`` of ``model`` (head, or encoder+head); keep the epoch with the best
    validation score (:func:`val_score`), stop after ``patience`` epochs without one."""
    rng = np.random.default_rng(cfg.seed + 1)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    forward = (lambda x: model(x)) if inputs == "mel" else (lambda x: model.head(x))
    keep, history = BestEpoch(cfg.patience), []
    order = sorted(train, key=lambda s: len(s.mel))
    for ep in range(epochs):
        model.train()
        # batches of similar length, in random order
        batches = [order[i : i + cfg.batch_seqs] for i in range(0, len(order), cfg.batch_seqs)]
        rng.shuffle(batches)
        tot, nb = 0.0, 0
        for b in batches:
            X, TV, TA, S, W, V = _batch(b, rng, inputs, train=True, max_len=max_len)
            mean, std, _ = forward(X)
            loss = seq_loss(mean, std, TV, TA, S, W, V)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            tot += loss.item()
            nb += 1
        vl = eval_sequence_loss(model, val, cfg, inputs)
        vs = val_score(model, val, inputs)
        history.append({"epoch": ep + 1, "train_loss": tot / max(nb, 1), "val_loss": vl, "val_mean_r": vs})
        log(f"{name} epoch {ep + 1}: train {tot / max(nb, 1):.4f} val loss {vl:.4f} val mean r {vs:.4f}")
        if keep.update(vs, model):
            break
    keep.restore(model)
    return {"history": history, "best_val_mean_r": keep.best}


@torch.no_grad()
def eval_sequence_loss(model: SeqModel, seqs: list[Seq], cfg: TrainConfig, inputs: str) -> float:
    model.eval()
    rng = np.random.default_rng(0)
    order = sorted(seqs, key=lambda s: len(s.mel))
    tot, n = 0.0, 0
    for i in range(0, len(order), cfg.batch_seqs):
        X, TV, TA, S, W, V = _batch(order[i : i + cfg.batch_seqs], rng, inputs, train=False)
        mean, std, _ = model(X) if inputs == "mel" else model.head(X)
        tot += float(seq_loss(mean, std, TV, TA, S, W, V)) * len(X)
        n += len(X)
    return tot / max(n, 1)


@torch.no_grad()
def predict_sequences(model: SeqModel, seqs: list[Seq], inputs: str) -> dict[str, np.ndarray]:
    """{clip key: (T, 4) [valence, arousal, valence_std, arousal_std]} from a zero state."""
    model.eval()
    out = {}
    g0 = GAINS_DB.index(0.0)
    for s in seqs:
        x = torch.from_numpy(s.mel.astype(np.float32))[None] if inputs == "mel" else torch.from_numpy(s.codes[inputs][g0])[None]
        mean, std, _ = model(x) if inputs == "mel" else model.head(x)
        out[s.key] = torch.cat([mean[0], std[0]], -1).numpy()
    return out


# ------------------------------------------------------------------ the whole run


def run_training(clips: list[Clip], out: Path, cfg: TrainConfig | None = None,
                 net: NetConfig | None = None, jobs: int = 2, sources: dict | None = None) -> dict:
    """Train the VAE-LSTM and the baselines; write checkpoints and the report to ``out``."""

    cfg = cfg or TrainConfig()
    net = net or NetConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log(f"{len(clips)} clips; computing / loading features")
    seqs = build_seqs(clips, jobs=jobs)
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val", "test")}
    for k, v in split.items():
        log(f"{k}: {len(v)} clips, {sum(len(s.mel) for s in v) / 7200:.2f} h")
    report: dict = {"train_config": cfg.__dict__, "net_config": net.to_dict(),
                    "features": FEATURES.to_dict(), "data": data_summary(seqs), "sources": sources}

    # 1. VAE pretraining (labels unused) and the VAE-LSTM
    vae = FrameVAE(net)
    report["vae"] = train_frame_model(vae, split["train"], split["val"], cfg, "vae")
    report["vae"]["test"] = eval_frame_model(vae, _test_frames(split["test"]))
    for p in vae.parameters():
        p.requires_grad_(False)
    encode_all(vae_code_fn(vae), seqs, "vae")
    vae_lstm = SeqModel(vae.encoder, EmotionHead(net), code_fn=vae_code_fn(vae))
    report["vae_lstm"] = train_sequence(vae_lstm, list(vae_lstm.head.parameters()), split["train"],
                                        split["val"], cfg, "vae", cfg.head_epochs, "vae-lstm")
    torch.save({"net_config": net.to_dict(), "features": FEATURES.to_dict(),
                "vae": vae.state_dict(), "head": vae_lstm.head.state_dict()}, out / "vae_lstm.pt")
    preds = {"VAE-LSTM": predict_sequences(vae_lstm, split["test"], "vae")}

    if cfg.baselines:
        # 2. AE-LSTM: same head on plain autoencoder codes
        ae = FrameAE(net)
        report["ae"] = train_frame_model(ae, split["train"], split["val"], cfg, "ae")
        report["ae"]["test"] = eval_frame_model(ae, _test_frames(split["test"]))
        for p in ae.parameters():
            p.requires_grad_(False)
        encode_all(ae.encoder, seqs, "ae")
        ae_lstm = SeqModel(ae.encoder, EmotionHead(net))
        report["ae_lstm"] = train_sequence(ae_lstm, list(ae_lstm.head.parameters()), split["train"],
                                           split["val"], cfg, "ae", cfg.head_epochs, "ae-lstm")
        preds["AE-LSTM"] = predict_sequences(ae_lstm, split["test"], "ae")
        # 3. CNN-LSTM: the same conv encoder trained end to end with the head

        cnn_lstm = SeqModel(ConvEncoder(net, net.latent_dim), EmotionHead(net))
        report["cnn_lstm"] = train_sequence(cnn_lstm, list(cnn_lstm.parameters()), split["train"],
                                            split["val"], cfg, "mel", cfg.cnn_epochs, "cnn-lstm",
                                            max_len=cfg.cnn_max_len)
        preds["CNN-LSTM"] = predict_sequences(cnn_lstm, split["test"], "mel")
        # 4. ridge on mel statistics, 5. constant
        ridge = fit_ridge(split["train"], split["val"])
        report["ridge"] = {"alpha": ridge["alpha"], "val_mse": ridge["val_mse"]}
        preds["Ridge (mel stats)"] = predict_ridge(ridge, split["test"])
    const = fit_constant(split["train"])
    report["constant"] = const.tolist()
    preds["Constant"] = predict_constant(const, split["test"])

    report["test"] = {name: evaluate_predictions(split["test"], p) for name, p in preds.items()}
    report["train_seconds"] = time.time() - t0
    (out / "report.json").write_text(json.dumps(report, indent=1, default=json_default))
    log(f"done in {report['train_seconds'] / 60:.1f} min -> {out}")
    return report


def _test_frames(test: list[Seq]) -> np.ndarray:
    return np.concatenate([s.mel for s in test]) if test else np.zeros((0,) + FEATURES.frame_shape, np.float16)


def data_summary(seqs: list[Seq]) -> dict:
    """Per dataset: its kind and [clips, hours] of each split (a run's report). A labelled set
    some of whose clips are kept without labels (``--keep-audio``) is named by its labels'
    kind, and ``unlabelled_clips`` counts the others."""
    out: dict = {}
    unlabelled: dict[str, int] = {}
    for s in seqs:
        d = out.setdefault(s.clip.dataset, {"kind": s.clip.kind, "train": [0, 0.0], "val": [0, 0.0], "test": [0, 0.0]})
        d[s.clip.split][0] += 1
        d[s.clip.split][1] += len(s.mel) / 7200
        if s.clip.kind == "unlabelled":
            unlabelled[s.clip.dataset] = unlabelled.get(s.clip.dataset, 0) + 1
        elif d["kind"] == "unlabelled":  # the labels' kind names the set
            d["kind"] = s.clip.kind
    for name, d in out.items():
        if d["kind"] != "unlabelled" and unlabelled.get(name):
            d["unlabelled_clips"] = unlabelled[name]
    return out


def json_default(o):
    """numpy values in a run's report.json."""
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.floating | np.integer):
        return o.item()
    if isinstance(o, np.str_):
        return str(o)
    raise TypeError(type(o))
