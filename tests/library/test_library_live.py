"""The library inside `emotrack live --db`: `find` over the WebSocket, previews over the
dashboard's HTTP side, "more like now", and the dashboard in headless Chromium where a
click and a drawn curve return the expected songs."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ..conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DATA,
    EMOTRACK,
    free_port,
    http_get,
    needs_chromium,
    noise,
    ramp,
    schema_validator,
    serve_dashboard,
    wait_for,
)


# ---------------------------------------------------------------------- a constructed library
@pytest.fixture(scope="module")
def shaped_library(tmp_path_factory):
    """Songs whose trajectories we choose, each with a real (noise) audio file of its length,
    so previews can be played."""
    import soundfile as sf
    from emotrack.realtime.library.store import SongRecord, connect, store

    root = tmp_path_factory.mktemp("shaped")
    flat = lambda v, a, n: np.tile([[v, a]], (n, 1))  # noqa: E731
    songs = {
        "rising": np.column_stack([np.full(240, 0.2), np.linspace(-0.8, 0.8, 240)]),
        "falling": np.column_stack([np.full(240, 0.2), np.linspace(0.8, -0.8, 240)]),
        "happy": flat(0.7, 0.6, 200),
        "sad": flat(-0.6, -0.5, 200),
        "calm": flat(0.5, -0.6, 200),
        "surge": np.concatenate([flat(0.0, -0.6, 120), ramp(0, 1, 40) * [0.6, 1.4] + [0, -0.6], flat(0.6, 0.8, 240)]),
    }
    db = connect(root / "lib.sqlite")
    sr = 8000
    for i, (name, va) in enumerate(songs.items()):
        path = root / f"{name}.wav"
        sf.write(path, noise(len(va) * 0.5, sr, seed=i)[:, 0] * 0.3, sr, subtype="PCM_16")
        traj = np.concatenate([va, np.full_like(va, 0.1)], 1).astype(np.float32)
        st = path.stat()
        store(db, SongRecord(str(path), st.st_size, st.st_mtime_ns, "synthetic 1", len(va) * 0.5, 0.5, traj))
    db.close()
    return root


def _finder(root, like_seconds=10.0):
    from emotrack.realtime.library.service import LibraryService

    f = LibraryService(root / "lib.sqlite", like_seconds=like_seconds)
    f.open()
    return f


def test_find_requests_are_checked():
    from emotrack.realtime.library.service import LibraryService

    f = LibraryService("/nonexistent.sqlite")
    try:
        for m, words in [({"type": "find"}, "give \"point\""),
                         ({"type": "find", "point": [0, 0], "profile": [[0, 0, 0], [1, 0, 0]]}, "give \"point\""),
                         ({"type": "find", "point": [2, 0]}, "each in [-1, 1]"),
                         ({"type": "find", "point": [0, "x"]}, "each in [-1, 1]"),
                         ({"type": "find", "point": [0, 0], "k": 0}, "k must be"),
                         ({"type": "find", "point": [0, 0], "k": True}, "k must be"),
                         ({"type": "find", "point": [0, 0], "path": "/etc/passwd"}, "unknown: path"),
                         ({"type": "find", "profile": [[0, 0, 0]]}, "at least 2 points"),
                         ({"type": "find", "profile": [[1, 0, 0], [0, 0, 0]]}, "t must increase"),
                         ({"type": "find", "profile": [[0, 0], [1, 0]]}, "exactly three numbers"),
                         ({"type": "find", "profile": "0,0,0"}, "list of [t, valence, arousal]"),
                         ({"type": "find", "profile": [[0, 0, 0], [1, 0, 0]], "match": "best"}, "whole\" or \"segment"),
                         ({"type": "find", "point": [0, 0], "id": {"a": 1}}, "id must be")]:
            r = f.request(m)
            assert isinstance(r, dict) and r["error"] == "bad_find" and words in r["message"], (m, r)
        assert callable(f.request({"type": "find", "point": [0.1, 0.2], "k": 3, "id": "q1"}))
    finally:
        f.close()


def test_find_and_preview_over_the_stream(model, shaped_library):
    """A real server with a library: find by point and by profile over the WebSocket; the
    dashboard's /preview plays a song by id, under the token."""
    import soundfile as sf
    from emotrack.realtime.live.sources import FileSource
    from websockets.sync.client import connect

    finder = _finder(shaped_library)
    engine, server = serve_dashboard(model, FileSource(shaped_library / "happy.wav", loop=True), token="tok", library=finder)
    v = schema_validator()
    try:
        with connect(f"ws://127.0.0.1:{server.port}/?token=tok") as ws:
            assert json.loads(ws.recv())["type"] == "hello"

            def ask(m):
                ws.send(json.dumps(m))
                while True:
                    r = json.loads(ws.recv(timeout=10))
                    if r["type"] in ("found", "error"):
                        v.validate(r)
                        return r

            r = ask({"type": "find", "id": 7, "point": [-0.55, -0.45], "k": 2})
            assert r["id"] == 7 and r["songs"] == 6 and r["query"] == "point"
            assert [Path(x["path"]).stem for x in r["results"]] == ["sad", "rising"]
            r = ask({"type": "find", "id": "up", "profile": [[0, 0.2, -0.8], [30, 0.2, 0.8]]})
            assert Path(r["results"][0]["path"]).stem == "rising" and r["match"] == "whole"
            r = ask({"type": "find", "id": 3, "profile": [[0, 0.0, -0.6], [20, 0.6, 0.8]], "match": "segment", "k": 1})
            (hit,) = r["results"]
            assert Path(hit["path"]).stem == "surge" and abs(hit["segment"][0] - 60) <= 2 and abs(hit["segment"][1] - 80) <= 2
            assert ask({"type": "find", "point": [0, 0], "bogus": 1})["error"] == "bad_find"
            song = r["results"][0]["id"]
        base = server.http_url
        status, head, body = http_get(f"{base}preview?song={song}&start=62&token=tok")
        assert status == 200 and head["Content-Type"] == "audio/wav"
        x, sr = sf.read(io.BytesIO(body))
        assert sr == 8000 and len(x) == 15 * sr and abs(x[0]) < 1e-3 < np.abs(x).max()  # faded in
        assert http_get(f"{base}preview?song={song}")[0] == 403  # no token
        assert http_get(f"{base}preview?song={song}&token=nope")[0] == 403
        status, _, body = http_get(f"{base}preview?song=999&token=tok")
        assert status == 404 and b"no song 999" in body
        assert http_get(f"{base}preview?song=abc&token=tok")[0] == 400
        assert http_get(f"{base}preview?song=1&start=nan&token=tok")[0] == 400
        assert json.loads(http_get(base + "config.json")[2])["library"] == {"songs": 6, "like_now_seconds": 10.0}
    finally:
        engine.stop()
        finder.close()


