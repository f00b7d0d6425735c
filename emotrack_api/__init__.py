"""emotrack: live music emotion tracking in valence-arousal space.

Public API::

    import emotrack
    model = emotrack.load_model()          # the shipped VAE-LSTM (ONNX); "accurate": the opt-in model
    tracker = emotrack.Tracker(model, sample_rate=44100)
    for p in tracker.push(block):          # any block size, any channel count
        print(p.t, p.valence, p.arousal)
    song = emotrack.analyze_song(model, "a.mp3", emotrack.SongModel())  # whole-song V/A

Names are imported on first use, so ``import emotrack`` (and ``emotrack --help``) stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_EXPORTS = {
    "FEATURES": "emotrack.realtime.core.config",
    "FeatureConfig": "emotrack.realtime.core.config",
    "EmotionModel": "emotrack.realtime.core.model",
    "load_model": "emotrack.realtime.core.model",
    "AccurateModel": "emotrack.realtime.core.accurate",
    "Prediction": "emotrack.realtime.core.tracker",
    "Tracker": "emotrack.realtime.core.tracker",
    "stream_file": "emotrack.realtime.core.tracker",
    "SongModel": "emotrack.realtime.core.song",
    "AccurateSongModel": "emotrack.realtime.core.song",
    "analyze_song": "emotrack.realtime.core.song",
    "trajectory_matrix": "emotrack.realtime.core.song",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'emotrack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
