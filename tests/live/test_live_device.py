"""The live tracker on real audio input: a sounddevice InputStream on a PulseAudio null
sink, the ring buffer, the worker and a real WebSocket client on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from ..conftest import ListSink, WsClient, noise, start_engine, wait_for


def _record_reads(source) -> list[np.ndarray]:
    """Keep a copy of the audio the worker takes from the ring (test instrumentation)."""
    got: list[np.ndarray] = []
    read = source.ring.read

    def wrapped(*a, **k):
        chunks = read(*a, **k)
        got.extend(c.data.copy() for c in chunks)
        return chunks

    source.ring.read = wrapped
    return got


def test_device_capture_equals_analyze(pulse, model, demo_audio, tmp_path):
    """Music played into the null sink (48 kHz stereo) comes out of the live pipeline with the
    numbers `emotrack analyze` gives for the same audio. The capture is bit-exact (checked),
    and the live path (ring, resampling 48 -> 22.05 kHz, downmix, framing, model) is the same
    arithmetic as analyze, so the only allowed difference is the 5-decimal JSON rounding."""
    from emotrack.realtime.live.sources import DeviceSource

    y, sr = demo_audio
    assert sr == 48000
    sig = np.concatenate([np.zeros((int(0.3 * sr), 2), np.float32), noise(0.25, sr, seed=3, channels=2),
                          y[: 10 * sr], np.zeros((int(0.3 * sr), 2), np.float32)])
    wav = tmp_path / "play.wav"
    sf.write(wav, sig, sr, subtype="PCM_16")
    played, _ = sf.read(wav, dtype="float32", always_2d=True)

    src = DeviceSource("pulse", sample_rate=48000, channels=2)
    captured = _record_reads(src)
    sink = ListSink()
    engine, server = start_engine(model, src, [sink])
    client = WsClient(server.url)
    try:
        engine.start()
        wait_for(lambda: src.ring.written_samples > 0, 10, "the first audio callback")
        p = pulse.play(wav)
        assert p.wait(30) == 0, p.stderr.read()
        time.sleep(1.0)
    finally:
        engine.stop()
        client.close()

    audio = np.concatenate(captured)
    # find the played file in the capture by its noise marker, then demand bit-exactness
    marker = played[int(0.3 * sr): int(0.55 * sr), 0]
    corr = np.correlate(audio[:, 0], marker, mode="valid")
    off = int(np.argmax(corr)) - int(0.3 * sr)
    assert off >= 0
    seg = audio[off: off + len(played)]
    assert np.array_equal(seg, played), "the captured audio differs from what was played"

    # analyze the exact audio the worker consumed, through the CLI
    cap = tmp_path / "captured.wav"
    sf.write(cap, audio, sr, subtype="FLOAT")
    r = subprocess.run([sys.executable, "-m", "emotrack.realtime.cli", "analyze", str(cap), "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ref = [json.loads(line) for line in r.stdout.splitlines()]
    live = sink.frames
    assert len(live) == len(ref) >= 20
    for a, b in zip(live, ref, strict=True):
        assert a["t"] == b["t"]
        for k in ("valence", "arousal", "valence_std", "arousal_std"):
            # both sides are rounded to 5 decimals (up to 0.5e-5 each) from values that agree to
            # ~1e-6: 2e-5 bounds that without flipping on a rounding boundary
            assert abs(a[k] - b[k]) <= 2e-5, (a, b)

    # the WebSocket client saw hello first, then every frame in order with the same values
    assert client.messages[0]["type"] == "hello" and client.messages[0]["source"]["sample_rate"] == 48000
    frames = client.frames()
    assert [f["seq"] for f in frames] == list(range(len(live)))
    assert [(f["t"], f["valence"], f["arousal"]) for f in frames] == [(f["t"], f["valence"], f["arousal"]) for f in live]
    lat = engine.latency.summary()
    assert lat["count"] == len(live) and 0 < lat["median_ms"] < 1000


def test_slow_worker_counts_overflows(pulse, model):
    """A worker slowed on purpose: the ring overflows, drops are counted, predictions go on with
    stream time still on the 0.5 s grid, and nothing crashes."""
    from emotrack.realtime.live.sources import DeviceSource

    src = DeviceSource("pulse", sample_rate=48000, channels=2, ring_seconds=0.3)
    sink = ListSink()
    engine, server = start_engine(model, src, [sink])
    push = engine.tracker.push
    calls = [0]

    def slow_push(block):
        calls[0] += 1
        if calls[0] % 40 == 0:
            time.sleep(0.6)  # a stall twice as long as the 0.3 s ring
        return push(block)

    engine.tracker.push = slow_push
    try:
        engine.start()
        wait_for(lambda: src.ring.overflows > 0 and len(sink.frames) >= 3, 20, "overflows and predictions")
    finally:
        engine.stop()
    assert engine.error is None
    assert src.ring.dropped_samples > 0 and src.ring.overflows > 0
    ts = [f["t"] for f in sink.frames]
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))
    assert all(abs(t * 2 - round(t * 2)) < 1e-6 for t in ts)  # on the grid despite the gaps
    # the stream time counts the dropped audio: frames straddling a gap are skipped
    assert any(b - a > 0.5 + 1e-6 for a, b in zip(ts, ts[1:], strict=False))
    assert sink.frames[-1]["counters"]["overflows"] > 0


def test_device_loss_and_return(pulse, model):
    """Unloading the null sink mid-stream is reported (the WebSocket stays up); loading it
    again resumes capture and predictions, with stream time counting the outage."""
    from emotrack.realtime.live.sources import DeviceSource

    src = DeviceSource("pulse", sample_rate=48000, channels=2, retry_seconds=0.5)
    sink = ListSink()
    engine, server = start_engine(model, src, [sink])
    client = WsClient(server.url)
    try:
        engine.start()
        wait_for(lambda: len(sink.frames) >= 2, 15, "predictions before the loss")
        pulse.unload_sink()
        wait_for(lambda: any(e["event"] == "device_lost" for e in sink.events), 10, "device_lost")
        n_lost = len(sink.frames)
        t_lost = sink.frames[-1]["t"]
        time.sleep(1.5)
        assert src.state == "lost" and len(sink.frames) == n_lost  # nothing is invented meanwhile
        assert client.closed_reason is None  # the server kept the client
        pulse.load_sink()
        wait_for(lambda: any(e["event"] == "device_resumed" for e in sink.events), 15, "device_resumed")
        wait_for(lambda: len(sink.frames) >= n_lost + 2, 15, "predictions after the return")
    finally:
        engine.stop()
        client.close()
        if "virt" not in pulse.pactl("list", "short", "sinks"):
            pulse.load_sink()
    after = sink.frames[n_lost:]
    assert after[0]["t"] >= t_lost + 1.5  # the outage is counted in stream time
    assert after[0]["counters"]["device_losses"] == 1
    events = [m["event"] for m in client.messages if m["type"] == "status"]
    assert "device_lost" in events and "device_resumed" in events
    assert client.frames()[-1]["seq"] == sink.frames[-1]["seq"]


def test_devices_command_lists_pulse(pulse):
    r = subprocess.run([sys.executable, "-m", "emotrack.realtime.cli", "devices", "--json"],
                       capture_output=True, text=True, timeout=60, env=pulse.env)
    assert r.returncode == 0, r.stderr
    names = [d["name"] for d in json.loads(r.stdout)]
    assert "pulse" in names


def test_unknown_device_lists_the_available_ones(pulse):
    from emotrack.realtime.live.sources import DeviceError, resolve_device

    with pytest.raises(DeviceError, match=r"no input device matches 'nosuchmic'.*pulse"):
        resolve_device("nosuchmic")
    with pytest.raises(DeviceError, match=r"input device 97 not found"):
        resolve_device("97")
    assert resolve_device("puls")["name"] == "pulse"
