"""Any audio a user has: m4a (AAC) and a video file are analysed and indexed through FFmpeg,
their tags (artist, title, album) are stored and shown by find; a schema-1 library is
upgraded in place."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import av
import mutagen.mp4
import numpy as np
import pytest
import soundfile as sf
from emotrack.realtime.library.store import SCHEMA_VERSION, SongRecord, connect, store

from ..conftest import EMOTRACK


def run(*args, timeout=120):
    return subprocess.run(EMOTRACK + list(args), capture_output=True, text=True, timeout=timeout)


def _audio(demo_path, seconds=8.0, sr=44100):
    y, s = sf.read(str(demo_path), dtype="float32", always_2d=True, frames=int(seconds * 48000))
    n = int(len(y) * sr / s)
    idx = (np.arange(n) * s / sr).astype(int)
    return y[idx].T.copy(), sr


def _m4a(path, demo_path):
    y, sr = _audio(demo_path)
    with av.open(str(path), "w") as c:
        st = c.add_stream("aac", rate=sr)
        st.layout = "stereo"
        for i in range(0, y.shape[1], 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[:, i:i + 1024]), format="fltp", layout="stereo")
            f.sample_rate = sr
            for p in st.encode(f):
                c.mux(p)
        for p in st.encode(None):
            c.mux(p)
    m = mutagen.mp4.MP4(str(path))
    m["\xa9nam"], m["\xa9ART"], m["\xa9alb"] = ["Frontiers"], ["Michael Kievernagel"], ["Advanced Strategic Command"]
    m.save()


def _video(path, demo_path):
    y, sr = _audio(demo_path)
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=sr)
        a.layout = "mono"
        for i in range(80):
            img = np.full((48, 64, 3), i * 3, np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        mono = np.ascontiguousarray(y.mean(0, keepdims=True))
        for i in range(0, mono.shape[1], 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono[:, i:i + 1024]), format="fltp", layout="mono")
            f.sample_rate = sr
            for p in a.encode(f):
                c.mux(p)
        for enc in (v, a):
            for p in enc.encode(None):
                c.mux(p)


@pytest.fixture()
def media(tmp_path, demo_path):
    d = tmp_path / "music"
    d.mkdir()
    _m4a(d / "frontiers.m4a", demo_path)
    _video(d / "clip.mp4", demo_path)
    (d / "notes.txt").write_text("not audio")
    return d


def test_m4a_and_video_are_analysed_and_indexed_with_tags(media, tmp_path):
    for f in ("frontiers.m4a", "clip.mp4"):
        r = run("analyze", str(media / f))
        assert r.returncode == 0, r.stderr
        recs = [json.loads(x) for x in r.stdout.splitlines()]
        assert len(recs) == 16 and recs[-1]["t"] == 8.0  # 8 s of audio: 16 frames
    r = run("live", "--no-gui", "--quiet", "--fast", "--ws", "off", "--input", str(media / "frontiers.m4a"))
    assert r.returncode == 0 and "stopped after 16 predictions" in r.stderr, r.stderr
    db = tmp_path / "lib.sqlite"
    r = run("index", str(media), "--db", str(db), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "analysed 2, 0 could not be decoded" in r.stderr
    found = json.loads(run("find", "--point", "0,0", "--db", str(db), "--format", "json").stdout)
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in found}
    assert by_name["frontiers.m4a"]["artist"] == "Michael Kievernagel"
    assert by_name["frontiers.m4a"]["title"] == "Frontiers" and by_name["frontiers.m4a"]["album"]
    assert "title" not in by_name["clip.mp4"]  # no tags: the path stays the name
    table = run("find", "--point", "0,0", "--db", str(db)).stdout
    assert "Michael Kievernagel — Frontiers (Advanced Strategic Command)" in table


def test_a_schema_1_library_is_upgraded_and_still_read(tmp_path):
    path = tmp_path / "old.sqlite"
    db = connect(path)
    store(db, SongRecord("/music/a.flac", 1, 1, "m 1", 30.0, 0.5, np.zeros((60, 4), np.float32)))
    db.execute("ALTER TABLE songs DROP COLUMN artist")
    db.execute("ALTER TABLE songs DROP COLUMN title")
    db.execute("ALTER TABLE songs DROP COLUMN album")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    r = run("find", "--point", "0,0", "--db", str(path), "--format", "json")  # read-only: not upgraded
    assert r.returncode == 0 and json.loads(r.stdout)[0]["path"] == "/music/a.flac"
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 1
    connect(path).close()  # a writer upgrades it
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert {"artist", "title", "album"} <= {r[1] for r in c.execute("PRAGMA table_info(songs)")}


def test_without_the_ffmpeg_extra_an_m4a_is_refused_with_the_install_command(tmp_path, demo_path):
    """A headless install without PyAV still reads what libsndfile reads and names the extra
    for the rest (av blocked from importing, as if it were not installed)."""
    import sys

    _m4a(tmp_path / "a.m4a", demo_path)
    code = ("import sys, runpy; sys.modules['av'] = None; sys.argv = ['emotrack', 'analyze', *sys.argv[1:]]; "
            "runpy.run_module('emotrack.realtime.cli', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.m4a"), str(demo_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "pip install 'emotrack[ffmpeg]'" in r.stderr and "a.m4a" in r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) > 100 and {x["file"] for x in lines} == {str(demo_path)}  # the other file is analysed


def test_fast_file_source_drops_nothing_from_long_decoder_blocks(tmp_path, demo_path):
    """FFmpeg hands over blocks longer than a ring slot (an AAC frame is 1,024 samples, a slot
    441 at 44.1 kHz); in fast mode the player waits for room for each slot's worth, so a
    worker far slower than the decoder still gets every sample (`live --fast` on an m4a lost
    a block and a prediction on a busy machine)."""
    import time

    from emotrack.realtime.core.audio import read_blocks
    from emotrack.realtime.live.sources import FileSource

    path = tmp_path / "a.m4a"
    _m4a(path, demo_path)
    total = sum(len(b) for b in read_blocks(path)[2])
    src = FileSource(path, fast=True, ring_seconds=0.0)  # the smallest ring: 4 slots
    assert src.ring.slots == 4 and src.ring.block_frames < 1024
    src.start()
    got, end = 0, time.monotonic() + 120
    while time.monotonic() < end:
        time.sleep(0.002)  # a worker slower than the decoder: the ring is full whenever it looks
        done = src.state != "running"  # before the read: a player that has ended wrote everything
        chunks = src.ring.read()
        got += sum(len(c.data) for c in chunks)
        assert all(c.gap == 0 for c in chunks)
        if done and not chunks:
            break
    src.stop()
    assert src.ring.overflows == 0 and src.ring.dropped_samples == 0
    assert got == total
