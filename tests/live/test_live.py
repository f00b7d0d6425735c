"""The live tracker on a file source: protocol messages against the JSON Schema, --hop,
clean shutdown, slow clients, the window rendered off screen, and `emotrack live` as a
user runs it (Ctrl-C, kill -9, faults)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading

import numpy as np
import pytest
import soundfile as sf

from ..conftest import (
    EMOTRACK,
    ListSink,
    WsClient,
    free_port,
    noise,
    schema_validator,
    start_engine,
    wait_for,
)


def _emotrack_threads():
    return [t for t in threading.enumerate() if t.name.startswith("emotrack")]


def _sockets() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def test_messages_follow_the_schema_and_shutdown_is_clean(model, demo_path):
    from emotrack.realtime.live.sources import FileSource

    threads0, sockets0 = len(_emotrack_threads()), _sockets()
    src = FileSource(demo_path, fast=True)
    sink = ListSink()
    engine, server = start_engine(model, src, [sink], duration=6.0)
    port = server.port
    client = WsClient(server.url)
    client.ws.send(json.dumps({"type": "ping", "id": 7}))
    client.ws.send("not json")
    client.ws.send(json.dumps({"type": "subscribe-everything"}))
    engine.start()
    assert engine.wait(30)
    wait_for(lambda: any(m["type"] == "status" for m in client.messages), 5, "the end_of_input status")
    engine.stop()
    client.close()

    v = schema_validator()
    kinds = set()
    for m in client.messages:
        errors = list(v.iter_errors(m))
        assert not errors, (m, [e.message for e in errors])
        kinds.add(m["type"])
    assert kinds == {"hello", "frame", "status", "pong", "error"}
    assert client.messages[0]["type"] == "hello" and client.messages[0]["hop"] == 0.5
    assert [f["seq"] for f in client.frames()] == list(range(12))  # 6 s of audio
    assert any(m.get("event") == "end_of_input" for m in client.messages)
    pong = next(m for m in client.messages if m["type"] == "pong")
    assert pong["id"] == 7
    # the schema really constrains: a frame without seq, or valence out of range, fails
    bad = dict(client.frames()[0])
    del bad["seq"]
    assert list(v.iter_errors(bad))
    assert list(v.iter_errors({**client.frames()[0], "valence": 1.5}))

    # clean shutdown: no emotrack thread, no socket left; the port can be bound again
    wait_for(lambda: len(_emotrack_threads()) == threads0, 5, "threads to end")
    wait_for(lambda: _sockets() <= sockets0, 5, "sockets to close")
    _port_is_free(port)
    assert sink.closed


def test_accurate_model_live_frames_carry_the_taggers_descriptors(demo_path):
    """--model accurate through the live engine: every message valid, the taggers' own tag
    probabilities in every frame, named as the hello says."""
    from emotrack.realtime.core.model import load_model
    from emotrack.realtime.live.sources import FileSource

    model = load_model("accurate")
    engine, server = start_engine(model, FileSource(demo_path, fast=True), [ListSink()], duration=4.0)
    client = WsClient(server.url)
    engine.start()
    assert engine.wait(60)
    wait_for(lambda: any(m["type"] == "status" for m in client.messages), 10, "the end_of_input status")
    engine.stop()
    client.close()
    v = schema_validator()
    assert all(not list(v.iter_errors(m)) for m in client.messages)
    hello, frames = client.messages[0], client.frames()
    assert hello["model"]["name"] == "emotrack-accurate" and len(frames) == 8
    assert all(set(f["descriptors"]) == set(model.descriptor_names) for f in frames)
    assert len({round(f["descriptors"]["soft"], 6) for f in frames}) > 1  # they follow the music


def test_hop_0_1_equals_phase_shifted_half_second_runs(model, tmp_path):
    """--hop 0.1 gives five times the predictions; those of phase k equal a 0.5 s-hop run on the
    audio from k * 0.1 s on (at 22.05 kHz mono no resampling, so exactly)."""
    from emotrack.realtime.core.tracker import stream_blocks
    from emotrack.realtime.live.engine import LiveEngine
    from emotrack.realtime.live.sources import FileSource

    sr = 22050
    y = noise(8.0, sr, seed=11)[:, 0] * np.repeat(np.linspace(0.2, 1.5, 16), sr // 2)[: 8 * sr]
    wav = tmp_path / "x.wav"
    sf.write(wav, y, sr, subtype="FLOAT")

    def live(hop):
        sink = ListSink()
        e = LiveEngine(model, FileSource(wav, fast=True), hop=hop, sinks=[sink])
        e.start()
        assert e.wait(30)
        e.stop()
        return sink.frames

    fast, slow = live(0.1), live(0.5)
    assert len(slow) == 16 and len(fast) == 76  # frame ends 0.5, 0.6, ..., 8.0
    assert np.allclose([f["t"] for f in fast], [0.5 + 0.1 * i for i in range(76)], atol=1e-6, rtol=0)
    for k in range(5):
        ref = list(stream_blocks(model, sr, [y[round(k * 0.1 * sr):]]))
        mine = [f for i, f in enumerate(fast) if i % 5 == k]
        assert len(mine) == len(ref) > 10
        for f, p in zip(mine, ref, strict=True):
            assert f["t"] == round(p.t + k * 0.1, 4)
            assert abs(f["valence"] - p.valence) <= 5e-6 and abs(f["arousal"] - p.arousal) <= 5e-6
    # phase 0 is the plain 0.5 s run
    assert [(f["valence"], f["arousal"]) for f in fast[::5]] == [(f["valence"], f["arousal"]) for f in slow]


def _raw_ws_client(port: int) -> socket.socket:
    """A WebSocket client that stops reading after the handshake (a frozen app)."""
    import base64

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    return s


def test_stuck_client_is_skipped_then_dropped_others_get_everything(model, demo_path):
    """A client that never reads fills its socket; it is skipped, then disconnected, while a
    healthy client receives every frame in order and the worker never waits."""
    from emotrack.realtime.live.sources import FileSource

    src = FileSource(demo_path, loop=True)  # real time, 10 frames/s
    engine, server = start_engine(model, src, [], hop=0.1)
    server.max_buffer, server.stuck_seconds, server.sndbuf = 2048, 0.5, 4096
    stuck = _raw_ws_client(server.port)  # completes the handshake, then never reads
    good = WsClient(server.url)
    engine.start()
    try:
        wait_for(lambda: server.dropped_clients == 1, 60, "the stuck client to be dropped")
        n = engine.seq
        wait_for(lambda: len(good.frames()) >= n + 5, 5, "frames after the drop")
    finally:
        engine.stop()
        good.close()
        stuck.close()
    seqs = [f["seq"] for f in good.frames()]
    assert seqs == list(range(len(seqs))) and len(seqs) == engine.seq
    assert server.skipped_messages > 0
    assert engine.latency.summary()["p99_ms"] < 1000


def test_window_draws_trail_and_point(model, demo_path, tmp_path, monkeypatch):
    """The window, rendered off screen after a few seconds of music, shows the current point
    and the trail (found by their colours in the valence-arousal plane)."""
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    from emotrack.realtime.live.engine import LiveEngine
    from emotrack.realtime.live.sinks.gui import POINT, TRAIL, GuiSink, render_png
    from emotrack.realtime.live.sources import FileSource

    sink = GuiSink(trail_seconds=10)
    e = LiveEngine(model, FileSource(demo_path, fast=True), hop=0.1, sinks=[sink], duration=12.0)
    e.start()
    png = tmp_path / "live-window.png"
    img = render_png(e, sink, str(png), seconds=3.0)
    e.stop()
    assert png.stat().st_size > 10_000
    w, h = img.width(), img.height()
    ptr = img.convertToFormat(img.Format.Format_RGB888)
    arr = np.frombuffer(ptr.constBits(), np.uint8).reshape(h, ptr.bytesPerLine())[:, : w * 3].reshape(h, w, 3)
    plane = arr[: int(h * 0.55)].astype(int)

    def count(hex_colour, tol=40):
        c = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(plane - c).sum(axis=2) < tol).sum())

    assert count(POINT) > 300, "the current point is not drawn"
    # the trail fades into the background with age, so it is found by its hue (cyan: green and
    # blue well above red), which nothing else in the plane has (grey grid and text, yellow point)
    r, g, b = plane[..., 0], plane[..., 1], plane[..., 2]
    assert TRAIL.lower() == "#4dd0e1" and int(((g - r > 40) & (b - r > 40)).sum()) > 50, "the trail is not drawn"
    status = arr[int(h * 0.9):]
    assert (status.max(axis=2) > 150).sum() > 500, "the status line is empty"
    shots = os.environ.get("EMOTRACK_SCREENSHOTS")
    if shots:  # keep the picture to look at: EMOTRACK_SCREENSHOTS=docs/img pytest ...
        img.save(os.path.join(shots, "live-window.png"))


# ---------------------------------------------------------------------------- the CLI


def _live(*args, env=None, **kw):
    return subprocess.Popen(EMOTRACK + ["live", "--no-gui", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _port_is_free(port: int) -> None:
    """A new server can listen on ``port`` (as a restarted emotrack would, SO_REUSEADDR)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    s.close()


