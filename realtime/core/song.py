"""Whole-song emotion at run time (no torch): ``emotrack analyze --song`` and the index. No
thread of its own (the main thread, or an index worker process).

``SongModel`` runs the shipped whole-song graph (``emotrack-song.onnx``, made by
``emotrack export-song``): a head on the statistics of a song's VAE codes (its log-mel frames)
and, in a model trained with one, a head on the statistics of the dynamic model's trajectory
(every output of every frame: ``trajectory_matrix``), which answers (alone, or mixed with the code
head by ``trajectory_head_share``) when the trajectory comes
from the dynamic model it was trained on; where the metadata says so, the mean of that
trajectory is mixed in (``SongModel.whole``). ``AccurateSongModel`` (opt-in,
``--song-model accurate``) runs the musicnn teachers on the song's 3 s windows and an SVR
on their statistics (``emotrack-song-accurate.onnx``): slower, and closer to the labels.
``analyze_song`` reads a file once and gives both the whole-song valence/arousal and the
summary of the dynamic trajectory, from the same 0.5 s frames the live tracker sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..assets import ACCURATE_SONG_MODEL, TEACHERS_MODEL, asset_path, default_song_model_path
from .audio import StreamingResampler, finite_mono, read_blocks
from .config import FEATURES, FeatureConfig
from .graph import model_label
from .model import EmotionModel, ModelMismatchError, open_checked
from .teacher import SAMPLE_RATE as TEACHER_RATE
from .teacher import TeacherModel, TeacherStream
from .tracker import Tracker

# the whole-song model sees at most this many frames (10 min): every frame of a shorter song, a
# uniform random sample of a longer one (its code statistics barely move; memory stays bounded)
MAX_SONG_FRAMES = 1200
WARMUP_FRAMES = 4  # the LSTM's first 2 s from zero state (wide stds); left out of the summary, as in evaluation
QUADRANT_NAMES = {1: "Q1 (positive, energetic)", 2: "Q2 (negative, energetic)",
                  3: "Q3 (negative, calm)", 4: "Q4 (positive, calm)"}


class SongTooShortError(ValueError):
    """The audio holds no whole 0.5 s frame."""


def trajectory_matrix(valence, arousal, valence_std, arousal_std, descriptors=None) -> np.ndarray:
    """The dynamic model's outputs over a song as one (frames, 4 + descriptors) float32 array,
    in the column order a whole-song trajectory head reads: valence, arousal, their stds, then
    the descriptors in the model's ``descriptor_names`` order."""
    cols = [np.asarray(x, np.float32).reshape(-1, 1) for x in (valence, arousal, valence_std, arousal_std)]
    if descriptors is not None and len(descriptors):
        cols.append(np.asarray(descriptors, np.float32).reshape(len(cols[0]), -1))
    return np.concatenate(cols, 1)


