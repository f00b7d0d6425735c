"""The accurate dynamic model, opt-in (``--model accurate``): the musicnn teachers at run time
every 0.5 s and a stateful LSTM head on their outputs. No thread of its own.

The default VAE-LSTM hears a 0.5 s frame through a small encoder; this one hears the
causal ~3 s window that ends at each frame through the two pretrained taggers
(:mod:`emotrack.realtime.core.teacher`, ``musicnn-teachers.onnx``) and feeds their 500
outputs to an LSTM (``emotrack-accurate.onnx``, made by ``emotrack export`` from a
``train --accurate`` run): ``features (1,T,500), h, c -> valence, arousal, their stds,
descriptors, h_out, c_out``. The descriptors are the teachers' own tag probabilities, not
a student's guess at them. A step costs one teacher window (35 ms median on one core,
``emotrack bench --model accurate``) instead of 0.7 ms; the card says how much closer to
the labels it is.

It has the interface of :class:`~emotrack.realtime.core.model.EmotionModel`, except that
it takes the frames' audio (``takes == "audio"``: (T, 11025) samples at 22,050 Hz) instead
of their log-mel, so the :class:`~emotrack.realtime.core.tracker.Tracker` and everything
above it (live, analyze, the library, the protocol) run it unchanged. Its state is
:class:`AccurateState`: the LSTM's (h, c) and what the teachers' next window needs (the
22,050 -> 16,000 Hz resampler's history and the last ~3 s of spectrogram). ``run`` does not
change the state it is given: it returns a new one, as the VAE-LSTM does.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..assets import ACCURATE_MODEL, asset_path
from .audio import StreamingResampler
from .config import FEATURES, FeatureConfig
from .graph import RecurrentGraph, StepOutput
from .teacher import SAMPLE_RATE, TeacherModel, TeacherStream

KIND = "dynamic-accurate"


def default_accurate_path() -> Path:
    return Path(os.environ.get("EMOTRACK_ACCURATE_MODEL") or asset_path(ACCURATE_MODEL))


@dataclass
class AccurateState:
    """What a stream of this model carries from one frame to the next."""

    h: np.ndarray
    c: np.ndarray
    resampler: StreamingResampler
    teachers: TeacherStream


class AccurateModel(RecurrentGraph):
    """The teachers' graph and the LSTM head's graph, driven as one model."""

    REQUIRED_INPUTS = ("features", "h", "c")
    KIND, WHAT = KIND, "an accurate dynamic model"
    takes = "audio"

    def __init__(self, path: str | Path | None = None, teachers: str | Path | TeacherModel | None = None,
                 features: FeatureConfig = FEATURES, threads: int = 1, opened: tuple | None = None):
        super().__init__(path or default_accurate_path(), features, threads, opened)
        if isinstance(teachers, TeacherModel):
            self.teachers = teachers
        else:  # the teachers' graph ships beside the head (the export writes both)
            beside = self.path.parent / str(self.meta.get("teachers_file", ""))
            self.teachers = TeacherModel(teachers or (beside if beside.is_file() else None), threads=threads)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.features.frame_samples,)

    def zero_state(self) -> AccurateState:
        return AccurateState(*self._zero_hc(), StreamingResampler(self.features.sample_rate, SAMPLE_RATE),
                             TeacherStream(self.teachers, self.features.frame_seconds, keep=False))

    def teacher_features(self, frames: np.ndarray, state: AccurateState) -> tuple[np.ndarray, AccurateState]:
        """The teachers' (T, 500) outputs on the windows ending at each of the T frames, and
        the state after them (the given state is left as it was)."""
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim == 1:
            frames = frames[None]
        if frames.shape[1:] != self.input_shape:
            raise ValueError(f"expected audio frames of {self.input_shape[0]} samples, got {frames.shape[1:]}")
        # the resampler's arrays are replaced on every call, never written in place: a shallow copy is a copy
        rs, ts = copy.copy(state.resampler), state.teachers.copy()
        ts.push(rs.process(frames.reshape(-1)))  # T frames of 11,025 samples -> 8,000 each at 16 kHz
        out = ts.take()  # one window per frame, ending where the frame ends
        if len(out) != len(frames):
            raise RuntimeError(f"{len(frames)} frames gave {len(out)} teacher windows")
        return out, AccurateState(state.h, state.c, rs, ts)

    def run(self, frames: np.ndarray, state: AccurateState) -> tuple[StepOutput, AccurateState]:
        """(T, 11025) frames of audio from ``state`` -> (StepOutput, new state)."""
        feats, nxt = self.teacher_features(frames, state)
        return self.run_features(feats, nxt)

    def run_features(self, feats: np.ndarray, state: AccurateState) -> tuple[StepOutput, AccurateState]:
        """The head alone on teacher outputs (T, 500) -> (StepOutput, state with the new h, c)."""
        feats = np.asarray(feats, dtype=np.float32)
        if len(feats) == 0:
            return self._empty(), state
        out, h, c = self._step({"features": feats[None], "h": state.h, "c": state.c})
        return out, AccurateState(h, c, state.resampler, state.teachers)