def test_cli_ctrl_c_stops_cleanly_and_keeps_the_recording(demo_path, tmp_path):
    rec = tmp_path / "run.csv"
    port = free_port()
    p = _live("--input", str(demo_path), "--record", str(rec), "--ws", f"127.0.0.1:{port}")
    try:
        wait_for(lambda: rec.exists() and len(rec.read_text().splitlines()) >= 5, 60, "recorded rows")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert "stopped after" in err
    rows = rec.read_text().splitlines()
    assert rows[0].startswith("seq,t,wall,valence,arousal")
    printed = [json.loads(line) for line in out.splitlines()]
    assert len(rows) - 1 == len(printed) >= 4  # every prediction made it to the file
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(len(rows) - 1))
    _port_is_free(port)


def test_cli_kill_9_loses_no_recorded_line(demo_path, tmp_path):
    rec = tmp_path / "run.jsonl"
    p = _live("--input", str(demo_path), "--fast", "--loop", "--hop", "0.1", "--record", str(rec),
              "--ws", "off", "--quiet")
    try:
        wait_for(lambda: rec.exists() and rec.stat().st_size > 20_000, 60, "a recording")
        p.kill()
        p.wait(10)
    finally:
        p.kill()
    lines = rec.read_text().splitlines()
    recs = [json.loads(line) for line in lines]  # every line is whole
    assert [r["seq"] for r in recs] == list(range(len(recs)))