class SongModel:
    """``mel (T, n_mels, n_t) -> valence, arousal`` of the whole song (T >= 1); a model with a
    trajectory head also takes ``trajectory (T', 4 + descriptors)`` (``trajectory_matrix``)."""

    OUTPUTS = ("valence", "arousal", "embedding")
    TRAJECTORY_OUTPUTS = ("trajectory_valence", "trajectory_arousal")

    def __init__(self, path: str | Path | None = None, features: FeatureConfig = FEATURES, threads: int = 1):
        self.path = Path(path or os.environ.get("EMOTRACK_SONG_MODEL") or default_song_model_path())
        self.session, self.meta = open_checked(self.path, features, threads, "emotrack export-song")
        outs = {o.name for o in self.session.get_outputs()}
        if self.meta.get("kind") != "song" or not set(self.OUTPUTS) <= outs:
            raise ModelMismatchError(f"{self.path}: not a whole-song model (no 'song' kind or outputs "
                                     f"{list(self.OUTPUTS)}); give one made by `emotrack export-song`")
        self.features = features
        # the head's share of the answer, chosen on validation with the dynamic model
        # ``trajectory_model``; the rest is that model's trajectory mean (1: the head alone)
        self.trajectory_weight = float(self.meta.get("trajectory_weight", 1.0))
        self.trajectory_model = self.meta.get("trajectory_model")
        self.trajectory_sha256 = self.meta.get("trajectory_model_sha256")  # absent in emotrack-song 2 and before
        inputs = {i.name: i for i in self.session.get_inputs()}
        # the trajectory head's input width (4 + the dynamic model's descriptors); 0: no such head
        self.trajectory_columns = 0
        if "trajectory" in inputs:
            if not set(self.TRAJECTORY_OUTPUTS) <= outs or not isinstance(inputs["trajectory"].shape[1], int):
                raise ModelMismatchError(f"{self.path}: takes a trajectory but lacks the outputs "
                                         f"{list(self.TRAJECTORY_OUTPUTS)}; export it again with `emotrack export-song`")
            self.trajectory_columns = int(inputs["trajectory"].shape[1])
        # when the trajectory head answers, its share of the answer; the rest is the code head's
        # (1: the trajectory head alone, as in every song model before "both" heads)
        self.trajectory_head_share = float(self.meta.get("trajectory_head_share", 1.0))
        if not 0.0 <= self.trajectory_head_share <= 1.0:
            raise ModelMismatchError(f"{self.path}: trajectory_head_share {self.trajectory_head_share} is not in [0, 1]; "
                                     "export it again with `emotrack export-song`")

    @property
    def label(self) -> str:
        return model_label(self.meta, self.path)

    def made_for(self, model) -> bool:
        """Whether ``model`` is the dynamic model this song model's trajectory head and mixing
        weight were chosen with: its label and, where the metadata records it, its file's sha256."""
        return model.label == self.trajectory_model and self.trajectory_sha256 in (None, model.sha256)

    def blend(self, va: tuple[float, float], trajectory: np.ndarray, model) -> tuple[float, float]:
        """``va`` with the mean of the dynamic trajectory ([frames, >= 2], every frame) mixed in by
        the weight chosen in training, only if the trajectory comes from the model it was chosen
        with (``made_for``)."""
        w = self.trajectory_weight
        if w >= 1.0 or len(trajectory) == 0 or not self.made_for(model):
            return va
        mean = np.asarray(trajectory, np.float64)[:, :2].mean(0)
        v, a = (float(np.clip(w * x + (1.0 - w) * m, -1.0, 1.0)) for x, m in zip(va, mean, strict=True))
        return v, a

    def hears(self, trajectory: np.ndarray | None, model) -> bool:
        """Whether the trajectory head answers for this trajectory: the model has one, and the
        trajectory comes from the dynamic model it was trained on (and has its width)."""
        return (self.trajectory_columns > 0 and trajectory is not None and np.ndim(trajectory) == 2
                and len(trajectory) > 0 and np.shape(trajectory)[1] == self.trajectory_columns and self.made_for(model))

    def _run(self, mel: np.ndarray, trajectory: np.ndarray | None) -> tuple[float, float]:
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim != 3 or mel.shape[1:] != self.features.frame_shape:
            raise ValueError(f"expected mel frames of shape (T, {self.features.frame_shape}), got {mel.shape}")
        if len(mel) == 0:
            raise SongTooShortError("no 0.5 s frame: the audio is shorter than half a second")
        feed, names = {"mel": mel}, ["valence", "arousal"]
        if self.trajectory_columns:
            # the graph needs the input even when only the code head is read; that head never uses it
            feed["trajectory"] = (np.zeros((1, self.trajectory_columns), np.float32) if trajectory is None
                                  else np.asarray(trajectory, np.float32))
            if trajectory is not None:
                share = self.trajectory_head_share
                names = list(self.TRAJECTORY_OUTPUTS) + (names if share < 1.0 else [])
                out = [float(x) for x in self.session.run(names, feed)]
                if share >= 1.0:
                    return out[0], out[1]
                return (share * out[0] + (1.0 - share) * out[2], share * out[1] + (1.0 - share) * out[3])
        v, a = self.session.run(names, feed)
        return float(v), float(a)

    def predict(self, mel: np.ndarray) -> tuple[float, float]:
        """The head on the song's code statistics alone."""
        return self._run(mel, None)

    def whole(self, mel: np.ndarray, trajectory: np.ndarray, model) -> tuple[float, float]:
        """The whole-song answer: the trajectory head if it ``hears`` this trajectory (every
        output of every frame of the dynamic ``model``, ``trajectory_matrix``; mixed with the code
        head by ``trajectory_head_share``), else the code head alone; then ``blend``."""
        va = self._run(mel, trajectory if self.hears(trajectory, model) else None)
        return self.blend(va, trajectory, model)


