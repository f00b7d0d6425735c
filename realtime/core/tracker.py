"""The streaming path: audio blocks -> resampler -> framer -> log-mel -> model -> predictions.

``Tracker`` is what the live worker thread runs for each captured block, and what
``analyze`` runs over a file as fast as it can on the main thread: one implementation for
both. It owns the recurrent state of its stream (``reset()`` forgets it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..protocol import prediction
from .audio import Framer, StreamingResampler, finite_mono, read_blocks
from .config import FeatureConfig
from .features import chroma_frames, logmel_frames
from .model import EmotionModel


@dataclass(frozen=True)
class Prediction:
    """One output: ``t`` is the end of the frame, in seconds of stream time."""

    t: float
    valence: float
    arousal: float
    valence_std: float
    arousal_std: float
    descriptors: tuple[float, ...] | None = None  # in the model's descriptor_names order

    def to_dict(self, ndigits: int = 5) -> dict:
        """The line ``emotrack analyze`` prints for it."""
        return prediction(self.t, self.valence, self.arousal, self.valence_std, self.arousal_std, ndigits)


def check_hop(hop: float | None, cfg: FeatureConfig) -> int:
    """The number of phase-shifted states a hop needs (``frame_seconds / hop``); a
    ValueError that says what is allowed if it does not divide the frame."""
    hop = cfg.frame_seconds if hop is None else float(hop)
    phases = cfg.frame_seconds / hop if hop > 0 else 0.0
    if hop <= 0 or abs(phases - round(phases)) > 1e-6 or round(phases) < 1:
        raise ValueError(f"--hop must divide the model frame of {cfg.frame_seconds} s "
                         f"(e.g. 0.5, 0.25, 0.1), got {hop}")
    phases = int(round(phases))
    if (cfg.frame_samples // phases) * phases != cfg.frame_samples:
        raise ValueError(f"hop {hop} s is not a whole number of samples at {cfg.sample_rate} Hz")
    return phases


class Tracker:
    """Streams audio at any sample rate and channel count into predictions.

    ``hop`` (seconds) may be smaller than the model's 0.5 s frame if it divides it: the
    tracker then keeps ``0.5 / hop`` phase-shifted copies of the recurrent state, each fed
    frames 0.5 s apart, so every copy sees exactly what the model was trained on.
    """

    def __init__(self, model: EmotionModel, sample_rate: int, hop: float | None = None, keep_mels: int = 0):
        self.model = model
        # keep up to ``keep_mels`` log-mel frames for whole-song analysis: every frame while
        # there are fewer, a uniform random sample of them (a seeded reservoir) beyond, so that
        # memory stays bounded however long the file is
        self.keep_mels = int(keep_mels)
        cfg = model.features
        self.cfg = cfg
        self.phases = check_hop(hop, cfg)
        self.hop_samples = cfg.frame_samples // self.phases
        self.resampler = StreamingResampler(sample_rate, cfg.sample_rate)
        self.framer = Framer(cfg.frame_samples, self.hop_samples, cfg.sample_rate)
        if keep_mels and self.phases != 1:
            raise ValueError("keep_mels needs the model's own hop")
        self._mel_input = model.takes == "mel"  # else the model takes the frames' audio
        self.reset()

    def reset(self) -> None:
        """Forget all audio and recurrent state; stream time starts again at 0."""
        self.resampler.reset()
        self.framer.reset()
        self._states = [self.model.zero_state() for _ in range(self.phases)]
        self._in_pos = 0  # input samples (at ``sample_rate``) of stream time so far, gaps included
        self._kept = np.zeros((self.keep_mels, *self.cfg.frame_shape), np.float32) if self.keep_mels else None
        self._seen = 0  # frames offered to the reservoir
        self._rng = np.random.default_rng(0)
        self.nonfinite = 0  # input samples that were NaN or infinite (treated as silence)

    def skip(self, samples: int, reset_state: bool = False) -> None:
        """A gap of ``samples`` input samples (dropped or never captured) in the stream.

        Stream time ``t`` keeps counting through the gap, frames that would straddle it are
        not produced, and later frames stay on the same time grid. ``reset_state`` also
        forgets the recurrent state (use it when the source changed, e.g. a device came back).
        """
        if samples < 0:
            raise ValueError(f"a gap cannot be negative ({samples} samples)")
        self._in_pos += int(samples)
        self.resampler.reset()
        self.framer.seek(round(self._in_pos * self.cfg.sample_rate / self.resampler.sr_in))
        if reset_state:
            self._states = [self.model.zero_state() for _ in range(self.phases)]

    def _keep(self, mels: np.ndarray) -> None:
        for m in mels:  # reservoir sampling (algorithm R): every frame equally likely to stay
            if self._seen < self.keep_mels:
                self._kept[self._seen] = m
            else:
                j = int(self._rng.integers(0, self._seen + 1))
                if j < self.keep_mels:
                    self._kept[j] = m
            self._seen += 1

    @property
    def mels(self) -> np.ndarray:
        """The kept log-mel frames (all of them, or a uniform sample of ``keep_mels``)."""
        if self._kept is None:
            return np.zeros((0, *self.cfg.frame_shape), np.float32)
        return self._kept[: min(self._seen, self.keep_mels)]

    @property
    def input_samples(self) -> int:
        """Input samples of stream time so far (gaps included)."""
        return self._in_pos

    @property
    def stream_seconds(self) -> float:
        """Stream time of the input pushed so far (gaps included)."""
        return self._in_pos / self.resampler.sr_in

    def push(self, block: np.ndarray) -> list[Prediction]:
        """Feed a block of (frames,) or (frames, channels) samples; return new predictions."""
        mono, bad = finite_mono(block)  # a NaN or an infinity never reaches the features, the state or the output
        self.nonfinite += bad
        self._in_pos += len(mono)
        frames, ts = self.framer.push(self.resampler.process(mono))
        if len(frames) == 0:
            return []
        mels = logmel_frames(frames, self.cfg) if self._mel_input or self.keep_mels else None
        if self.keep_mels:
            self._keep(mels)
        x = mels if self._mel_input else frames
        extra = {"chroma": chroma_frames(frames, self.cfg)} if self.model.takes_chroma else {}
        if self.phases == 1:  # one state: the new frames are one sequence
            o, self._states[0] = self.model.run(x, self._states[0], **extra)
            return _predictions(o, ts)
        out: list[Prediction] = []
        sr, n, hop = self.cfg.sample_rate, self.cfg.frame_samples, self.hop_samples
        for i, (xi, t) in enumerate(zip(x, ts, strict=True)):
            ph = (round(t * sr) - n) // hop % self.phases  # the grid index picks the state
            o, self._states[ph] = self.model.run(xi[None], self._states[ph], **{k: v[i:i + 1] for k, v in extra.items()})
            out += _predictions(o, [t])
        return out


def _predictions(o, ts) -> list[Prediction]:
    d = o.descriptors
    return [Prediction(float(t), float(o.valence[i]), float(o.arousal[i]), float(o.valence_std[i]),
                       float(o.arousal_std[i]), tuple(float(x) for x in d[i]) if d is not None else None)
            for i, t in enumerate(ts)]


def stream_file(model: EmotionModel, path: str | Path, hop: float | None = None,
                blocksize: int = 65536) -> Iterator[Prediction]:
    """Predictions for a file, produced by the streaming path as fast as possible."""
    sr, _, blocks = read_blocks(path, blocksize=blocksize)
    yield from stream_blocks(model, sr, blocks, hop=hop)


def stream_blocks(model: EmotionModel, sample_rate: int, blocks: Iterable[np.ndarray],
                  hop: float | None = None) -> Iterator[Prediction]:
    tracker = Tracker(model, sample_rate, hop=hop)
    for block in blocks:
        yield from tracker.push(block)