def test_cli_port_in_use(demo_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), "--ws", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=60)
    finally:
        s.close()
    assert r.returncode == 5
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr and "--ws 127.0.0.1:" in r.stderr


def test_cli_refusing_to_start_leaves_no_recording(demo_path, tmp_path):
    """A port in use is found before --record creates its file, so a second try is not
    refused for a file the failed one left behind."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    rec = tmp_path / "r.csv"
    try:
        r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), "--record", str(rec),
                                       "--ws", f"127.0.0.1:{s.getsockname()[1]}"],
                           capture_output=True, text=True, timeout=60)
    finally:
        s.close()
    assert r.returncode == 5 and not rec.exists()


@pytest.mark.parametrize("case", ["model", "input", "record", "hop", "fast", "device"])
def test_cli_faults_say_what_to_do(case, tmp_path, demo_path):
    args = ["--input", str(demo_path), "--ws", "off"]
    if case == "model":
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"\x08\x07not a model")
        args += ["--model", str(bad)]
        code, msg = 2, "cannot load this model"
    elif case == "input":
        bad = tmp_path / "broken.mp3"
        bad.write_bytes(b"ID3" + os.urandom(2000))
        args = ["--input", str(bad), "--ws", "off"]
        code, msg = 3, "cannot decode"
    elif case == "record":
        existing = tmp_path / "old.jsonl"
        existing.write_text('{"seq": 0}\n')
        args += ["--record", str(existing)]
        code, msg = 2, "already exists"
    elif case == "hop":
        args += ["--hop", "0.3"]
        code, msg = 2, "--hop must divide"
    elif case == "fast":
        args = ["--fast", "--ws", "off", "--device", "0"]
        code, msg = 2, "--fast only applies to --input"
    else:
        env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent/pulse"}
        r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--device", "no-such-device", "--ws", "off"],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 4, r.stderr
        assert "--input FILE" in r.stderr or "available input devices" in r.stderr
        return
    r = subprocess.run(EMOTRACK + ["live", "--no-gui", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == code, r.stderr
    assert msg in r.stderr
    if case == "record":
        assert existing.read_text() == '{"seq": 0}\n'  # nothing already recorded is lost


def test_cli_without_any_device_plays_the_demo():
    """The README's first command on a machine with no sound card still shows the tracker."""
    env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent/pulse"}
    r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--fast", "--duration", "3", "--ws", "off"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert "playing the bundled demo instead" in r.stderr
    assert [json.loads(line)["t"] for line in r.stdout.splitlines()] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def test_busy_device_message():
    import sounddevice as sd
    from emotrack.realtime.live.sources import explain_portaudio

    dev = {"index": 3, "name": "USB Audio", "sample_rate": 48000.0, "channels": 2}
    e = sd.PortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
    msg = explain_portaudio(e, dev, 48000)
    assert "busy" in msg and "--device" in msg and "'USB Audio'" in msg
    e = sd.PortAudioError("Error opening InputStream: Invalid sample rate [PaErrorCode -9997]")
    assert "--samplerate" in explain_portaudio(e, dev, 22050)


def test_cli_without_display_falls_back_to_headless(demo_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run(EMOTRACK + ["live", "--input", str(demo_path), "--fast", "--duration", "2", "--ws", "off"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert "no display found" in r.stderr
    assert len(r.stdout.splitlines()) == 4


def test_cli_window_offscreen_stops_on_ctrl_c(demo_path, tmp_path):
    """`emotrack live` with its window (rendered off screen): it runs, broadcasts, and Ctrl-C
    closes the window and stops everything with exit code 0."""
    port = free_port()
    rec = tmp_path / "w.jsonl"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    p = subprocess.Popen(EMOTRACK + ["live", "--input", str(demo_path), "--ws", f"127.0.0.1:{port}",
                                     "--record", str(rec)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: rec.exists() and len(rec.read_text().splitlines()) >= 3, 60, "predictions")
        client = WsClient(f"ws://127.0.0.1:{port}")
        wait_for(lambda: len(client.frames()) >= 2, 10, "frames over the WebSocket")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        client._t.join(5)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert out == ""  # the window replaces the JSON lines on stdout
    assert client.closed_reason is not None  # the server closed the connection on the way out
    assert "stopped after" in err
