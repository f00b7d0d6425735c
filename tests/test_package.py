"""The wheel carries the model, the demo audio and its card, and installs without torch."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return next(out.glob("emotrack-*.whl"))


def test_wheel_contains_model_and_assets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("emotrack/assets/emotrack-vae-lstm.onnx", "emotrack/assets/emotrack-vae-lstm.card.json",
              "emotrack/assets/MODEL_CARD.md", "emotrack/assets/emotrack-song.onnx", "emotrack/assets/emotrack-song.card.json",
              "emotrack/assets/demo.opus", "emotrack/assets/DEMO_AUDIO.txt", "emotrack/assets/MODEL_LICENSE.md",
              "emotrack/__init__.py", "emotrack/realtime/core/model.py", "emotrack/models/train.py",
              "emotrack/export/onnx_export.py", "emotrack/assets/protocol-v1.schema.json",
              *(f"emotrack/assets/dashboard/{n}" for n in ("index.html", "dashboard.js", "dashboard.css", "favicon.svg"))):
        assert f in names, f
    assert not any(n.startswith(("realtime/", "models/", "tests/")) for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)  # the code's licence


def test_runtime_requirements_exclude_torch(wheel):
    meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    runtime = [line for line in text.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert runtime and not any("torch" in line for line in runtime)
    # the headless install: no Qt and no FFmpeg unless asked for (the gui and ffmpeg extras)
    assert not any(p in line for line in runtime for p in ("PySide6", "pyqtgraph", "Requires-Dist: av"))
    assert any('extra == "gui"' in line and "PySide6" in line for line in text.splitlines())
    assert any(line.startswith("Requires-Dist: av") and 'extra == "ffmpeg"' in line for line in text.splitlines())
    assert any("torch==2.13.0" in line and 'extra == "train"' in line for line in text.splitlines())


def test_shipped_card_matches_shipped_model():
    import hashlib
    import json

    for name in ("emotrack-vae-lstm", "emotrack-song"):
        card = json.loads((ROOT / "assets" / f"{name}.card.json").read_text())
        onnx_bytes = (ROOT / "assets" / f"{name}.onnx").read_bytes()
        assert card["sha256"] == hashlib.sha256(onnx_bytes).hexdigest(), name
