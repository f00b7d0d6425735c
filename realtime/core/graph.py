"""What every emotrack ONNX graph is opened with (no thread of its own): an onnxruntime
session on the CPU, the emotrack metadata it carries, the errors that say what to do with a
file that cannot be used, and the per-frame outputs of a dynamic model. The models
(:mod:`.model`, :mod:`.accurate`, :mod:`.teacher`, :mod:`.song`) build on it.
"""

from __future__ import annotations

import functools
import hashlib
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


# kinds of model fed 0.5 s frames of samples rather than log-mel frames (the accurate models
# and the teachers' graph): of the feature parameters they depend only on these, so a change
# of the log-mel (say, more bands) leaves them usable
AUDIO_KINDS = frozenset({"dynamic-accurate", "song-accurate", "teachers"})
AUDIO_FIELDS = ("sample_rate", "frame_seconds")


def open_checked(path: Path, features: FeatureConfig, threads: int, made_by: str):
    """An onnxruntime session and the emotrack metadata of the model at ``path``; refuses a
    missing file, a file without emotrack metadata and one made for other features (for a
    model of ``AUDIO_KINDS``, other ``AUDIO_FIELDS``)."""
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
    if meta.get("kind") in AUDIO_KINDS:
        diff = {k: v for k, v in diff.items() if k in AUDIO_FIELDS}
    if diff:
        detail = ", ".join(f"{k}: runtime {a!r} vs model {b!r}" for k, (a, b) in diff.items())
        raise ModelMismatchError(
            f"{path}: feature parameters differ from this runtime ({detail}). "
            "Use an emotrack version that matches the model, or re-export the model."
        )
    return session, meta


def model_label(meta: dict, path: Path) -> str:
    """``name version`` from a model's metadata (the file's stem and 0 where it has none):
    how outputs, the index, the cards and a song model's metadata name a model."""
    return f"{meta.get('name', path.stem)} {meta.get('version', '0')}"


class RecurrentGraph:
    """What the dynamic models share: the checked session, its required inputs and outputs,
    the recurrent state's size, the optional named descriptors (with how likely each is on
    typical audio), the name and version. Subclasses name ``REQUIRED_INPUTS`` and, where
    the metadata must say which model it is, ``KIND`` (with ``WHAT`` for the message)."""

    REQUIRED_INPUTS: tuple[str, ...] = ()
    KIND: str | None = None
    # whether run() also takes the frames' pitch-class profiles (``chroma=``; EmotionModel sets it per graph)
    takes_chroma = False
    WHAT = "this kind of model"
    REQUIRED_OUTPUTS = ("valence", "arousal", "valence_std", "arousal_std", "h_out", "c_out")

    def __init__(self, path: str | Path, features: FeatureConfig, threads: int, opened: tuple | None = None):
        self.path = Path(path)
        # ``opened``: the (session, meta) of ``open_checked`` on this path, where the caller already has them
        self.session, self.meta = opened or open_checked(self.path, features, threads, "emotrack export")
        self.features = features
        if self.KIND is not None and self.meta.get("kind") != self.KIND:
            raise ModelMismatchError(f"{self.path}: not {self.WHAT} (kind {self.meta.get('kind')!r})")
        ins = {i.name for i in self.session.get_inputs()}
        outs = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self.REQUIRED_INPUTS if n not in ins] + [n for n in self.REQUIRED_OUTPUTS if n not in outs]
        if missing:
            raise ModelMismatchError(f"{self.path}: graph lacks {missing}; re-export the model")
        self.hidden_size = int(self.meta["hidden_size"])
        self.num_layers = int(self.meta.get("num_layers", 1))
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

    @property
    def label(self) -> str:
        return model_label(self.meta, self.path)

    @functools.cached_property
    def sha256(self) -> str:
        """The ONNX file's sha256, as its model card gives it: which weights, where two models
        share a label (an own export keeps the default name and version)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def warm_up(self) -> None:
        """One run on a silent frame: onnxruntime allocates on its first run, so that a
        stream's first real frame is not the slow one."""
        self.run(np.zeros((1, *self.input_shape), np.float32), self.zero_state())

    def _zero_hc(self) -> tuple[np.ndarray, np.ndarray]:
        z = np.zeros((self.num_layers, 1, self.hidden_size), dtype=np.float32)
        return z, z.copy()

    def _step(self, feeds: dict) -> tuple[StepOutput, np.ndarray, np.ndarray]:
        """One run of the graph on a batch of one sequence: its outputs and the new (h, c)."""
        v, a, vs, as_, h, c, *d = self.session.run(self._outputs, feeds)
        return StepOutput(v[0], a[0], vs[0], as_[0], d[0][0] if d else None), h, c

    def _empty(self) -> StepOutput:
        e = np.zeros(0, dtype=np.float32)
        d = np.zeros((0, len(self.descriptor_names)), np.float32) if self.descriptor_names else None
        return StepOutput(e, e, e, e, d)
