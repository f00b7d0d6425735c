"""Bad input gets a clear answer and never reaches the features, the database or the JSON:
NaN samples, a FIFO, a file cut short, one shorter than a frame, random bytes."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess

import numpy as np
import pytest
import soundfile as sf

from .conftest import DEMO_FRAMES, EMOTRACK


def run(*args, timeout=120):
    return subprocess.run(EMOTRACK + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def nan_wav(tmp_path):
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(22050 * 6)).astype(np.float32)
    y[30000] = np.nan
    y[40000:40010] = np.inf
    p = tmp_path / "nan.wav"
    sf.write(p, y, 22050, subtype="FLOAT")
    return p


def test_nan_samples_are_silence_and_never_reach_the_output(nan_wav, tmp_path):
    r = run("analyze", "--song", str(nan_wav))
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)  # strict JSON: a NaN would not parse as a number here
    assert math.isfinite(rec["valence"]) and math.isfinite(rec["arousal"])
    assert "11 samples were NaN or infinite" in r.stderr
    lines = [json.loads(x) for x in run("analyze", str(nan_wav)).stdout.splitlines()]
    assert lines and all(math.isfinite(x["valence"]) and math.isfinite(x["arousal_std"]) for x in lines)
    db = tmp_path / "lib.sqlite"
    for _ in range(2):  # a second run is not broken by the first
        r = run("index", str(nan_wav.parent), "--db", str(db), "--jobs", "1", "--no-progress")
        assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as c:
        (v, a), = c.execute("SELECT valence, arousal FROM songs").fetchall()
    assert math.isfinite(v) and math.isfinite(a)


def test_a_fifo_is_refused_not_waited_for(tmp_path, demo_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    r = run("analyze", str(fifo), str(demo_path), timeout=60)
    assert r.returncode == 3 and "not a regular file" in r.stderr
    assert len(r.stdout.splitlines()) == DEMO_FRAMES  # the next file was still analysed
    r = run("live", "--no-gui", "--ws", "off", "--input", str(fifo), timeout=60)
    assert r.returncode == 3 and "not a regular file" in r.stderr
    (tmp_path / "music").mkdir()
    os.mkfifo(tmp_path / "music" / "x.mp3")
    r = run("index", str(tmp_path / "music"), "--db", str(tmp_path / "l.sqlite"), "--no-progress", timeout=60)
    assert r.returncode == 3 and "not a regular file" in r.stderr


def test_a_file_cut_short_says_so(tmp_path):
    y = (0.1 * np.random.default_rng(1).standard_normal(22050 * 10)).astype(np.float32)
    full = tmp_path / "full.wav"
    sf.write(full, y, 22050, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: 44 + 2 * 22050 * 4])  # the header still says 10 s
    r = run("analyze", str(cut))
    assert r.returncode == 3
    assert "decoding stopped at 4.0 s of the 10.0 s it declares" in r.stderr
    assert len(r.stdout.splitlines()) == 8  # what came before was analysed


def test_shorter_than_a_frame_and_random_bytes(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(4000, np.float32), 22050)
    r = run("analyze", str(short))
    assert r.returncode == 3 and "shorter than one 0.5 s frame" in r.stderr and r.stdout == ""
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"ID3" + os.urandom(4000))
    r = run("analyze", str(junk))
    assert r.returncode == 3 and "cannot decode it as audio" in r.stderr and "pipe" not in r.stderr