def test_find_without_a_library(model, demo_path):
    from emotrack.realtime.live.sources import FileSource
    from websockets.sync.client import connect

    engine, server = serve_dashboard(model, FileSource(demo_path, loop=True))
    try:
        with connect(f"ws://127.0.0.1:{server.port}") as ws:
            ws.recv()
            ws.send(json.dumps({"type": "find", "point": [0, 0]}))
            while (r := json.loads(ws.recv(timeout=10)))["type"] == "frame":
                pass
            assert r["error"] == "no_library" and "--db PATH" in r["message"]
        assert http_get(server.http_url + "preview?song=1")[0] == 404
    finally:
        engine.stop()


@pytest.mark.parametrize("argv, words", [
    (["--ws", "off"], "it needs --ws"),
    (["--like-now", "-1"], "--like-now -1"),
])
def test_cli_db_refusals(shaped_library, demo_path, argv, words):
    r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), "--db", str(shaped_library / "lib.sqlite"),
                                   *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and words in r.stderr, r.stderr


def test_cli_db_missing(tmp_path, demo_path):
    r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--input", str(demo_path), "--ws", "127.0.0.1:0",
                                   "--db", str(tmp_path / "none.sqlite")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no library at" in r.stderr, r.stderr


# ---------------------------------------------------------------------- more like now, real audio
def test_more_like_now_finds_the_song_that_is_playing(demo_path, tmp_path):
    """`emotrack live --input X --db LIB` where X is in LIB: every 5 s the last 10 s of the
    live trajectory are matched against the library, and the song playing is the best match,
    at the stretch that is playing."""
    if not DATA.exists():
        pytest.skip(f"{DATA} not present")
    music = tmp_path / "music"
    music.mkdir()
    for f in sorted((DATA / "soundtracks" / "audio").glob("*.opus"))[:8]:
        shutil.copy(f, music / f.name)
    playing = music / "demo.opus"
    shutil.copy(demo_path, playing)
    db = tmp_path / "lib.sqlite"
    r = subprocess.run(EMOTRACK + ["index", str(music), "--db", str(db), "--no-progress"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    port = free_port()
    proc = subprocess.Popen(EMOTRACK + ["live", "--no-gui", "--quiet", "--input", str(playing), "--db", str(db),
                                        "--like-now", "10", "--ws", f"127.0.0.1:{port}"],
                            stderr=subprocess.PIPE, text=True)
    v = schema_validator()

    async def collect():
        from websockets.asyncio.client import connect

        for _ in range(300):
            try:
                ws = await connect(f"ws://127.0.0.1:{port}")
                break
            except OSError:
                await asyncio.sleep(0.1)
        likes = []
        async with ws:
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "like_now":
                    v.validate(m)
                    likes.append(m)
                    if len(likes) == 2:
                        return likes
        return likes

    try:
        likes = asyncio.run(asyncio.wait_for(collect(), 60))
    finally:
        proc.terminate()
        err = proc.communicate(timeout=30)[1]
    assert "library" in err and "(9 songs)" in err, err
    first, second = likes
    assert first["t"] == 10.0 and first["window"] == [0.5, 10.0] and first["songs"] == 9
    assert second["t"] == 15.0
    for m in likes:
        best = m["results"][0]
        assert best["path"] == str(playing), m["results"][:3]
        a, b = best["segment"]
        t0, t1 = m["window"]
        # the matched stretch is where the live window is and as long, give or take one 2 s
        # block and a frame (the second window is 1 s off the library's blocks; the segment
        # DTW's tempo weight keeps the match at tempo 1 where the trajectory changes little)
        assert abs(b - t1) <= 2.5 and abs((b - a) - (t1 - t0)) <= 2.5, (m["window"], best["segment"])
    # the first window lies on the library's 2 s blocks: the same audio, the same blocks, so the
    # match is exact
    assert first["results"][0]["distance"] < 1e-3
    assert len(first["results"]) == 9 and first["results"][1]["distance"] > 0.01


# ---------------------------------------------------------------------- the dashboard
@needs_chromium
def test_dashboard_click_and_draw_find_songs(model, shaped_library, tmp_path):
    """In headless Chromium: a click finds the songs nearest that point; a drawn rising curve
    finds the rising song; a drawn surge, matched by segment, finds it at 60-80 s; a result
    plays; "more like now" fills in."""
    from emotrack.realtime.live.sources import FileSource
    from playwright.sync_api import sync_playwright

    finder = _finder(shaped_library, like_seconds=6.0)
    engine, server = serve_dashboard(model, FileSource(shaped_library / "happy.wav", loop=True), library=finder)
    shots = Path(os.environ.get("EMOTRACK_SCREENSHOTS") or tmp_path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + ["--autoplay-policy=no-user-gesture-required"])
            page = browser.new_page(viewport={"width": 1400, "height": 760}, device_scale_factor=1)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.http_url)
            state = lambda: page.evaluate("window.emotrackState")  # noqa: E731
            wait_for(lambda: state()["connected"] and state()["frames"] >= 2, 20, "the page to get frames")
            assert page.is_visible("#library") and "6 songs" in page.inner_text("#libinfo")
            box = page.locator("#va").bounding_box()

            def xy(v, a):
                g = state()["plane"]
                return box["x"] + g["x0"] + (v + 1) / 2 * g["span"], box["y"] + g["y0"] + (1 - a) / 2 * g["span"]

            def drag(points, steps=12):
                page.mouse.move(*xy(*points[0]))
                page.mouse.down()
                for pt in points[1:]:
                    page.mouse.move(*xy(*pt), steps=steps)
                page.mouse.up()

            def names():
                return [Path(r["path"]).stem for r in state()["found"]["results"]]

            def answered(before):
                return lambda: (state()["found"] or {}).get("id", 0) > before

            n = 0
            page.mouse.click(*xy(-0.58, -0.5))
            wait_for(answered(n), 10, "the point query's answer")
            n += 1
            assert names()[:2] == ["sad", "rising"] and state()["query"]["point"][0] == pytest.approx(-0.58, abs=0.02)
            assert page.locator("#results li").count() == 6 and "sad.wav" in page.inner_text("#results li >> nth=0")

            drag([(0.2, -0.8), (0.2, 0.8)])
            wait_for(answered(n), 10, "the drawn curve's answer")
            n += 1
            assert names()[0] == "rising" and state()["found"]["match"] == "whole"
            prof = state()["query"]["profile"]
            assert 2 <= len(prof) <= 64 and prof[0][2] < -0.7 and prof[-1][2] > 0.7
            page.screenshot(path=str(shots / "dashboard-curve.png"))

            page.select_option("#match", "segment")
            page.fill("#curveSeconds", "20")
            drag([(0.0, -0.6), (0.6, 0.8)], steps=16)
            wait_for(answered(n), 10, "the segment query's answer")
            first = state()["found"]["results"][0]
            assert names()[0] == "surge" and state()["found"]["match"] == "segment"
            assert abs(first["segment"][0] - 60) <= 3 and abs(first["segment"][1] - 80) <= 3, first
            a, b = (int(x) for x in first["segment"])
            assert f"{a // 60}:{a % 60:02d}–{b // 60}:{b % 60:02d}" in page.inner_text("#results li >> nth=0")

            page.click("#results li >> nth=0 >> button.play")
            wait_for(lambda: (state()["preview"] or {}).get("duration"), 15, "the preview to load")
            pv = state()["preview"]
            assert pv["id"] == first["id"] and pv["duration"] == pytest.approx(15, abs=0.05) and pv["status"] != "error"
            assert pv["start"] == first["segment"][0]

            wait_for(lambda: state()["likeNow"] is not None, 30, "a more-like-now answer")
            wait_for(lambda: page.locator("#likes li").count() > 0, 5, "the more-like-now list")
            page.screenshot(path=str(shots / "dashboard-library.png"))
            assert errors == []
            browser.close()
    finally:
        engine.stop()
        finder.close()
