"""Shared fixtures: the shipped model, the demo clip, a private feature cache."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("EMOTRACK_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def model():
    from emotrack import load_model

    return load_model()


@pytest.fixture(scope="session")
def demo_path() -> Path:
    return Path(str(resources.files("emotrack.assets").joinpath("demo.opus")))


@pytest.fixture(scope="session")
def demo_audio(demo_path):
    import soundfile as sf

    y, sr = sf.read(str(demo_path), dtype="float32", always_2d=True)
    return y, sr


@pytest.fixture()
def private_cache(tmp_path_factory, monkeypatch):
    d = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("EMOTRACK_CACHE", str(d))
    return d


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One feature cache for the tests of a session (rendering MIDI once)."""
    return tmp_path_factory.mktemp("shared-cache")


def needs_data():
    return pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} not present")


def noise(seconds: float, sr: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)
