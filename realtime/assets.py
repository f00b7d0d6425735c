"""The files emotrack ships in ``emotrack.assets`` (models and their cards, the demo clip,
the dashboard's static files, the protocol schema), found through ``importlib.resources``
so they work from a wheel, an editable install or a zip. Nothing is ever downloaded.
No thread of its own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "emotrack-vae-lstm.onnx"
DEFAULT_SONG_MODEL = "emotrack-song.onnx"
ACCURATE_SONG_MODEL = "emotrack-song-accurate.onnx"  # opt-in; runs musicnn-teachers.onnx
TEACHERS_MODEL = "musicnn-teachers.onnx"
ACCURATE_MODEL = "emotrack-accurate.onnx"  # opt-in dynamic model (--model accurate); runs musicnn-teachers.onnx
DEMO = "demo.opus"
SCHEMA = "protocol-v1.schema.json"


def asset_path(*parts: str) -> Path:
    """The path of a shipped file, e.g. ``asset_path("dashboard", "index.html")``."""
    return Path(str(resources.files("emotrack.assets").joinpath(*parts)))


def asset_bytes(*parts: str) -> bytes:
    return resources.files("emotrack.assets").joinpath(*parts).read_bytes()


def default_model_path() -> Path:
    return asset_path(DEFAULT_MODEL)


def default_song_model_path() -> Path:
    return asset_path(DEFAULT_SONG_MODEL)


def demo_path() -> Path:
    return asset_path(DEMO)


def schema_path() -> Path:
    return asset_path(SCHEMA)
