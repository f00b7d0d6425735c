"""What every emotrack ONNX graph is opened with (no thread of its own): an onnxruntime
session on the CPU, the emotrack metadata it carries, the errors that say what to do with a
file that cannot be used, and the per-frame outputs of a dynamic model. The models
(:mod:`.model`, :mod:`.accurate`, :mod:`.teacher`, :mod:`.song`) build on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .config import FeatureConfig

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
