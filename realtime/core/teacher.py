"""The musicnn teachers at run time, torch- and TensorFlow-free: their front end in numpy and
their networks through onnxruntime (``musicnn-teachers.onnx``, made by ``emotrack
export-song`` from the torch port in :mod:`emotrack.models.teachers`). Used only by the
opt-in accurate whole-song model; the default models never run them. No thread of its own.

Front end, musicnn's (``musicnn.extractor.batch_data``): mono 16 kHz; the power spectrum of
512-sample periodic-Hann frames every 256 samples, centre-padded with zeros (frame ``j``
covers samples ``[256 j - 256, 256 j + 256)``), librosa's Slaney mel filterbank of 96 bands
(0-8 kHz); cast to float16 and back, then ``log10(10000 x + 1)`` in float32. The teachers
see the causal window of 187 frames (2.99 s) that ends at a frame time ``t``: the last
spectrogram frame whose samples all lie before ``t`` and the 186 before it, with silence
(zero frames) before the signal starts, as a stream that starts there would. The 16 kHz
signal comes from the model-rate (22,050 Hz) signal through the runtime's causal resampler,
so the features equal those of ``emotrack teacher-pass`` that the model was trained on.

:class:`TeacherStream` takes 16 kHz blocks and keeps only what the next window needs, so a
whole album costs the memory of a few seconds of audio.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np

from ..assets import TEACHERS_MODEL, asset_path
from .config import FEATURES, FeatureConfig
from .features import mel_filterbank
from .graph import ModelMismatchError, model_label, open_checked

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 512, 256, 96
PATCH_FRAMES = 187
FEATURE_DIM = 500  # MSD logits (50), MSD penultimate (200), MTT logits (50), MTT penultimate (200)
# the teachers' spectrogram in the terms of the runtime's filterbank (librosa's mel defaults)
_MEL = FeatureConfig(sample_rate=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SAMPLE_RATE / 2)
# the runtime's own model-rate features are unaffected: this config only sizes the filterbank
FRONT_END = {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "fmin": 0.0,
             "fmax": SAMPLE_RATE / 2, "mel": "slaney", "window": "hann (periodic)", "centre": True,
             "compression": "float16 round trip, log10(10000 x + 1)", "patch_frames": PATCH_FRAMES}


def _hann() -> np.ndarray:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)


def log_compress(mel_power: np.ndarray) -> np.ndarray:
    """musicnn's compression: float16 round trip, then log10(10000 x + 1) in float32."""
    x = np.asarray(mel_power, dtype=np.float32).astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000.0) * x + np.float32(1.0), dtype=np.float32)


