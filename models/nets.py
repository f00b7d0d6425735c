"""Torch networks: the VAE and plain AE on log-mel frames, the stateful LSTM head, the
CNN-LSTM baseline, and the exportable end-to-end model. Offline (training/export) only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from emotrack.realtime.core.config import FEATURES
from emotrack.realtime.core.features import average_profiles
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class NetConfig:
    """Hyper-parameters that travel with the weights (checkpoint and ONNX metadata)."""

    latent_dim: int = 32
    channels: tuple[int, int, int] = (16, 32, 64)
    enc_hidden: int = 256
    lstm_hidden: int = 64
    lstm_layers: int = 1
    beta: float = 1.0
    min_std: float = 0.02
    # the frame encoder's first layers: "conv" (three strided 3x3 convs read by a dense layer) or
    # "musicnn" (musicnn's shape, see MusicnnFront; ``channels`` then gives its widths)
    front: str = "conv"
    # the LSTM also reads each frame's pitch-class profile through TonalFeatures (the graph's
    # ``chroma`` input; emotrack-vae-lstm 5's recipe)
    tonal: bool = False
    # with ``tonal``, the LSTM also reads a causal average of the profiles with this time
    # constant in seconds (``realtime.core.features.average_profiles``; the graph's
    # ``chroma_avg`` input, its running sum a third part of the state); 0: not
    tonal_avg: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        if d["front"] == "conv":  # the default: dicts (checkpoint keys, ONNX metadata) as before the option
            del d["front"]
        if not d["tonal"]:  # likewise
            del d["tonal"]
        if not d["tonal_avg"]:
            del d["tonal_avg"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


class ConvEncoder(nn.Module):
    """(B, n_mels, n_t) log-mel frame -> (B, out) features, three strided 3x3 convs."""

    def __init__(self, cfg: NetConfig, out: int):
        super().__init__()
        c1, c2, c3 = cfg.channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ELU(),
        )
        n_mels, n_t = FEATURES.frame_shape
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, 1, n_mels, n_t)).numel()
        self.fc = nn.Sequential(nn.Linear(flat, cfg.enc_hidden), nn.ELU(), nn.Linear(cfg.enc_hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x.unsqueeze(1)).flatten(1))


class _ConvMax(torch.autograd.Function):
    """conv2d, then the maximum over dim 2, with a faster backward pass on CPU for
    MusicnnFront's tall filters on one input channel (torch's own weight gradient took 7-10
    times the forward pass and most of a training step): the output gradient is scattered
    straight to where the maxima were, laid out as (C_out, B, H, W), and the weight gradient
    is one forward convolution of it over the input (the batch as channels, dilated by the
    stride): the same sums in another order."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        y = F.conv2d(x, weight, bias, stride, padding)
        m, idx = y.max(2)
        ctx.save_for_backward(x, weight, idx)
        ctx.conf = stride, padding, y.shape[2]
        return m

    @staticmethod
    def backward(ctx, g):
        x, weight, idx = ctx.saved_tensors
        stride, padding, h = ctx.conf
        n_out, n_b, w = g.shape[1], g.shape[0], g.shape[2]
        g_t = g.new_zeros(n_out, n_b, h, w).scatter_(2, idx.transpose(0, 1).unsqueeze(2).contiguous(),
                                                     g.transpose(0, 1).unsqueeze(2).contiguous())
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.nn.grad.conv2d_input(x.shape, weight, g_t.transpose(0, 1), stride, padding)
        if ctx.needs_input_grad[1]:
            (ph, pw), (kh, kw) = padding, weight.shape[2:]
            xp = F.pad(x, (pw, pw, ph, ph)).transpose(0, 1)  # (C_in, B, H, W): the batch as channels
            gw = F.conv2d(xp, g_t, dilation=stride)[:, :, :kh, :kw].transpose(0, 1)
        if ctx.needs_input_grad[2]:
            gb = g.sum((0, 2))
        return gx, gw, gb, None, None


