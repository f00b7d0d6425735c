"""The ONNX emotion model (no thread of its own: the live worker, ``analyze`` and the index
workers call it).

``EmotionModel.run`` is a pure function of frames and a recurrent state; the state a
stream needs is owned by its :class:`~emotrack.realtime.core.tracker.Tracker`, so callers
never juggle hidden-state arrays. ``load_model()`` opens the shipped default or any
exported model and refuses, with a :class:`ModelError` that says what to do, one that is
missing, not an emotrack model, or made for other feature parameters.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..assets import default_model_path
from .config import FEATURES, FeatureConfig
from .threads import single_thread_blas

METADATA_KEY = "emotrack"


class ModelError(Exception):
    """A model file that cannot be used: missing, unloadable, not an emotrack model, or made
    for other feature parameters. The message says what to do."""


class ModelFileMissing(ModelError, FileNotFoundError):
    """The model file is not there."""


class ModelMismatchError(ModelError):
    """The model's stored parameters do not match this runtime."""


@dataclass
class StepOutput:
    """Per-frame outputs, each of shape (T,)."""

    valence: np.ndarray
    arousal: np.ndarray
    valence_std: np.ndarray
    arousal_std: np.ndarray
    descriptors: np.ndarray | None = None  # (T, K) in [0, 1], for models that have them


def _session(path: Path, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelMismatchError(
            f"{path}: onnxruntime {ort.__version__} cannot load this model ({e}). "
            "Re-export it with `emotrack export` from this version of emotrack."
        ) from e


def open_checked(path: Path, features: FeatureConfig, threads: int, made_by: str):
    """An onnxruntime session and the emotrack metadata of the model at ``path``; refuses a
    missing file, a file without emotrack metadata and one made for other features."""
    if not path.exists():
        raise ModelFileMissing(f"model file {path} does not exist; give an .onnx file made by `{made_by}`, "
                         "or leave the option out for the shipped model")
    session = _session(path, threads)
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelMismatchError(
            f"{path}: no '{METADATA_KEY}' metadata; this is not an emotrack model (export one with `{made_by}`)"
        )
    meta = json.loads(meta[METADATA_KEY])
    diff = features.diff(FeatureConfig.from_dict(meta["features"]))
    if diff:
        detail = ", ".join(f"{k}: runtime {a!r} vs model {b!r}" for k, (a, b) in diff.items())
        raise ModelMismatchError(
            f"{path}: feature parameters differ from this runtime ({detail}). "
            "Use an emotrack version that matches the model, or re-export the model."
        )
    return session, meta


class EmotionModel:
    """The VAE-LSTM graph: ``mel, h, c -> valence, arousal, their stds, h', c'``. It holds no
    stream state: :meth:`run` takes the state and returns the next one."""

    REQUIRED_INPUTS = ("mel", "h", "c")
    REQUIRED_OUTPUTS = ("valence", "arousal", "valence_std", "arousal_std", "h_out", "c_out")

    def __init__(self, path: str | Path, features: FeatureConfig = FEATURES, threads: int = 1):
        self.path = Path(path)
        self.session, self.meta = open_checked(self.path, features, threads, "emotrack export")
        self.features = features
        ins = {i.name for i in self.session.get_inputs()}
        outs = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self.REQUIRED_INPUTS if n not in ins] + [
            n for n in self.REQUIRED_OUTPUTS if n not in outs
        ]
        if missing:
            raise ModelMismatchError(f"{self.path}: graph lacks {missing}; re-export the model")
        self.hidden_size = int(self.meta["hidden_size"])
        self.num_layers = int(self.meta.get("num_layers", 1))
        # optional: named perceptual descriptors (distilled tags), with how likely each is on typical audio
        self.descriptor_names: list[str] = list(self.meta.get("descriptors") or []) if "descriptors" in outs else []
        typical = self.meta.get("descriptor_typical") or [0.5] * len(self.descriptor_names)
        self.descriptor_typical = np.asarray(typical, dtype=np.float32)
        self._outputs = list(self.REQUIRED_OUTPUTS) + (["descriptors"] if self.descriptor_names else [])

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.stem))

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "0"))

    def zero_state(self) -> tuple[np.ndarray, np.ndarray]:
        z = np.zeros((self.num_layers, 1, self.hidden_size), dtype=np.float32)
        return z, z.copy()

    def run(self, mel: np.ndarray, state: tuple[np.ndarray, np.ndarray]):
        """Pure function: (T, n_mels, n_t) frames from ``state`` -> (StepOutput, new state)."""
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim == 2:
            mel = mel[None]
        if mel.shape[1:] != self.features.frame_shape:
            raise ValueError(f"expected mel frames of shape {self.features.frame_shape}, got {mel.shape[1:]}")
        if len(mel) == 0:
            e = np.zeros(0, dtype=np.float32)
            d = np.zeros((0, len(self.descriptor_names)), np.float32) if self.descriptor_names else None
            return StepOutput(e, e, e, e, d), state
        v, a, vs, as_, h, c, *d = self.session.run(self._outputs, {"mel": mel[None], "h": state[0], "c": state[1]})
        return StepOutput(v[0], a[0], vs[0], as_[0], d[0][0] if d else None), (h, c)


def load_model(path: str | Path | None = None, threads: int = 1, limit_blas: bool = True) -> EmotionModel:
    """The shipped default model, or the model at ``path`` (or $EMOTRACK_MODEL).

    ``threads``: onnxruntime's threads for this model (1: a step is a fraction of a ms, and a
    second thread only contends with the caller's). ``limit_blas``: also keep numpy's BLAS
    (the log-mel's matrix product) on one thread, as the command line does; with a busy
    second core a threaded BLAS turns 0.2 ms frames into stalls. Pass False to leave the
    process's BLAS settings alone."""
    if limit_blas:
        single_thread_blas()
    path = path or os.environ.get("EMOTRACK_MODEL") or default_model_path()
    return EmotionModel(path, threads=threads)