class AccurateSongModel:
    """The musicnn teachers' outputs on a song's windows (N, 500) -> valence, arousal (N >= 1).
    ``stream()`` gives the per-song accumulator that ``analyze_song`` feeds 16 kHz audio."""

    OUTPUTS = ("valence", "arousal")

    def __init__(self, path: str | Path | None = None, teachers: str | Path | None = None, threads: int = 1):
        self.path = Path(path or asset_path(ACCURATE_SONG_MODEL))
        self.session, self.meta = open_checked(self.path, FEATURES, threads, "emotrack export-song")
        if self.meta.get("kind") != "song-accurate":
            raise ModelMismatchError(f"{self.path}: not an accurate whole-song model (kind {self.meta.get('kind')!r}); "
                                     "give one made by `emotrack export-song` from a `train-song --teacher-features` run")
        beside = self.path.parent / TEACHERS_MODEL  # exported together by `emotrack export-song`
        self.teachers = TeacherModel(teachers or (beside if beside.exists() else None), threads)
        if self.teachers.label != self.meta.get("teachers"):
            raise ModelMismatchError(f"{self.path} was trained on the outputs of {self.meta.get('teachers')}, "
                                     f"{self.teachers.path} holds {self.teachers.label}; export both together")
        self.stride = float(self.meta["stride_seconds"])

    @property
    def label(self) -> str:
        return model_label(self.meta, self.path)

    def stream(self) -> TeacherStream:
        return TeacherStream(self.teachers, self.stride)

    def predict_features(self, features: np.ndarray) -> tuple[float, float]:
        features = np.asarray(features, dtype=np.float32)
        if len(features) == 0:
            raise SongTooShortError("no teacher window: the audio is shorter than half a second")
        v, a = self.session.run(list(self.OUTPUTS), {"features": features})
        return float(v), float(a)


def open_song_model(spec: str | Path | None = None, threads: int = 1) -> SongModel | AccurateSongModel:
    """``None`` (the shipped default), ``"accurate"`` (the shipped accurate one) or the path
    of a model from ``emotrack export-song``, of either kind (told by its metadata)."""
    if spec == "accurate":
        return AccurateSongModel(threads=threads)
    if spec is not None:
        _, meta = open_checked(Path(spec), FEATURES, threads, "emotrack export-song")
        if meta.get("kind") == "song-accurate":
            return AccurateSongModel(spec, threads=threads)
    return SongModel(spec, threads=threads)


def quadrants(va: np.ndarray) -> np.ndarray:
    """Russell quadrant (1..4) of each (valence, arousal) row; zero counts as positive."""
    va = np.asarray(va)
    return np.where(va[:, 0] >= 0, np.where(va[:, 1] >= 0, 1, 4), np.where(va[:, 1] >= 0, 2, 3))


def quadrant(v: float, a: float) -> int:
    return int(quadrants(np.array([[v, a]]))[0])


