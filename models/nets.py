"""Torch networks: the VAE and plain AE on log-mel frames, the stateful LSTM head, the
CNN-LSTM baseline, and the exportable end-to-end model. Offline (training/export) only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from emotrack.realtime.core.config import FEATURES
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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
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
        self.encoder = ConvEncoder(cfg, 2 * cfg.latent_dim)
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
        self.encoder = ConvEncoder(cfg, cfg.latent_dim)
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
