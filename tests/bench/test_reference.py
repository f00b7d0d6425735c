"""`emotrack bench --reference OTHER.onnx` times a second model in the same sitting, taking
turns with the first, so that two models' speeds can be compared where the host's speed
drifts between sittings (the card prints the reference beside the shipped model's numbers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

V1 = Path(__file__).resolve().parents[2] / "docs" / "model" / "emotrack-vae-lstm-v1.onnx"


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotrack.realtime.cli", "bench", *args],
                          capture_output=True, text=True, timeout=300)


def test_reference_is_timed_in_the_same_rounds():
    r = bench("--frames", "30", "--audio-seconds", "15", "--reference", str(V1), "--format", "json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    ref = res["reference"]
    assert ref["model"] == "emotrack-vae-lstm 1" and ref["file"] == str(V1)
    for part in (res, ref):  # both: 30 steps and 15 s of audio (30 predictions), in three rounds each
        assert part["step_ms"]["frames"] == 30 and part["step_ms"]["rounds"] == 3
        assert part["analyze"]["predictions"] == 30 and part["analyze"]["rounds"] == 3
        assert 0 < part["step_ms"]["median_ms"] <= part["step_ms"]["max_ms"]
        assert part["analyze"]["x_realtime"] > 0
    table = bench("--frames", "30", "--audio-seconds", "15", "--reference", str(V1))
    assert table.returncode == 0 and "emotrack-vae-lstm 1 (reference): model step" in table.stdout


def test_reference_refuses_what_it_cannot_time(tmp_path):
    r = bench("--no-model", "--reference", str(V1))
    assert r.returncode == 2 and "drop --no-model" in r.stderr
    r = bench("--reference", str(tmp_path / "nope.onnx"))
    assert r.returncode == 2 and "--reference" in r.stderr and "nope.onnx" in r.stderr


def test_graph_step_timer_times_each_graph_given():
    """scripts/time_graph_step.py: the graphs alone, taking turns, each from its own state."""
    shipped = Path(__file__).resolve().parents[2] / "assets" / "emotrack-vae-lstm.onnx"
    r = subprocess.run([sys.executable, str(V1.parents[2] / "scripts" / "time_graph_step.py"), str(shipped), str(V1),
                        "--blocks", "2", "--steps", "5"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(shipped), str(V1)]
    assert all("(10 steps)" in line and float(line.split("median ")[1].split(" ms")[0]) > 0 for line in lines)


def test_analyze_at_another_rate_reads_a_file_at_that_rate():
    """--analyze-rate 48000: the FLAC is written at 48 kHz (the many-phase resampler's path);
    the predictions are those of the same length of audio."""
    r = bench("--frames", "10", "--audio-seconds", "15", "--analyze-rate", "48000", "--format", "json")
    assert r.returncode == 0, r.stderr[-2000:]
    a = json.loads(r.stdout)["analyze"]
    assert a["format"] == "FLAC 48 kHz stereo" and a["predictions"] == 30 and a["x_realtime"] > 0
    r = bench("--no-model", "--analyze-rate", "100")
    assert r.returncode == 2 and "--analyze-rate 100 Hz" in r.stderr and "48000" in r.stderr


def test_step_at_another_input_rate_includes_the_resampler(monkeypatch):
    """--step-rate 48000: each timed step is 0.5 s of 48 kHz audio through the tracker's
    resampler (one prediction a step, as live input at that rate gives); the rate is in the
    result, with --reference too; a rate at which 0.5 s is no whole number of samples is refused."""
    from emotrack.realtime.bench import model as bm
    from emotrack.realtime.core import tracker

    seen = []
    real = tracker.StreamingResampler.process

    def spy(self, x):
        seen.append((self.sr_in, len(x)))
        return real(self, x)

    monkeypatch.setattr(tracker.StreamingResampler, "process", spy)
    m = bm.load_model(None, threads=1)
    res = bm.bench_step(m, 12, rate=48000)
    assert res["frames"] == 12 and res["input_rate"] == 48000 and res["median_ms"] > 0
    assert seen[-12:] == [(48000, 24000)] * 12  # the steps' own blocks, resampled inside the step
    assert bm.bench_step(m, 3)["input_rate"] == 22050  # by default: the model's rate, nothing resampled
    r = bench("--frames", "30", "--audio-seconds", "15", "--step-rate", "44100", "--reference", str(V1),
              "--format", "json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["step_ms"]["input_rate"] == res["reference"]["step_ms"]["input_rate"] == 44100
    table = bench("--frames", "10", "--audio-seconds", "15", "--step-rate", "48000")
    assert table.returncode == 0 and "input at 48 kHz resampled in the step" in table.stdout
    r = bench("--frames", "10", "--step-rate", "11025")
    assert r.returncode == 2 and "5512.5 samples" in r.stderr and "44100" in r.stderr