def summarize(traj: np.ndarray, t: np.ndarray) -> dict:
    """The dynamic trajectory ([frames, 4]: valence, arousal and their stds) in a few numbers,
    over the frames after the warm-up (all frames if the song is shorter than 4 s)."""
    warm = WARMUP_FRAMES if len(traj) > 2 * WARMUP_FRAMES else 0
    out: dict = {"frames": int(len(traj)), "hop": FEATURES.frame_seconds, "warmup_frames_left_out": warm}
    traj, t = traj[warm:], t[warm:]
    for d, key in ((0, "valence"), (1, "arousal")):
        x = traj[:, d].astype(np.float64)
        k = max(1, len(x) // 10)
        out[key] = {"mean": round(float(x.mean()), 4), "std": round(float(x.std()), 4),
                    "min": round(float(x.min()), 4), "max": round(float(x.max()), 4),
                    "p10": round(float(np.percentile(x, 10)), 4), "p90": round(float(np.percentile(x, 90)), 4),
                    "first_tenth": round(float(x[:k].mean()), 4), "last_tenth": round(float(x[-k:].mean()), 4),
                    "mean_predicted_std": round(float(traj[:, d + 2].mean()), 4)}
    q = quadrants(traj[:, :2])
    out["quadrant_share"] = {f"Q{i}": round(float((q == i).mean()), 4) for i in (1, 2, 3, 4)}
    peak = int(np.argmax(traj[:, 1]))
    out["arousal_peak_t"] = round(float(t[peak]), 2)
    return out


@dataclass
class SongResult:
    duration: float
    valence: float | None  # None when no song model was given
    arousal: float | None
    trajectory: np.ndarray  # [frames, 4]
    t: np.ndarray  # frame ends, seconds
    nonfinite: int = 0  # NaN or infinite input samples, treated as silence

    def to_dict(self, song_model: SongModel | AccurateSongModel, model: EmotionModel) -> dict:
        q = quadrant(self.valence, self.arousal)
        return {"duration": round(self.duration, 3), "valence": round(self.valence, 4),
                "arousal": round(self.arousal, 4), "quadrant": q, "quadrant_name": QUADRANT_NAMES[q],
                "song_model": song_model.label, "trajectory_model": model.label,
                "trajectory": summarize(self.trajectory, self.t)}


def analyze_song(model: EmotionModel, path: str | Path,
                 song_model: SongModel | AccurateSongModel | None = None) -> SongResult:
    """Read ``path`` once: the dynamic trajectory (every 0.5 s, from zero state) and, with a
    song model, the whole-song valence/arousal from the same frames (or, for the accurate
    model, from the same signal). The same argument order as ``stream_file(model, path)``.
    Raises AudioDecodeError or SongTooShortError."""
    sr, _, blocks = read_blocks(path)
    preds = []
    if isinstance(song_model, AccurateSongModel):
        # the teachers hear the model-rate signal resampled to 16 kHz, as in training
        to_model = StreamingResampler(sr, FEATURES.sample_rate)
        to_teachers = StreamingResampler(FEATURES.sample_rate, TEACHER_RATE)
        tracker, teachers, nonfinite, n_in = Tracker(model, FEATURES.sample_rate), song_model.stream(), 0, 0
        for b in blocks:
            mono, bad = finite_mono(b)
            n_in, nonfinite = n_in + len(mono), nonfinite + bad
            y = to_model.process(mono)
            preds += tracker.push(y)
            teachers.push(to_teachers.process(y))
        duration = n_in / sr
    else:
        tracker = Tracker(model, sr, keep_mels=MAX_SONG_FRAMES if song_model is not None else 0)
        for b in blocks:
            preds += tracker.push(b)
        duration, nonfinite = tracker.stream_seconds, tracker.nonfinite
    if not preds:
        raise SongTooShortError(f"{path}: shorter than one 0.5 s frame, nothing to analyse")
    rows = np.array([[p.valence, p.arousal, p.valence_std, p.arousal_std] for p in preds], np.float32)
    traj = trajectory_matrix(*rows.T, [p.descriptors for p in preds] if preds[0].descriptors is not None else None)
    v, a = None, None
    if isinstance(song_model, AccurateSongModel):
        v, a = song_model.predict_features(teachers.finish())
    elif song_model is not None:
        v, a = song_model.whole(tracker.mels, traj, model)
    return SongResult(duration, v, a, traj[:, :4], np.array([p.t for p in preds]), nonfinite)
