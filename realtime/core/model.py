"""The ONNX emotion model (no thread of its own: the live worker, ``analyze`` and the index
workers call it).

``EmotionModel.run`` is a pure function of frames and a recurrent state; the state a
stream needs is owned by its :class:`~emotrack.realtime.core.tracker.Tracker`, so callers
never juggle hidden-state arrays. ``load_model()`` opens the shipped default or any
exported model and refuses, with a :class:`ModelError` that says what to do, one that is
missing, not an emotrack model, or made for other feature parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..assets import default_model_path
from .accurate import KIND as ACCURATE_KIND
from .accurate import AccurateModel
from .config import CHROMA, FEATURES, ChromaConfig, FeatureConfig
from .features import average_profiles
from .graph import (
    METADATA_KEY,
    ModelError,
    ModelFileMissing,
    ModelMismatchError,
    RecurrentGraph,
    StepOutput,
    open_checked,
)
from .threads import single_thread_blas

__all__ = ["METADATA_KEY", "AccurateModel", "EmotionModel", "ModelError", "ModelFileMissing", "ModelMismatchError",
           "StepOutput", "load_model", "open_checked"]


class EmotionModel(RecurrentGraph):
    """The VAE-LSTM graph: ``mel[, chroma], h, c -> valence, arousal, their stds, h', c'``. It
    holds no stream state: :meth:`run` takes the state and returns the next one. A graph with
    a ``chroma`` input (``takes_chroma``) also reads each frame's pitch-class profile
    (:func:`~emotrack.realtime.core.features.chroma_frames`, parameters in its metadata's
    ``chroma``, which must match this runtime's :data:`~emotrack.realtime.core.config.CHROMA`).
    A graph with a ``chroma_avg`` input too (``tonal_avg`` > 0, from its metadata's ``net``)
    reads the profiles' causal average as well
    (:func:`~emotrack.realtime.core.features.average_profiles`): :meth:`run` keeps that average's
    running sum as a third part of the state, ``(h, c, sum)``."""

    REQUIRED_INPUTS = ("mel", "h", "c")
    takes = "mel"  # what run() is given: log-mel frames (the accurate model takes the frames' audio)

    def __init__(self, path: str | Path, features: FeatureConfig = FEATURES, threads: int = 1,
                 opened: tuple | None = None):
        super().__init__(path, features, threads, opened)
        ins = {i.name for i in self.session.get_inputs()}
        self.takes_chroma = "chroma" in ins
        self.tonal_avg = float((self.meta.get("net") or {}).get("tonal_avg", 0.0))
        if ("chroma_avg" in ins) != (self.tonal_avg > 0) or (self.tonal_avg and not self.takes_chroma):
            raise ModelMismatchError(f"{self.path}: the graph's inputs {sorted(ins)} do not match its metadata "
                                     f"(tonal_avg {self.tonal_avg}); re-export the model with `emotrack export`")
        if self.takes_chroma:
            stored = self.meta.get("chroma")
            if stored is None:
                raise ModelMismatchError(f"{self.path}: the graph takes chroma but its metadata does not say how it "
                                         "was computed; re-export the model with `emotrack export`")
            try:  # as open_checked compares the log-mel's parameters
                diff = CHROMA.diff(ChromaConfig.from_dict(stored))
            except (TypeError, ValueError) as e:
                diff = {"metadata": (CHROMA.to_dict(), f"{stored} ({e})")}
            if diff:
                detail = ", ".join(f"{k}: runtime {a!r} vs model {b!r}" for k, (a, b) in diff.items())
                raise ModelMismatchError(f"{self.path}: chroma parameters differ from this runtime ({detail}). "
                                         "Use an emotrack version that matches the model, or re-export the model.")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.features.frame_shape

    def zero_state(self) -> tuple[np.ndarray, ...]:
        """A stream's start: zero (h, c), and where the model averages profiles, a zero sum."""
        return (*self._zero_hc(), np.zeros(12)) if self.tonal_avg else self._zero_hc()

    def warm_up(self) -> None:
        chroma = np.full((1, 12), 1 / 12, np.float32) if self.takes_chroma else None  # a silent frame's
        self.run(np.zeros((1, *self.input_shape), np.float32), self.zero_state(), chroma)

    def run(self, mel: np.ndarray, state: tuple[np.ndarray, ...], chroma: np.ndarray | None = None):
        """Pure function: (T, n_mels, n_t) frames from ``state`` -> (StepOutput, new state);
        ``chroma`` (T, 12), the same frames' pitch-class profiles, where the model takes them."""
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim == 2:
            mel = mel[None]
        if mel.shape[1:] != self.features.frame_shape:
            raise ValueError(f"expected mel frames of shape {self.features.frame_shape}, got {mel.shape[1:]}")
        if len(mel) == 0:
            return self._empty(), state
        feeds = {"mel": mel[None], "h": state[0], "c": state[1]}
        if self.takes_chroma:
            if chroma is None:
                raise ValueError(f"{self.label} also takes each frame's pitch-class profile: pass "
                                 "chroma=chroma_frames(frames) (emotrack.realtime.core.features) beside the log-mel")
            chroma = np.asarray(chroma, dtype=np.float32)
            if chroma.ndim == 1:
                chroma = chroma[None]
            if chroma.ndim != 2 or chroma.shape[1] != 12:
                raise ValueError(f"expected pitch-class profiles of shape (T, 12), got {chroma.shape}")
            if len(chroma) != len(mel):
                raise ValueError(f"{len(mel)} log-mel frames but {len(chroma)} pitch-class profiles: give one per frame")
            feeds["chroma"] = chroma[None]
        if self.tonal_avg:  # (such a graph takes chroma: __init__ checks)
            if len(state) != 3:
                raise ValueError(f"{self.label} keeps an average of the profiles: give the state it returned "
                                 "(h, c, sum) or zero_state(), not (h, c)")
            avg, total = average_profiles(chroma, self.tonal_avg, state[2], self.features)
            feeds["chroma_avg"] = avg[None]
        out, h, c = self._step(feeds)
        return out, ((h, c, total) if self.tonal_avg else (h, c))


def load_model(path: str | Path | None = None, threads: int = 1,
               limit_blas: bool = True) -> EmotionModel | AccurateModel:
    """The shipped default model, ``"accurate"`` (the shipped opt-in model that runs the
    musicnn teachers, :class:`~emotrack.realtime.core.accurate.AccurateModel`), or the model
    at ``path`` (or $EMOTRACK_MODEL) of either kind, told apart by its metadata.

    ``threads``: onnxruntime's threads for this model (1: a step is a fraction of a ms, and a
    second thread only contends with the caller's). ``limit_blas``: also keep numpy's BLAS
    (the log-mel's matrix product) on one thread, as the command line does; with a busy
    second core a threaded BLAS turns 0.2 ms frames into stalls. Pass False to leave the
    process's BLAS settings alone."""
    if limit_blas:
        single_thread_blas()
    path = path or os.environ.get("EMOTRACK_MODEL") or default_model_path()
    if str(path) == "accurate":
        return AccurateModel(threads=threads)
    opened = open_checked(Path(path), FEATURES, threads, "emotrack export")  # its metadata tells the kind
    if opened[1].get("kind") == ACCURATE_KIND:
        return AccurateModel(path, threads=threads, opened=opened)
    return EmotionModel(path, threads=threads, opened=opened)
