"""Log-mel features of 0.5 s frames, in numpy. Runs on whichever thread calls it: the live
worker, ``analyze`` on the main thread, or training.

One definition, parameterised by :class:`emotrack.realtime.config.FeatureConfig`. Each
frame is computed from its own samples only (no centre padding), so streamed frames are
bit-identical to offline frames.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .config import CHROMA, FEATURES, ChromaConfig, FeatureConfig


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's auditory toolbox scale (librosa's default, htk=False)
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=8)
def mel_filterbank(cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """(n_mels, n_fft//2+1) triangular filters with Slaney area normalisation."""
    n_bins = cfg.n_fft // 2 + 1
    fft_freqs = np.linspace(0.0, cfg.sample_rate / 2, n_bins)
    mel_pts = np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2)
    hz_pts = _mel_to_hz(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    return weights.astype(np.float32)


def _periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # float64


@lru_cache(maxsize=8)
def _window(cfg: FeatureConfig = FEATURES) -> np.ndarray:
    if cfg.window != "hann":
        raise ValueError(f"unsupported window {cfg.window!r}; only 'hann' is implemented")
    w = _periodic_hann(cfg.n_fft)
    # scale so that a full-scale sine has power 0.25 in its bin (amplitude / 2)
    return (w / w.sum()).astype(np.float32)


_CHUNK = 4


def logmel_frames(frames: np.ndarray, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """Normalised log-mel of a batch of 0.5 s frames.

    ``frames``: float array (N, frame_samples) at ``cfg.sample_rate``, mono.
    Returns float32 (N, n_mels, n_stft_frames).
    """
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    if frames.ndim == 1:
        return logmel_frames(frames[None], cfg)[0]
    if frames.ndim != 2:
        raise ValueError(f"expected one frame or a batch (N, {cfg.frame_samples}) of frames, got shape {frames.shape}")
    if frames.shape[-1] != cfg.frame_samples:
        raise ValueError(f"expected frames of {cfg.frame_samples} samples, got {frames.shape[-1]}")
    n = frames.shape[0]
    if n > _CHUNK:  # small chunks stay in cache: ~5x faster per frame than one big batch
        return np.concatenate([logmel_frames(frames[i : i + _CHUNK], cfg) for i in range(0, n, _CHUNK)])
    t, nfft = cfg.n_stft_frames, cfg.n_fft
    # the STFT windows as a strided view of the frames (no gather), times the window in one pass
    step = frames.itemsize
    segs = np.ndarray((n, t, nfft), np.float32, frames, 0,
                      (frames.strides[0], cfg.stft_hop * step, step)) * _window(cfg)  # (N, T, n_fft)
    spec = np.fft.rfft(segs, axis=-1)  # complex64
    re, im = spec.real, spec.imag
    power = re * re  # float32, the same products and sum as re**2 + im**2
    power += im * im  # (N, T, bins)
    # one 2-d product against the transposed view of the filters: BLAS gives the same sums as
    # the stacked product did before (a contiguous copy of the filters would not: other kernels)
    mel = (power.reshape(n * t, -1) @ mel_filterbank(cfg).T).reshape(n, t, cfg.n_mels)
    # in place: the same float32 operations, in the same order, as
    # (10 * log10(max(mel, floor)) - db_offset) / db_scale
    np.maximum(mel, np.float32(cfg.power_floor), out=mel)
    np.log10(mel, out=mel)
    mel *= np.float32(10.0)
    mel -= np.float32(cfg.db_offset)
    mel /= np.float32(cfg.db_scale)
    return np.ascontiguousarray(mel.transpose(0, 2, 1))


@lru_cache(maxsize=4)
def chroma_filterbank(cfg: FeatureConfig = FEATURES, ch: ChromaConfig = CHROMA) -> np.ndarray:
    """(12, ch.n_fft//2+1) float32: each FFT bin from ``ch.fmin`` to ``ch.fmax`` shared between
    the two pitch classes nearest its frequency (linear in the distance in semitones; C = 0)."""
    freqs = np.fft.rfftfreq(ch.n_fft, 1.0 / cfg.sample_rate)
    fb = np.zeros((12, len(freqs)), np.float64)
    band = (freqs >= ch.fmin) & (freqs <= ch.fmax)
    pitch = (12.0 * np.log2(freqs[band] / ch.tuning_hz) + 9.0) % 12.0  # A = 9
    lo = np.floor(pitch).astype(int)
    frac = pitch - lo
    cols = np.flatnonzero(band)
    fb[lo % 12, cols] += 1.0 - frac
    fb[(lo + 1) % 12, cols] += frac
    return fb.astype(np.float32)


@lru_cache(maxsize=4)
def _chroma_window(n: int) -> np.ndarray:
    return _periodic_hann(n).astype(np.float32)


@lru_cache(maxsize=4)
def _chroma_band(cfg: FeatureConfig, ch: ChromaConfig) -> tuple[slice, np.ndarray]:
    """The FFT bins the filterbank uses (``fmin`` to ``fmax``) and its (bins, 12) matrix on them:
    the power of the bins outside is never computed (a frame's profile in ~2/3 of the time)."""
    fb = chroma_filterbank(cfg, ch)
    cols = np.flatnonzero(fb.any(0))
    band = slice(int(cols[0]), int(cols[-1]) + 1)
    return band, np.ascontiguousarray(fb[:, band].T)


def chroma_frames(frames: np.ndarray, cfg: FeatureConfig = FEATURES, ch: ChromaConfig = CHROMA) -> np.ndarray:
    """Pitch-class profiles of a batch of 0.5 s frames (:class:`ChromaConfig`).

    ``frames``: float array (N, frame_samples) at ``cfg.sample_rate``, mono.
    Returns float32 (N, 12), each row summing to 1 (1/12 each for a frame below -100 dBFS).
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim == 1:
        return chroma_frames(frames[None], cfg, ch)[0]
    if frames.ndim != 2 or frames.shape[-1] != cfg.frame_samples:
        raise ValueError(f"expected one frame or a batch (N, {cfg.frame_samples}) of frames, got shape {frames.shape}")
    if frames.shape[0] > _CHUNK:
        return np.concatenate([chroma_frames(frames[i: i + _CHUNK], cfg, ch) for i in range(0, len(frames), _CHUNK)])
    band, fb = _chroma_band(cfg, ch)
    spec = np.fft.rfft(frames * _chroma_window(frames.shape[-1]), ch.n_fft, axis=-1)[:, band]
    power = spec.real * spec.real + spec.imag * spec.imag
    pc = (power @ fb).astype(np.float64)
    total = pc.sum(-1, keepdims=True)
    # below -100 dBFS mean square, or no power in the pitch range: no pitch to speak of
    silent = (np.mean(np.square(frames, dtype=np.float64), -1) < 1e-10) | (total[:, 0] <= 0)
    out = pc / np.where(silent[:, None], 1.0, total)
    out[silent] = 1.0 / 12
    return out.astype(np.float32)


def average_profiles(chroma: np.ndarray, seconds: float, state: np.ndarray | None = None,
                     cfg: FeatureConfig = FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """A causal exponential average (time constant ``seconds``) of consecutive frames'
    pitch-class profiles: the key of the last several seconds rather than of one frame
    (a model with ``tonal_avg`` reads both).

    ``chroma``: (T, 12) profiles (:func:`chroma_frames`) in stream order; ``state``: the
    (12,) sum the previous call returned, or None at a stream's start. The sum starts at
    zero and each frame moves it by ``1 - exp(-hop / seconds)`` of the way to its profile;
    each row of the average is the sum divided by its total, so the first frame's average
    is its own profile and nothing depends on how a stream is cut into calls.
    Returns ((T, 12) float32 averages, each row summing to 1; the new (12,) state)."""
    if not seconds > 0:
        raise ValueError(f"average_profiles: seconds={seconds!r}, give a time constant above 0")
    chroma = np.asarray(chroma, dtype=np.float64)
    if chroma.ndim != 2 or chroma.shape[1] != 12:
        raise ValueError(f"expected pitch-class profiles of shape (T, 12), got {chroma.shape}")
    a = 1.0 - np.exp(-cfg.frame_seconds / seconds)
    s = np.zeros(12) if state is None else np.asarray(state, dtype=np.float64).copy()
    out = np.empty_like(chroma)
    for i, row in enumerate(chroma):
        s += a * (row - s)
        out[i] = s / s.sum()
    return out.astype(np.float32), s