class ConvMaxFreq(nn.Conv2d):
    """An nn.Conv2d (the same parameters and state-dict keys) whose output is maximum-pooled
    over frequency (dim 2): (B, C_in, H, W) -> (B, C_out, W'). Training goes through
    ``_ConvMax``; inference and the ONNX export are the plain convolution and ReduceMax."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not torch.is_grad_enabled() or not self.weight.requires_grad or torch.jit.is_tracing()
                or torch.onnx.is_in_onnx_export() or self.groups != 1 or self.dilation != (1, 1)
                or not isinstance(self.padding, tuple)):
            return super().forward(x).amax(2)
        return _ConvMax.apply(x, self.weight, self.bias, self.stride, self.padding)


SUB_BANDS = 8  # bands averaged into one sub-band for MusicnnFront's temporal filters


class MusicnnFront(nn.Module):
    """(B, n_mels, n_t) log-mel frame -> (B, out) features, shaped like musicnn's front and
    mid end (Pons & Serra), the teachers' own shape, cut to one 0.5 s frame:

    - timbral filters spanning 40 % and 70 % of the bands and 7 bins (140 ms), frequency
      stride 2, each maximum-pooled over frequency (a pattern counts wherever it sits in pitch);
    - temporal filters of 11 and 5 bins (220 and 100 ms) along each of 8 sub-bands (the
      bands averaged in groups of 8), maximum-pooled over the sub-bands (per band, as musicnn
      does, made training 3 times slower than the conv encoder);
    - two 1-d convolutions over time (7 bins, the second residual), then the maximum and mean
      over time of everything so far, with the frame's mean log-mel per band (its spectral
      envelope, which the pooling over frequency drops), into the dense layers.

    ``cfg.channels`` = (timbral filters per height, temporal filters per length, mid-end width).
    """

    def __init__(self, cfg: NetConfig, out: int):
        super().__init__()
        n_tim, n_temp, mid = cfg.channels
        n_mels, _ = FEATURES.frame_shape
        self.timbral = nn.ModuleList([ConvMaxFreq(1, n_tim, (int(f * n_mels), 7), stride=(2, 1), padding=(0, 3))
                                      for f in (0.4, 0.7)])
        self.temporal = nn.ModuleList([nn.Conv2d(1, n_temp, (1, k), padding=(0, k // 2)) for k in (11, 5)])
        front = 2 * n_tim + 2 * n_temp
        self.mid = nn.ModuleList([nn.Conv1d(front, mid, 7, padding=3), nn.Conv1d(mid, mid, 7, padding=3)])
        pooled = front + 2 * mid
        self.fc = nn.Sequential(nn.Linear(2 * pooled + n_mels, cfg.enc_hidden), nn.ELU(),
                                nn.Linear(cfg.enc_hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = x.unsqueeze(1)
        sub = F.avg_pool2d(x1, (SUB_BANDS, 1))  # (B, 1, n_mels / 8, n_t)
        # ELU rises monotonically, so the maximum over frequency is taken first: the same numbers,
        # with the activation on a tensor ~10-20 times smaller (a third of a training step before)
        front = torch.cat([F.elu(conv(x1)) for conv in self.timbral]
                          + [F.elu(conv(sub).amax(2)) for conv in self.temporal], 1)  # (B, C, n_t)
        h1 = F.elu(self.mid[0](front))
        h2 = F.elu(self.mid[1](h1)) + h1
        m = torch.cat([front, h1, h2], 1)
        return self.fc(torch.cat([m.amax(2), m.mean(2), x.mean(2)], 1))


FRONTS = {"conv": ConvEncoder, "musicnn": MusicnnFront}


def check_front(front: str) -> None:
    """Refuse, with a ValueError that lists the choices, a front no encoder is built for."""
    if front not in FRONTS:
        raise ValueError(f"front={front!r}: choose one of {sorted(FRONTS)}")


def frame_encoder(cfg: NetConfig, out: int) -> nn.Module:
    """The frame encoder ``cfg.front`` names."""
    check_front(cfg.front)
    return FRONTS[cfg.front](cfg, out)


class Decoder(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        n_mels, n_t = FEATURES.frame_shape
        self.shape = (n_mels, n_t)
        self.net = nn.Sequential(nn.Linear(cfg.latent_dim, cfg.enc_hidden), nn.ELU(),
                                 nn.Linear(cfg.enc_hidden, 512), nn.ELU(), nn.Linear(512, n_mels * n_t))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)


class FrameVAE(nn.Module):
    """VAE of single 0.5 s log-mel frames (Herremans et al.): q(z|x) Gaussian, p(x|z)
    Gaussian with unit variance; loss = squared error summed over the frame + beta * KL."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = frame_encoder(cfg, 2 * cfg.latent_dim)
        self.decoder = Decoder(cfg)

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-12, 8)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar

    def losses(self, x):
        """(recon sum-of-squares per frame, KL nats per frame), both batch means."""
        xh, mu, logvar = self(x)
        rec = ((xh - x) ** 2).flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
        return rec, kl

    def codes(self, x):
        return self.encode(x)[0]


