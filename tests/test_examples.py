"""The client examples in docs/examples work against a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import start_engine

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
LINE = re.compile(r"^t=\s*([\d.]+) s\s+valence ([-+]?\d\.\d\d)\s+arousal ([-+]?\d\.\d\d)$")


def _node() -> list[str] | None:
    node = shutil.which("node")
    if not node:
        return None
    major = int(subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip().lstrip("v").split(".")[0])
    return [node] if major >= 22 else [node, "--experimental-websocket"] if major >= 20 else None


@pytest.mark.parametrize("lang", ["python", "js"])
def test_client_example_subscribes_and_prints(model, demo_path, lang):
    from emotrack.realtime.live.sources import FileSource

    if lang == "python":
        cmd = [sys.executable, str(EXAMPLES / "client.py")]
    else:
        node = _node()
        if node is None:
            pytest.skip("no Node.js >= 20 here (the example needs its built-in WebSocket)")
        cmd = [*node, str(EXAMPLES / "client.mjs")]
    engine, server = start_engine(model, FileSource(demo_path), [], hop=0.1)
    p = subprocess.Popen([*cmd, server.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        assert first.startswith("# emotrack"), first + p.stderr.read() if p.poll() is not None else first
        engine.start()
        lines = [p.stdout.readline().strip() for _ in range(6)]
    finally:
        p.kill()
        engine.stop()
    got = [LINE.match(x) for x in lines]
    assert all(got), lines
    ts = [float(m.group(1)) for m in got]
    assert ts == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]  # 2 per second out of 10: the subscription took effect
