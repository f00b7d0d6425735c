"""Clips -> training sequences: cached log-mel frames with frame targets, signs and
per-frame weights. Torch-free, so ``emotrack evaluate`` needs no torch. Offline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from emotrack.realtime.core.config import FEATURES

from .cache import ensure_features, load_chroma, load_features
from .data import QUADRANT_SIGNS, Clip

WARMUP = 4  # frames (2 s) before clip-level and quadrant targets apply
MAX_LEN = 120  # training crop, frames (60 s)
GAINS_DB = (-6.0, 0.0, 6.0)
DATASET_WEIGHTS = {"soundtracks": 2.0, "emotify": 1.0, "vgmidi": 1.0, "panda4q": 0.5, "emopia": 0.25,
                   "deam": 2.0, "pmemo": 1.0, "emomusic": 1.0}
FLOOR = (10 * math.log10(FEATURES.power_floor) - FEATURES.db_offset) / FEATURES.db_scale


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Seq:
    clip: Clip
    mel: np.ndarray  # (T, M, N) float16
    v: np.ndarray  # (T,) NaN = no frame target
    a: np.ndarray
    sign: np.ndarray  # (2,) quadrant signs or zeros
    weight: float = 1.0  # per-frame weight (dataset weight / dataset frames)
    codes: dict = field(default_factory=dict)  # name -> (n_gains, T, D)
    chroma: np.ndarray | None = None  # (T, 12) float16 pitch-class profiles, where loaded

    @property
    def key(self) -> str:
        return self.clip.key


def build_seqs(clips: list[Clip], jobs: int = 2, chroma: bool = False) -> list[Seq]:
    """Training sequences of ``clips`` (features computed where not cached; a clip that
    fails is logged and left out); with ``chroma`` each also holds its pitch-class profiles."""
    errors = ensure_features(clips, jobs=jobs, chroma=chroma)
    for k, e in errors.items():
        log(f"skipped {k}: {e}")
    seqs = []
    for c in clips:
        if c.key in errors:
            continue
        mel = load_features(c).astype(np.float16)
        if len(mel) == 0:
            continue
        ends = 0.5 * np.arange(1, len(mel) + 1)
        v, a = c.frame_targets(ends)
        if c.kind == "static":
            v[:WARMUP] = np.nan
            a[:WARMUP] = np.nan
        sign = np.array(QUADRANT_SIGNS[c.quadrant] if c.quadrant else (0.0, 0.0), dtype=np.float32)
        seqs.append(Seq(c, mel, v, a, sign, chroma=load_chroma(c).astype(np.float16) if chroma else None))
    # every dataset contributes its weight in total, spread over its training frames
    n = {}
    for s in seqs:
        n[s.clip.dataset] = n.get(s.clip.dataset, 0) + len(s.mel)
    total = sum(n.values())
    for s in seqs:
        s.weight = DATASET_WEIGHTS.get(s.clip.dataset, 1.0) * total / (n[s.clip.dataset] * len(n))
    return seqs


def shift_gain(mel: np.ndarray, gain_db: float) -> np.ndarray:
    if gain_db == 0:
        return mel
    return np.maximum(mel + gain_db / FEATURES.db_scale, FLOOR).astype(mel.dtype)
