"""Other programs on the stream: OSC to a real OSC server, `emotrack listen`, and the
access rules (token, browser origin, binding off loopback)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

import pytest

from ..conftest import EMOTRACK, ListSink, WsClient, free_port, wait_for

TOKEN = "s3cret-token"


def test_osc_receives_what_the_websocket_carries(demo_path):
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    got: dict[str, list] = {}
    disp = Dispatcher()
    disp.set_default_handler(lambda addr, *a: got.setdefault(addr, []).append(a))
    osc = ThreadingOSCUDPServer(("127.0.0.1", 0), disp)
    t = threading.Thread(target=osc.serve_forever, daemon=True)
    t.start()
    port = free_port()
    p = subprocess.Popen(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), "--ws", f"127.0.0.1:{port}",
                                     "--osc", f"127.0.0.1:{osc.server_address[1]}", "--osc-prefix", "/va1",
                                     "--duration", "6", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = None
    try:
        wait_for(lambda: _listening(port), 30, "the WebSocket server")
        client = WsClient(f"ws://127.0.0.1:{port}")
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        wait_for(lambda: len(got.get("/va1/seq", [])) >= 12, 5, "12 OSC predictions")
    finally:
        p.kill()
        osc.shutdown()
        if client:
            client.close()
    ws = {f["seq"]: f for f in client.frames()}
    assert len(ws) >= 10
    seqs = [a[0] for a in got["/va1/seq"]]
    assert seqs == list(range(12))
    for (v, a), (seq,), (tt,), (vs, _) in zip(got["/va1/va"], got["/va1/seq"], got["/va1/t"], got["/va1/std"], strict=True):
        if seq in ws:  # OSC floats are 32-bit
            f = ws[seq]
            assert abs(v - f["valence"]) < 1e-6 and abs(a - f["arousal"]) < 1e-6
            assert abs(tt - f["t"]) < 1e-6 and abs(vs - f["valence_std"]) < 1e-6
    assert [x[0] for x in got["/va1/valence"]] == [x[0] for x in got["/va1/va"]]


def test_osc_bundle_carries_the_wall_time(model, demo_path):
    from emotrack.realtime.live.engine import LiveEngine
    from emotrack.realtime.live.sinks.osc import OscSink
    from emotrack.realtime.live.sources import FileSource
    from pythonosc.osc_bundle import OscBundle

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    sink, frames = OscSink(f"127.0.0.1:{rx.getsockname()[1]}", bundle=True), ListSink()
    e = LiveEngine(model, FileSource(demo_path, fast=True), sinks=[sink, frames], duration=2.0)
    e.start()
    assert e.wait(30)
    e.stop()
    bundles = [OscBundle(rx.recv(4096)) for _ in range(4)]
    rx.close()
    for b, f in zip(bundles, frames.frames, strict=True):
        assert abs(b.timestamp - f["wall"]) < 1e-3  # the bundle's time tag
        addrs = [m.address for m in b]
        assert addrs == ["/emotrack/va", "/emotrack/valence", "/emotrack/arousal", "/emotrack/std",
                         "/emotrack/t", "/emotrack/seq"] + [f"/emotrack/descriptor/{n.replace(' ', '_')}" for n in model.descriptor_names]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_listen_prints_the_stream(demo_path):
    port = free_port()
    p = subprocess.Popen(EMOTRACK + ["live", "--no-gui", "--quiet", "--input", str(demo_path), "--loop",
                                     "--ws", f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _listening(port), 30, "the server")
        r = subprocess.run(EMOTRACK + ["listen", f"ws://127.0.0.1:{port}", "--count", "3"],
                           capture_output=True, text=True, timeout=30)
    finally:
        p.terminate()
        p.wait(20)
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(line) for line in r.stdout.splitlines()]
    assert msgs[0]["type"] == "hello" and [m["type"] for m in msgs[1:]] == ["frame"] * 3
    assert p.returncode == 0  # SIGTERM stops it cleanly


def test_listen_without_a_server_says_so():
    r = subprocess.run(EMOTRACK + ["listen", f"ws://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 4 and "is `emotrack live` running there?" in r.stderr


@pytest.fixture()
def guarded_server(model, demo_path):
    from emotrack.realtime.live.engine import LiveEngine
    from emotrack.realtime.live.sources import FileSource
    from emotrack.realtime.net.server import WebSocketServer

    srv = WebSocketServer("127.0.0.1", 0, token=TOKEN, allow_origins=["https://show.example"])
    srv.start()
    e = LiveEngine(model, FileSource(demo_path, loop=True), sinks=[srv])
    e.start()
    yield srv
    e.stop()


def _close_reason(url, **kw):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(url, open_timeout=5, **kw) as ws:
        try:
            first = json.loads(ws.recv(timeout=5))
        except ConnectionClosed as e:
            return e.rcvd.code, e.rcvd.reason
        return "open", first["type"]


def test_token_and_origin_rules(guarded_server):
    base = guarded_server.url
    assert _close_reason(base) == (1008, "missing token: connect to ws://HOST:PORT/?token=TOKEN")
    assert _close_reason(f"{base}/?token=nope") == (1008, "wrong token: use the --token the server was started with")
    assert _close_reason(f"{base}/?token={TOKEN}") == ("open", "hello")
    assert _close_reason(base, additional_headers={"Authorization": f"Bearer {TOKEN}"}) == ("open", "hello")
    # browsers: pages from this machine and the allowed origin only
    assert _close_reason(f"{base}/?token={TOKEN}", origin="http://localhost:8080") == ("open", "hello")
    assert _close_reason(f"{base}/?token={TOKEN}", origin="https://show.example") == ("open", "hello")
    code, reason = _close_reason(f"{base}/?token={TOKEN}", origin="https://evil.example")
    assert code == 1008 and "origin https://evil.example is not allowed" in reason and "--allow-origin" in reason
    assert guarded_server.refused == 3


def test_listen_reports_a_wrong_token(guarded_server):
    r = subprocess.run(EMOTRACK + ["listen", guarded_server.url, "--token", "nope"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "wrong token" in r.stderr
    r = subprocess.run(EMOTRACK + ["listen", guarded_server.url, "--token", TOKEN, "--count", "1", "--frames-only"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and json.loads(r.stdout)["type"] == "frame"


def test_non_loopback_bind_needs_a_token(demo_path):
    r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), "--ws", "0.0.0.0:0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--token SECRET" in r.stderr and "--insecure" in r.stderr
    r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), "--ws", "0.0.0.0:0",
                                   "--insecure", "--duration", "1", "--fast"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "WARNING" in r.stderr


def test_lsl_outlet_carries_the_recorded_values(demo_path, tmp_path):
    """A real LSL inlet on this machine receives the predictions (and the end-of-input
    marker) that --record writes, with timestamps on the LSL clock one hop apart."""
    import os

    import numpy as np
    import pylsl

    pylsl.set_config_content("[log]\nlevel = -2\n")
    name = f"emotrack-test-{os.getpid()}"
    rec = tmp_path / "r.jsonl"
    p = subprocess.Popen(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), "--ws", "off", "--lsl", name,
                                     "--record", str(rec), "--duration", "8", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found = pylsl.resolve_byprop("source_id", f"emotrack:{name}", timeout=20)
        events = pylsl.resolve_byprop("source_id", f"emotrack:{name}:events", timeout=10)
        assert found and events, "the LSL streams were not found"
        inlet, markers = pylsl.StreamInlet(found[0]), pylsl.StreamInlet(events[0])
        inlet.open_stream(timeout=10)
        markers.open_stream(timeout=10)
        info = inlet.info(timeout=5)
        samples, stamps, marks = [], [], []
        while p.poll() is None or not samples:
            x, ts = inlet.pull_chunk(timeout=0.5)
            samples += x
            stamps += ts
            marks += [m[0] for m in markers.pull_chunk(timeout=0.0)[0]]
        time.sleep(0.5)
        x, ts = inlet.pull_chunk(timeout=0.5)
        samples, stamps = samples + x, stamps + ts
        marks += [m[0] for m in markers.pull_chunk(timeout=1.0)[0]]
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert info.type() == "Emotion" and info.channel_count() == 4 and info.nominal_srate() == 2.0
    ch = info.desc().child("channels").child("channel")
    labels = []
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    assert labels == ["valence", "arousal", "valence_std", "arousal_std"]
    rows = [json.loads(line) for line in rec.read_text().splitlines()]
    assert len(rows) == 16 and 8 <= len(samples) <= 16  # the inlet joins after a few frames
    ref = np.array([[r["valence"], r["arousal"], r["valence_std"], r["arousal_std"]] for r in rows], np.float32)
    np.testing.assert_array_equal(np.array(samples, np.float32), ref[len(ref) - len(samples):])
    assert 0.45 < float(np.median(np.diff(stamps))) < 0.55  # paced: one hop apart on the LSL clock
    assert any(m.startswith("end_of_input:") for m in marks), marks


def test_lsl_missing_says_how_to_install(demo_path, tmp_path):
    code = ("import sys, runpy; sys.modules['pylsl'] = None; sys.argv = ['emotrack'] + sys.argv[1:]; "
            "runpy.run_module('emotrack.realtime.cli', run_name='__main__')")
    rec = tmp_path / "r.jsonl"
    r = subprocess.run([EMOTRACK[0], "-c", code, "live", "--no-gui", "--input", str(demo_path), "--lsl",
                        "--record", str(rec)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "pip install 'emotrack[lsl]'" in r.stderr, r.stderr
    assert not rec.exists()
