"""Rendering MIDI with fluidsynth and caching log-mel frames (and, for models with a
``chroma`` input, pitch-class profiles) of every clip (offline).

Frames are computed by the runtime's own streaming path (``emotrack.realtime.core.audio`` +
``features``), so training sees exactly what ``analyze`` and ``live`` compute. The cache
lives in ``$EMOTRACK_CACHE`` (default ``~/.cache/emotrack``), keyed by the feature
fingerprint and, for MIDI, the SoundFont.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from emotrack.realtime.core.audio import Framer, load_audio
from emotrack.realtime.core.config import CHROMA, FEATURES, ChromaConfig, FeatureConfig
from emotrack.realtime.core.features import chroma_frames, logmel_frames
from tqdm import tqdm

from .data import Clip


class LogProgress:
    """Progress for a log file: a line at most every ``every`` seconds and one at the end,
    where a terminal's bar would write a carriage return per clip (thousands of them in a
    run's train.log, which then showed nothing else to ``tail``)."""

    def __init__(self, total: int, desc: str, every: float = 60.0, unit: str = "clip"):
        self.total, self.desc, self.every, self.unit = total, desc, every, unit
        self.n, self.t0 = 0, time.monotonic()
        self.last = self.t0

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last >= self.every and self.n < self.total:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}s in {now - self.t0:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.n:
            self._line(time.monotonic())


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "clip"):
    """tqdm's bar on a terminal, :class:`LogProgress` lines where stderr goes to a file or a
    pipe; a silent one when not ``enabled``."""
    if enabled and not sys.stderr.isatty():
        return LogProgress(total, desc, unit=unit)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled)


# Debian's timgm6mb-soundfont (GPL-2); fluid-soundfont-gm (MIT) is the fallback.
SOUNDFONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2")


def cache_dir() -> Path:
    return Path(os.environ.get("EMOTRACK_CACHE", Path.home() / ".cache" / "emotrack"))


def find_soundfont() -> Path:
    env = os.environ.get("EMOTRACK_SOUNDFONT")
    for p in ([env] if env else []) + list(SOUNDFONTS):
        if p and Path(p).exists():
            return Path(p)
    raise FileNotFoundError(
        "no General-MIDI SoundFont found (looked for "
        + ", ".join(SOUNDFONTS)
        + "); install Debian's timgm6mb-soundfont (scripts/setup.sh does) or set EMOTRACK_SOUNDFONT")


def render_midi(midi: Path, out_wav: Path, sample_rate: int, soundfont: Path | None = None) -> None:
    """Render ``midi`` to a wav with fluidsynth (no audio driver, no reverb/chorus tails)."""
    if shutil.which("fluidsynth") is None:
        raise FileNotFoundError("fluidsynth not found; install it (scripts/setup.sh does)")
    sf2 = soundfont or find_soundfont()
    cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-R", "0", "-C", "0", "-F", str(out_wav),
           "-r", str(sample_rate), str(sf2), str(midi)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 or not out_wav.exists():
        raise RuntimeError(f"fluidsynth failed on {midi}: {res.stderr.strip()[:300]}")