class FrameAE(nn.Module):
    """Plain autoencoder of the same shape (the AE-LSTM baseline's code)."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = frame_encoder(cfg, cfg.latent_dim)
        self.decoder = Decoder(cfg)

    def losses(self, x):
        xh = self.decoder(self.encoder(x))
        rec = ((xh - x) ** 2).flatten(1).sum(1).mean()
        return rec, torch.zeros((), device=x.device)

    def codes(self, x):
        return self.encoder(x)


class EmotionHead(nn.Module):
    """Stateful LSTM on frame codes -> valence, arousal in [-1, 1] and their std."""

    def __init__(self, cfg: NetConfig, in_dim: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(in_dim or cfg.latent_dim, cfg.lstm_hidden, cfg.lstm_layers, batch_first=True)
        self.out = nn.Linear(cfg.lstm_hidden, 4)

    def forward(self, z, state=None):
        y, state = self.lstm(z, state)
        o = self.out(y)
        mean = torch.tanh(o[..., :2])
        std = F.softplus(o[..., 2:]) + self.cfg.min_std
        return mean, std, state


class SeqModel(nn.Module):
    """Frame encoder + LSTM head: (B, T, n_mels, n_t) -> mean (B,T,2), std (B,T,2).

    Used for the VAE-LSTM and AE-LSTM (encoder frozen, pretrained) and the CNN-LSTM
    (encoder trained end to end).
    """

    def __init__(self, encoder: nn.Module, head: EmotionHead, code_fn=None):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self._code_fn = code_fn

    def codes(self, mel):
        b, t = mel.shape[:2]
        flat = mel.reshape(b * t, *mel.shape[2:])
        z = self._code_fn(flat) if self._code_fn is not None else self.encoder(flat)
        return z.reshape(b, t, -1)

    def forward(self, mel, state=None):
        return self.head(self.codes(mel), state)


class ExportWrapper(nn.Module):
    """ONNX signature: mel (B,T,M,N), h, c -> valence, arousal, valence_std, arousal_std, h_out, c_out."""

    def __init__(self, model: SeqModel):
        super().__init__()
        self.model = model

    def forward(self, mel, h, c):
        mean, std, (h2, c2) = self.model(mel, (h, c))
        return mean[..., 0], mean[..., 1], std[..., 0], std[..., 1], h2, c2


def vae_code_fn(vae: FrameVAE):
    return lambda x: vae.encode(x)[0]


# Krumhansl & Kessler's key profiles (C major, C minor): how well each pitch class fits a key
KK_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KK_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
TONAL_DIM = 22


def _key_profiles(p) -> torch.Tensor:
    """(12, 12): the profile in each of the 12 keys, centred and of unit norm (rows: keys)."""
    r = torch.stack([torch.roll(torch.tensor(p, dtype=torch.float64), k) for k in range(12)])
    r = r - r.mean(1, keepdim=True)
    return (r / r.norm(dim=1, keepdim=True)).float()


class TonalFeatures(nn.Module):
    """A frame's pitch-class profile (..., 12) (``realtime.core.features.chroma_frames``) ->
    (..., 22) transposition-invariant numbers about its key and mode, standardised: the best
    correlation with a major key, with a minor key, and their difference (Krumhansl-Kessler
    profiles); the magnitudes of the profile's discrete Fourier coefficients 1..6 (the fifth
    tells how diatonic it is, the third and fourth augmented and diminished colours); its
    entropy; and the profile itself turned so that its best major key is C. The mode is what
    the log-mel's 64 bands cannot tell (docs/training.md, "The key and the mode"). Fixed
    arithmetic but for the standardisation, which :meth:`fit` sets on training frames; it
    runs inside the exported graph (one definition for training and run time)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("major", _key_profiles(KK_MAJOR))
        self.register_buffer("minor", _key_profiles(KK_MINOR))
        k = torch.arange(1, 7, dtype=torch.float64)
        n = torch.arange(12, dtype=torch.float64)
        ang = 2 * torch.pi * n[:, None] * k[None] / 12
        self.register_buffer("cos", torch.cos(ang).float())  # (12, 6)
        self.register_buffer("sin", torch.sin(ang).float())
        rot = torch.zeros(12, 12, 12)  # rot[i, k, j] = 1 where j = (i - k) % 12: profile turned by k
        for kk in range(12):
            for j in range(12):
                rot[(j + kk) % 12, kk, j] = 1.0
        self.register_buffer("turn", rot.reshape(12, 144))
        self.register_buffer("mu", torch.zeros(TONAL_DIM))
        self.register_buffer("sd", torch.ones(TONAL_DIM))

    def raw(self, c: torch.Tensor) -> torch.Tensor:
        z = c - c.mean(-1, keepdim=True)
        z = z / (z.norm(dim=-1, keepdim=True) + 1e-6)
        cm, cn = z @ self.major.T, z @ self.minor.T  # (..., 12): correlation with each key
        ma, mi = cm.amax(-1, keepdim=True), cn.amax(-1, keepdim=True)
        re, im = c @ self.cos, c @ self.sin
        dft = torch.sqrt(re * re + im * im + 1e-12)
        ent = -(c * torch.log(c + 1e-9)).sum(-1, keepdim=True)
        best = (cm >= ma).to(c.dtype)  # the best major key(s); an exact tie averages the turns
        turned = (c @ self.turn).reshape(*c.shape[:-1], 12, 12)  # (..., k, j)
        rot = (best[..., None] * turned).sum(-2) / best.sum(-1, keepdim=True)
        return torch.cat([ma, mi, ma - mi, dft, ent, rot], -1)

    @torch.no_grad()
    def fit(self, chroma: torch.Tensor) -> None:
        """Standardise on (N, 12) training frames."""
        x = self.raw(chroma)
        self.mu.copy_(x.mean(0))
        self.sd.copy_(x.std(0) + 1e-6)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return (self.raw(c) - self.mu) / self.sd


_RAW = TonalFeatures()


@torch.no_grad()
def tonal_numbers(chroma: np.ndarray, avg_seconds: float = 0.0) -> np.ndarray:
    """(T, 22) float32: :class:`TonalFeatures`' raw (unstandardised) numbers of each frame's
    pitch-class profile (T, 12); with ``avg_seconds`` > 0, (T, 44): those of the causal
    average of the profiles (:func:`~emotrack.realtime.core.features.average_profiles`) after
    them. What the pseudo-labels' teachers read with ``StudentConfig.head_tonal``."""
    chroma = np.asarray(chroma, np.float32)
    parts = [chroma]
    if avg_seconds:
        parts.append(average_profiles(chroma, avg_seconds)[0])
    return np.concatenate([_RAW.raw(torch.from_numpy(p)).numpy() for p in parts], 1)
