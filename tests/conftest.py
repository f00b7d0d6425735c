"""Shared fixtures and helpers of every test package: the shipped model, the demo clip, a
private feature cache, a PulseAudio server, a sink that keeps what it gets, a WebSocket
client, engines with servers, the schema validator, the command line."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from emotrack.realtime.assets import demo_path as shipped_demo
from emotrack.realtime.assets import schema_path
from emotrack.realtime.bench.live import free_port  # noqa: F401  (a helper of the tests too)
from emotrack.realtime.core.threads import single_thread_blas
from emotrack.realtime.live.engine import LiveEngine
from emotrack.realtime.net.server import WebSocketServer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .pulse import PulseServer

single_thread_blas()

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("EMOTRACK_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def model():
    from emotrack import load_model

    return load_model()


@pytest.fixture(scope="session")
def demo_path() -> Path:
    return shipped_demo()


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

    def frame(self, msg, text):
        self.frames.append(msg)

    def status(self, msg, text):
        self.events.append(msg)

    def close(self):
        self.closed = True


class ModelStepper:
    """A model fed frame by frame that keeps its recurrent state (what a Tracker does,
    without the audio path): ``step`` advances, ``reset`` forgets."""

    def __init__(self, model):
        self.model = model
        self.reset()

    def reset(self):
        self.state = self.model.zero_state()

    def step(self, mel, chroma=None):
        out, self.state = self.model.run(mel, self.state, chroma)
        return out


def wait_for(cond, timeout: float, what: str, step: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


EMOTRACK = [sys.executable, "-m", "emotrack.realtime.cli"]

# the bundled demo: its length and how many 0.5 s predictions it gives
DEMO_SECONDS = sf.info(str(ROOT / "assets" / "demo.opus")).duration
DEMO_FRAMES = int(DEMO_SECONDS / 0.5 + 1e-6)


def schema_validator():
    """The protocol's JSON Schema, checked itself, as a validator."""
    import jsonschema

    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


class WsClient:
    """A real WebSocket client on its own thread, keeping every message it receives."""

    def __init__(self, url: str):
        self.url = url
        self.messages: list[dict] = []
        self.closed_reason = None
        self.ws = None
        self._ready = threading.Event()
        self.error: Exception | None = None
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        assert self._ready.wait(10), f"could not connect to {url}"
        if self.error is not None:
            raise OSError(f"could not connect to {url}: {self.error}")

    def _run(self):
        try:
            with connect(self.url, compression=None, open_timeout=5) as ws:
                self.ws = ws
                self._ready.set()
                for raw in ws:
                    self.messages.append(json.loads(raw))
        except ConnectionClosed as e:
            self.closed_reason = e
        except OSError as e:  # refused: the caller is told by __init__
            self.error = e
            self._ready.set()
        self.closed_reason = self.closed_reason or "closed"

    def frames(self):
        return [m for m in self.messages if m["type"] == "frame"]

    def close(self):
        self.ws.close()
        self._t.join(5)


def start_engine(model, source, sinks, **kw):
    """An engine feeding ``sinks`` and a WebSocket server on a free port (started)."""
    server = WebSocketServer("127.0.0.1", 0)
    engine = LiveEngine(model, source, sinks=[*sinks, server], **kw)
    engine.serve(server)
    server.start()
    return engine, server


CHROMIUM = "/usr/bin/chromium"  # Debian's; scripts/setup.sh installs it
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason=f"{CHROMIUM} not installed (scripts/setup.sh installs it on Debian)")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def serve_dashboard(model, source, ws_port=0, http_port=0, start=True, **kw):
    """An engine and a server with the dashboard's HTTP side, on free ports."""
    server = WebSocketServer("127.0.0.1", ws_port, http=("127.0.0.1", http_port), **kw)
    engine = LiveEngine(model, source, sinks=[server])
    engine.serve(server)
    server.start()
    if start:
        engine.start()
    return engine, server


def http_get(url, method="GET", headers=None):
    """(status, headers, body) of an HTTP request, errors included."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def ramp(a, b, n):
    """A straight line from a to b in both dimensions, n points."""
    return np.linspace(a, b, n)[:, None] * np.ones((1, 2))


# The golden trajectory on an emulated Haswell (tests/core/test_model.py): ~100 s of one core
# under qemu-user, so it starts as soon as the suite is collected, runs beside the other tests
# (which keep the other core), and its test, moved to the end, collects the answer.
HASWELL_TEST = "test_golden_trajectory_on_a_cpu_without_vnni"
_HASWELL_RUN = """
import itertools, json
from emotrack import load_model, stream_file
from emotrack.realtime.assets import demo_path
ps = itertools.takewhile(lambda p: p.t <= 20.0, stream_file(load_model(), demo_path()))
print(json.dumps([p.to_dict() for p in ps]))
"""  # stops reading the 75 s demo after 20 s: under emulation a frame costs seconds
_haswell = pytest.StashKey[subprocess.Popen]()


def haswell_available() -> bool:
    return platform.machine() == "x86_64" and shutil.which("qemu-x86_64") is not None


def _start_haswell() -> subprocess.Popen:
    return subprocess.Popen(["qemu-x86_64", "-cpu", "Haswell", sys.executable, "-c", _HASWELL_RUN],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def haswell_golden(config) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) of the shipped model on the demo's first 20 s on an emulated
    Haswell: the run started at collection, or one started now."""
    proc = config.stash.get(_haswell, None) or _start_haswell()
    try:
        out, err = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return out, err, proc.returncode


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.name == HASWELL_TEST)  # stable: the others keep their order


def pytest_collection_finish(session):
    if (haswell_available() and not session.config.option.collectonly
            and any(item.name == HASWELL_TEST for item in session.items)):
        session.config.stash[_haswell] = _start_haswell()


def pytest_sessionfinish(session):
    proc = session.config.stash.get(_haswell, None)
    if proc is not None and proc.poll() is None:  # the suite stopped before its test ran
        proc.kill()
        proc.communicate()