def signal_frames(y: np.ndarray, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """Mono signal at the model rate -> (N, frame_samples) 0.5 s frames, as the runtime frames them."""
    frames, _ = Framer(cfg.frame_samples, cfg.frame_samples, cfg.sample_rate).push(y)
    return frames


def audio_frames(y: np.ndarray, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """Mono signal at the model rate -> (N, n_mels, n_t) log-mel frames, 0.5 s hop."""
    return logmel_frames(signal_frames(y, cfg), cfg)


def clip_audio(clip: Clip, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    if clip.audio is not None:
        return load_audio(clip.audio, cfg)
    if clip.midi is not None:
        with tempfile.TemporaryDirectory() as td:
            wav = Path(td) / "r.wav"
            render_midi(clip.midi, wav, cfg.sample_rate)
            return load_audio(wav, cfg)
    raise ValueError(f"{clip.key}: neither audio nor MIDI")


def cache_path(clip: Clip, cfg: FeatureConfig) -> Path:
    tag = cfg.fingerprint()
    if clip.midi is not None:
        tag += "-" + find_soundfont().stem
    safe = clip.id.replace("/", "_")
    return cache_dir() / "features" / tag / clip.dataset / f"{safe}.npy"


def chroma_path(clip: Clip, cfg: FeatureConfig = FEATURES, ch: ChromaConfig = CHROMA) -> Path:
    """Where a clip's (N, 12) pitch-class profiles are cached, beside its log-mel frames."""
    mel = cache_path(clip, cfg)
    return cache_dir() / "chroma" / f"{mel.parent.parent.name}-{ch.fingerprint()}" / clip.dataset / mel.name


def _missing(clip: Clip, cfg: FeatureConfig, chroma: bool) -> bool:
    return not cache_path(clip, cfg).exists() or (chroma and not chroma_path(clip, cfg).exists())


def cache_from_audio(clip: Clip, y: np.ndarray, cfg: FeatureConfig = FEATURES, chroma: bool = True) -> None:
    """Cache what is missing of a clip's log-mel frames (and with ``chroma`` its pitch-class
    profiles) from its decoded audio ``y`` (at the model rate)."""
    path, cpath = cache_path(clip, cfg), chroma_path(clip, cfg)
    if not _missing(clip, cfg, chroma):
        return
    frames = signal_frames(y, cfg)
    if not path.exists():
        save_atomic(path, logmel_frames(frames, cfg).astype(np.float16))
    if chroma and not cpath.exists():
        save_atomic(cpath, chroma_frames(frames, cfg).astype(np.float16))


def _compute(args) -> tuple[str, str | None]:
    clip, cfg, chroma = args
    if not _missing(clip, cfg, chroma):
        return clip.key, None
    try:  # the audio is decoded (or rendered) once for whatever is missing
        cache_from_audio(clip, clip_audio(clip, cfg), cfg, chroma)
    except Exception as e:  # report and go on; the caller decides
        return clip.key, f"{type(e).__name__}: {e}"
    return clip.key, None


def save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save to a temporary name, then rename: a cache file is whole or absent, even
    with several processes writing or a kill in the middle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def ensure_features(clips: list[Clip], jobs: int = 2, cfg: FeatureConfig = FEATURES,
                    progress: bool = True, chroma: bool = False) -> dict[str, str]:
    """Compute missing cached frames (with ``chroma`` their pitch-class profiles too) in
    ``jobs`` processes. Returns {clip key: error}."""
    todo = [c for c in clips if _missing(c, cfg, chroma)]
    errors: dict[str, str] = {}
    if not todo:
        return errors

    bar = progress_bar(len(todo), "features", progress)
    if jobs <= 1:
        results = map(_compute, [(c, cfg, chroma) for c in todo])
        for key, err in results:
            if err:
                errors[key] = err
            bar.update()
    else:
        with ProcessPoolExecutor(jobs) as ex:
            for key, err in ex.map(_compute, [(c, cfg, chroma) for c in todo], chunksize=4):
                if err:
                    errors[key] = err
                bar.update()
    bar.close()
    return errors


def load_features(clip: Clip, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """Cached (N, n_mels, n_t) float32 frames of a clip (call :func:`ensure_features` first)."""
    return np.load(cache_path(clip, cfg)).astype(np.float32)


def load_chroma(clip: Clip, cfg: FeatureConfig = FEATURES) -> np.ndarray:
    """Cached (N, 12) float32 pitch-class profiles of a clip (``ensure_features(..., chroma=True)`` first)."""
    return np.load(chroma_path(clip, cfg)).astype(np.float32)


def has_features(clip: Clip, cfg: FeatureConfig = FEATURES) -> bool:
    return cache_path(clip, cfg).exists()