def spectrogram_frames(padded: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` compressed mel frames (n, 96) of a 16 kHz signal given with its 256
    leading zeros of centre padding (frame ``j`` is ``padded[256 j : 256 j + 512]``)."""
    if n <= 0:
        return np.zeros((0, N_MELS), np.float32)
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    spec = np.fft.rfft(padded[idx] * _WINDOW, axis=-1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    return log_compress(power @ _FILTERS.T)


def melspectrogram(y16k: np.ndarray) -> np.ndarray:
    """Mono 16 kHz audio -> (frames, 96) compressed mel spectrogram, musicnn's way (librosa's
    ``melspectrogram(n_fft=512, hop_length=256, n_mels=96)`` with centre padding)."""
    y = np.asarray(y16k, dtype=np.float32)
    if len(y) == 0:
        return np.zeros((0, N_MELS), np.float32)
    padded = np.pad(y, (N_FFT // 2, N_FFT // 2))
    return spectrogram_frames(padded, 1 + len(y) // HOP)


def window_starts(frame_ends_s: np.ndarray) -> np.ndarray:
    """The first spectrogram frame of the causal 187-frame window ending at each time (s),
    in a spectrogram with ``PATCH_FRAMES - 1`` silent frames prepended.

    The last frame whose samples all lie before t is floor(16000 t / 256) - 1; with 186
    frames prepended, the window that ends there starts at that same index."""
    return np.floor(np.asarray(frame_ends_s) * SAMPLE_RATE / HOP + 1e-9).astype(np.int64) - 1


_WINDOW = _hann()
_FILTERS = mel_filterbank(_MEL)


def default_teachers_path() -> Path:
    return Path(os.environ.get("EMOTRACK_TEACHERS_MODEL") or asset_path(TEACHERS_MODEL))


class TeacherModel:
    """``patches (B, 187, 96) -> features (B, 500)``: both teachers' tag logits and penultimate
    layers, in the order of ``meta["feature_names"]``."""

    # windows per call: onnxruntime's arena keeps what the largest call needed, ~110 MB per
    # window (measured peak RSS of a bare session: 187 MB at 1, 959 MB at 8), and a call of
    # one window is no slower per window than a call of eight
    BATCH = 1

    def __init__(self, path: str | Path | None = None, threads: int = 1):
        self.path = Path(path or default_teachers_path())
        self.session, self.meta = open_checked(self.path, FEATURES, threads, "emotrack export-song")
        if self.meta.get("kind") != "teachers" or self.meta.get("front_end") != FRONT_END:
            raise ModelMismatchError(f"{self.path}: not the musicnn teachers of this runtime (kind "
                                     f"{self.meta.get('kind')!r}); `emotrack export-song` writes it beside an accurate song model")

    @property
    def label(self) -> str:
        return model_label(self.meta, self.path)

    def run(self, patches: np.ndarray) -> np.ndarray:
        patches = np.asarray(patches, dtype=np.float32)
        if patches.ndim != 3 or patches.shape[1:] != (PATCH_FRAMES, N_MELS):
            raise ValueError(f"expected patches of shape (B, {PATCH_FRAMES}, {N_MELS}), got {patches.shape}")
        out = np.empty((len(patches), FEATURE_DIM), np.float32)
        for b in range(0, len(patches), self.BATCH):
            out[b:b + self.BATCH] = self.session.run(["features"], {"patches": patches[b:b + self.BATCH]})[0]
        return out


class TeacherStream:
    """16 kHz blocks in, the teachers' features of the causal window ending at every
    ``stride`` seconds out (``t = stride, 2 stride, ...``), keeping only the spectrogram
    frames the next window needs. ``keep=False`` keeps no history of the features either:
    :meth:`take` hands over the windows' features once (the accurate dynamic model's way)."""

    def __init__(self, model: TeacherModel, stride: float, keep: bool = True):
        if stride <= 0:
            raise ValueError(f"stride must be positive, got {stride}")
        self.model, self.stride, self.keep = model, float(stride), keep
        self._pending: list[np.ndarray] = []  # features not yet taken (keep=False)
        self._audio = np.zeros(N_FFT // 2, np.float32)  # centre padding; samples not yet framed
        self._audio_start = -N_FFT // 2  # the sample index of _audio[0]
        self._spec = np.zeros((PATCH_FRAMES - 1, N_MELS), np.float32)  # silence before the stream
        self._spec_start = -(PATCH_FRAMES - 1)  # the frame index of _spec[0]
        self._next_frame = 0
        self._k = 1  # the next window ends at k * stride
        self._samples = 0
        self.t: list[float] = []
        self._features: list[np.ndarray] = []

    def push(self, y16k: np.ndarray) -> None:
        y = np.asarray(y16k, dtype=np.float32).reshape(-1)
        self._samples += len(y)
        self._audio = np.concatenate([self._audio, y])
        # frame j needs samples up to 256 j + 256 (exclusive)
        n = (self._audio_start + len(self._audio) - HOP) // HOP - self._next_frame + 1
        if n > 0:
            off = self._next_frame * HOP - N_FFT // 2 - self._audio_start
            frames = spectrogram_frames(self._audio[off:], n)
            self._spec = np.concatenate([self._spec, frames])
            self._next_frame += n
            drop = self._next_frame * HOP - N_FFT // 2 - self._audio_start
            self._audio, self._audio_start = self._audio[drop:], self._audio_start + drop
        ends = []
        while self._k * self.stride * SAMPLE_RATE <= self._samples + 1e-6:
            ends.append(self._k * self.stride)
            self._k += 1
        if ends:
            self._windows(ends)

    def _windows(self, ends: list[float]) -> None:
        # window_starts indexes a spectrogram with 186 silent frames prepended, so in frame
        # numbers of the signal the window ending at t covers [start - 186, start]
        last = window_starts(np.array(ends))
        first = last - (PATCH_FRAMES - 1)
        if last.max() >= self._next_frame:  # cannot happen: frame j's samples end before t
            raise RuntimeError(f"window needs frame {int(last.max())}, only {self._next_frame} computed")
        idx = (first - self._spec_start)[:, None] + np.arange(PATCH_FRAMES)[None]
        feats = self.model.run(self._spec[idx])
        if self.keep:
            self._features.append(feats)
            self.t += ends
        else:
            self._pending.append(feats)
        keep_from = int(first.max()) - self._spec_start  # no later window starts before this one
        self._spec, self._spec_start = self._spec[keep_from:], self._spec_start + keep_from

    def take(self) -> np.ndarray:
        """(windows, 500): the features of the windows that ended since the last take."""
        out = np.concatenate(self._pending) if self._pending else np.zeros((0, FEATURE_DIM), np.float32)
        self._pending = []
        return out

    def copy(self) -> TeacherStream:
        """An independent copy (the arrays are replaced, never written in place, so sharing them is safe)."""
        new = copy.copy(self)
        new.t, new._features, new._pending = list(self.t), list(self._features), list(self._pending)
        return new

    def finish(self) -> np.ndarray:
        """All windows' features; a stream shorter than one stride gets the window ending at
        its last whole 0.5 s (none if it holds less than that)."""
        if not self.t:
            t = float(np.floor(self._samples / (SAMPLE_RATE * 0.5)) * 0.5)
            if t > 0:
                self._windows([t])
        return self.features

    @property
    def features(self) -> np.ndarray:
        """(windows, 500) so far."""
        return np.concatenate(self._features) if self._features else np.zeros((0, FEATURE_DIM), np.float32)
