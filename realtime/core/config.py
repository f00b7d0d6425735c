"""The one definition of emotrack's audio and feature parameters.

Training (``emotrack.models``) and the runtime (``emotrack.realtime``) both import this
module; every exported model stores ``FeatureConfig.to_dict()`` in its metadata, and the
runtime refuses a model whose stored parameters differ from these (a model fed samples
rather than log-mel frames, like the accurate ones, only where the sample rate or the frame
length differ: ``graph.AUDIO_KINDS``). Pure data, no thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass


class _Parameters:
    """What every parameter set a model stores in its metadata can do (frozen dataclasses):
    to and from a dict, the fields that differ from another set, a short fingerprint."""

    WHAT = "parameters"  # in from_dict's error

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.WHAT} {sorted(unknown)}")
        return cls(**d)

    def diff(self, other) -> dict[str, tuple]:
        """Fields whose values differ: {name: (self, other)}."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    def fingerprint(self) -> str:
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class FeatureConfig(_Parameters):
    """Log-mel parameters. A 0.5 s frame is analysed on its own samples only.

    There is no centre padding: the STFT windows of one frame never reach into the
    next frame, so a frame computed while streaming equals the one computed offline.
    """

    sample_rate: int = 22050
    frame_seconds: float = 0.5
    n_fft: int = 1024
    stft_hop: int = 441
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float = 11025.0
    # power -> dB with this floor, then (dB - db_offset) / db_scale
    power_floor: float = 1e-10
    db_offset: float = -70.0
    db_scale: float = 20.0
    window: str = "hann"
    mel_scale: str = "slaney"
    version: int = 1
    WHAT = "feature parameters"

    @property
    def frame_samples(self) -> int:
        return int(round(self.sample_rate * self.frame_seconds))

    @property
    def n_stft_frames(self) -> int:
        return 1 + (self.frame_samples - self.n_fft) // self.stft_hop

    @property
    def frame_shape(self) -> tuple[int, int]:
        """Shape of one log-mel frame: (n_mels, n_stft_frames)."""
        return (self.n_mels, self.n_stft_frames)


FEATURES = FeatureConfig()


@dataclass(frozen=True)
class ChromaConfig(_Parameters):
    """Pitch-class profile of a 0.5 s frame (for models with a ``chroma`` input): one FFT
    of the frame's own samples (periodic Hann, zero-padded to ``n_fft``: 1.35 Hz bins at
    22,050 Hz, fine enough to tell semitones apart from ``fmin`` up), each bin's power split
    between the two nearest pitch classes, bins from ``fmin`` to ``fmax`` only; a frame's
    12 numbers sum to 1 (a silent frame: 1/12 each). The log-mel's 64 bands are too coarse
    below 1 kHz to tell a major third from a minor one; this is what tells a model the mode.
    Stored in a model's metadata beside :class:`FeatureConfig` where the model takes it."""

    n_fft: int = 16384
    fmin: float = 55.0
    fmax: float = 5000.0
    tuning_hz: float = 440.0
    version: int = 1
    WHAT = "chroma parameters"


CHROMA = ChromaConfig()
