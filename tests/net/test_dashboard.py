"""The browser dashboard (`emotrack live --http`): served files, host rules, and the page in
headless Chromium drawing the live trajectory and reconnecting after a server restart."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from ..conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    EMOTRACK,
    free_port,
    http_get,
    needs_chromium,
    serve_dashboard,
    wait_for,
)


def test_http_serves_only_the_dashboard(model, demo_path):
    from emotrack.realtime.live.sources import FileSource

    engine, server = serve_dashboard(model, FileSource(demo_path, loop=True))
    base = server.http_url
    try:
        status, head, body = http_get(base)
        assert status == 200 and head["Content-Type"].startswith("text/html") and b"dashboard.js" in body
        assert "default-src 'self'" in head["Content-Security-Policy"] and head["X-Content-Type-Options"] == "nosniff"
        for path, ctype in [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css"), ("favicon.svg", "image/svg+xml")]:
            status, head, body = http_get(base + path)
            assert status == 200 and head["Content-Type"].startswith(ctype) and len(body) > 100
        status, _, body = http_get(base + "config.json")
        assert json.loads(body) == {"protocol": 1, "ws_port": server.port, "token_required": False,
                                    "server": server.hello["server"], "hop": 0.5, "library": None}
        status, head, body = http_get(base, method="HEAD")
        assert status == 200 and body == b"" and int(head["Content-Length"]) > 100
        for path in ["..%2f..%2fetc%2fpasswd", "assets/demo.opus", "emotrack-vae-lstm.onnx", "dashboard/../MODEL_CARD.md"]:
            assert http_get(base + path)[0] == 404, path
        assert http_get(base, method="POST")[0] == 405
        assert http_get(base, headers={"X-Big": "x" * 10000})[0] == 431
        # garbage and half-sent requests do not hurt it
        for junk in [b"\x00\xff" * 50, b"GET", b"GET / HTTP/1.1\r\n"]:
            s = socket.create_connection(("127.0.0.1", server.dashboard.port), timeout=5)
            s.sendall(junk)
            s.close()
        assert http_get(base)[0] == 200
    finally:
        engine.stop()


def test_dashboard_origin_rule():
    """A page served by our own dashboard may connect to the stream on the host it came from."""
    from emotrack.realtime.net.server import WebSocketServer

    srv = WebSocketServer("0.0.0.0", 8765, token="t", http=("0.0.0.0", 8080))
    srv.dashboard = type("D", (), {"port": 8080})()
    assert srv.origin_allowed("http://192.168.1.5:8080", "192.168.1.5:8765")
    assert srv.origin_allowed("http://stage-pc.local:8080", "stage-pc.local:8765")
    assert not srv.origin_allowed("http://192.168.1.5:9999", "192.168.1.5:8765")  # another page on that machine
    assert not srv.origin_allowed("http://evil.example:8080", "192.168.1.5:8765")
    assert not srv.origin_allowed("http://evil.example:8080", None)
    assert not srv.origin_allowed("file://", "192.168.1.5:8765")
    assert not srv.origin_allowed("http://[bad", "192.168.1.5:8765")


@pytest.mark.parametrize("argv, code, words", [
    (["--ws", "off", "--http", "127.0.0.1:0"], 2, "it needs --ws"),
    (["--http", "0.0.0.0:0"], 2, "--http 0.0.0.0:0: listening on 0.0.0.0"),
    (["--ws", "127.0.0.1:0", "--http", "0.0.0.0:0", "--insecure"], 2, "is reachable from other machines"),
    (["--http", "127.0.0.1:notaport"], 2, "--http '127.0.0.1:notaport': the port must be a number"),
])
def test_cli_http_refusals(demo_path, argv, code, words):
    r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), *argv],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == code and words in r.stderr, r.stderr


def test_cli_http_port_in_use(demo_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), "--ws", "127.0.0.1:0",
                                       "--http", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    finally:
        busy.close()
    assert r.returncode == 5 and f"port {port} on 127.0.0.1 is already in use" in r.stderr
    assert f"--http 127.0.0.1:{port + 1}" in r.stderr


COUNT_COLOURS = """(cv) => {
  const ctx = cv.getContext('2d');
  const d = ctx.getImageData(0, 0, cv.width, cv.height).data;
  let point = 0, trail = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
    if (r > 230 && g > 190 && g < 230 && b < 110) point++;          // #ffd54f
    if (r < 120 && g > 160 && b > 170 && Math.abs(g - b) < 40) trail++;  // #4dd0e1, faded
  }
  return {point, trail, url: cv.toDataURL()};
}"""


@needs_chromium
def test_dashboard_in_chromium_draws_and_reconnects(model, tmp_path):
    """Real audio through the real model; the page gets every frame in order, draws the
    point and the trail, and picks the stream up again after the server restarts."""
    import numpy as np
    import soundfile as sf
    from emotrack.realtime.live.sources import FileSource
    from playwright.sync_api import sync_playwright

    from ..conftest import noise

    # loud then quiet noise bursts: the trajectory moves
    sr = 22050
    y = noise(40.0, sr, seed=3)[:, 0] * np.repeat(np.tile([1.5, 0.05], 20), sr)
    wav = tmp_path / "moving.wav"
    sf.write(wav, y, sr, subtype="FLOAT")
    ws_port, http_port = free_port(), free_port()
    engine, server = serve_dashboard(model, FileSource(wav), ws_port, http_port, start=False)
    shots = Path(os.environ.get("EMOTRACK_SCREENSHOTS") or tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 650}, device_scale_factor=2)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.http_url)
            state = lambda: page.evaluate("window.emotrackState")  # noqa: E731
            wait_for(lambda: state()["connected"], 15, "the page to connect")
            empty = page.eval_on_selector("#va", COUNT_COLOURS)
            engine.start()
            wait_for(lambda: state()["frames"] >= 4, 30, "4 frames in the page")
            layout = page.locator("#series").bounding_box()
            wait_for(lambda: state()["frames"] >= 12, 30, "12 frames in the page")
            assert page.locator("#series").bounding_box() == layout  # drawing does not resize it
            drawn = page.eval_on_selector("#va", COUNT_COLOURS)
            st = state()
            assert st["missed"] == 0 and st["hello"]["run"] == engine.run_id
            assert st["lastSeq"] == st["frames"] - 1  # every frame since seq 0, in order
            assert drawn["url"] != empty["url"]
            assert drawn["point"] > 50 and drawn["trail"] > 20, drawn  # the current point and its trail
            assert empty["point"] == 0
            page.screenshot(path=str(shots / "dashboard.png"))
            text = page.inner_text("body")
            assert "valence" in text and "latency" in text and "clients 1" in text

            # the server goes away and comes back on the same ports: the page reconnects
            engine.stop()
            wait_for(lambda: not state()["connected"], 10, "the page to notice")
            assert "retrying" in page.inner_text("#conn")
            engine2, server2 = serve_dashboard(model, FileSource(wav), ws_port, http_port)
            try:
                wait_for(lambda: state()["connected"] and state()["hello"]["run"] == engine2.run_id, 20, "the reconnect")
                wait_for(lambda: state()["frames"] >= st["frames"] + 6, 30, "frames after the reconnect")
                assert state()["connects"] == 2 and state()["missed"] == 0
            finally:
                engine2.stop()

            # a phone-sized screen: one column, the plane on top
            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            engine3, server3 = serve_dashboard(model, FileSource(wav), ws_port, http_port)
            try:
                phone.goto(server3.http_url)
                wait_for(lambda: phone.evaluate("window.emotrackState.frames") >= 6, 30, "frames on the phone")
                va = phone.locator("#va").bounding_box()
                series = phone.locator("#series").bounding_box()
                assert va["width"] > 330 and series["y"] > va["y"] + va["height"] - 1
                phone.screenshot(path=str(shots / "dashboard-phone.png"))
            finally:
                engine3.stop()
            assert errors == []
        finally:
            browser.close()


@needs_chromium
def test_dashboard_with_a_token(model, demo_path):
    from emotrack.realtime.live.sources import FileSource
    from playwright.sync_api import sync_playwright

    engine, server = serve_dashboard(model, FileSource(demo_path, loop=True), token="s3cret")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(server.http_url)
            wait_for(lambda: "needs its access token" in page.inner_text("#conn"), 10, "the token message")
            page.goto(server.http_url + "?token=wrong")
            wait_for(lambda: "wrong token" in page.inner_text("#conn"), 10, "the refusal reason")
            page.goto(server.http_url + "?token=s3cret")
            wait_for(lambda: page.evaluate("window.emotrackState.frames") >= 2, 15, "frames with the token")
            browser.close()
    finally:
        engine.stop()
