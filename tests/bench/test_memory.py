"""`emotrack bench --memory` measures the model it is given: the live process really runs it
(every 0.5 s of the input is recorded, and streamed to a WebSocket client) and its resident
memory is sampled while it does. The accurate model's taggers run one window per call:
onnxruntime's arena keeps what the largest call needed (eight windows a call held 1.1 GB,
one holds about 300 MB in all)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("model", [None, "accurate"])
def test_bench_memory_runs_the_model_given(model):
    # long enough that the live process streams for a second or more after it starts serving
    # (the default model runs ~300x real time under --fast, the accurate one ~11x)
    seconds = 20.0 if model == "accurate" else 600.0
    args = ["bench", "--no-model", "--memory", "--memory-seconds", str(seconds), "--format", "json"]
    r = subprocess.run([sys.executable, "-m", "emotrack.realtime.cli", *args, *(["--model", model] if model else [])],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout)["memory"]
    assert m["model"] == (model or "default")
    assert m["predictions_recorded"] == seconds / 0.5
    # the client connects while --fast is already running: it may miss the first frames (how
    # many depends on the machine), but once connected it gets the stream to its last frame
    assert 1 <= m["frames_received"] <= m["predictions_recorded"], m
    assert m["last_seq_received"] == m["predictions_recorded"] - 1, m
    # sampled while it ran; a process that loaded the model and its libraries holds tens of MB
    assert m["samples"] >= 1 and m["rss_max_mb"] > 30
    assert m["rss_max_mb"] < (600 if model == "accurate" else 250), m  # measured: ~305 and ~110 MB
