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


@pytest.fixture(scope="session")
def pulse(tmp_path_factory):
    """A private PulseAudio server with a 48 kHz stereo null sink as the default source."""
    from .pulse import PulseServer

    if not PulseServer.available():
        pytest.skip("pulseaudio/pactl/paplay not installed (scripts/setup.sh installs them)")
    srv = PulseServer(tmp_path_factory.mktemp("pulse"))
    srv.start()
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    os.environ.update({k: srv.env[k] for k in saved})
    import sounddevice as sd

    sd._terminate()  # PortAudio lists devices once: look again now that the server runs
    sd._initialize()
    yield srv
    srv.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class ListSink:
    """Collects what the worker hands to sinks (frames and status events)."""

    def __init__(self):
        self.frames: list[dict] = []
        self.events: list[dict] = []
        self.closed = False

    def put(self, msg, text):
        self.frames.append(msg)

    def status(self, msg, text):
        self.events.append(msg)

    def close(self):
        self.closed = True


def wait_for(cond, timeout: float, what: str, step: float = 0.02):
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
