"""Memory stays bounded however long or wide the input: whole-song analysis of a 2-hour
file, and a file with 256 channels played as live input."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import soundfile as sf
from emotrack.realtime.bench.live import rss_kb
from emotrack.realtime.core.song import MAX_SONG_FRAMES, SongModel, analyze_song
from emotrack.realtime.core.tracker import Tracker
from emotrack.realtime.live.engine import LiveEngine
from emotrack.realtime.live.sources import FileSource

from ..conftest import ListSink


def _long_file(path, seconds: float, sr: int = 8000) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(int(seconds // 60)):
            f.write((0.1 * rng.standard_normal(sr * 60)).astype(np.float32))


def _peak_rss_during(fn) -> tuple[float, object]:
    """(peak RSS growth in MB while ``fn`` runs, its result), sampled every 20 ms."""
    base = rss_kb(os.getpid())
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_kb(os.getpid()))

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        out = fn()
    finally:
        done.set()
        t.join()
    return (peak[0] - base) / 1024, out


def test_whole_song_analysis_of_two_hours_stays_bounded(model, tmp_path):
    path = tmp_path / "two-hours.wav"
    _long_file(path, 7200)
    song = SongModel()
    grown, res = _peak_rss_during(lambda: analyze_song(model, path, song))
    assert len(res.trajectory) == 14400 and np.isfinite([res.valence, res.arousal]).all()
    # every frame of two hours went through the song graph at once before (1.4 GB for 3 h, with
    # the narrower first encoder); now a sample of 10 minutes does: the graph's activations for
    # it are most of what remains, ~140 MB with emotrack-vae-lstm 2's encoder (32/64/96 channels),
    # ~205 MB with emotrack-vae-lstm 3's (48/96/128) and ~365 MB with emotrack-vae-lstm 4's (the
    # musicnn-shaped front: its filter maps before the maximum over pitch are the largest). Growing
    # with the duration would be 12 times that here (14,400 frames against 1,200), so the bound
    # leaves room for the allocator's variation between machines and still tells the two apart.
    assert grown < 600, f"peak RSS grew {grown:.0f} MB"


def test_the_reservoir_keeps_every_frame_of_a_short_song_and_a_sample_of_a_long_one(model):
    y = (0.1 * np.random.default_rng(1).standard_normal(22050 * 30)).astype(np.float32)
    t = Tracker(model, 22050, keep_mels=100)
    t.push(y)
    assert len(t.mels) == 60  # all 60 frames of 30 s
    t = Tracker(model, 22050, keep_mels=20)
    t.push(y)
    assert len(t.mels) == 20 == len({m.tobytes() for m in t.mels})  # 20 distinct frames of the 60
    assert MAX_SONG_FRAMES >= 1200  # 10 minutes are analysed exactly


def test_a_256_channel_file_costs_no_more_ring_than_mono(model, tmp_path):
    path = tmp_path / "wide.wav"
    sf.write(path, (0.05 * np.random.default_rng(2).standard_normal((48000, 256))).astype(np.float32), 48000,
             subtype="PCM_16")
    sink = ListSink()

    def play():
        src = FileSource(path, fast=True)
        eng = LiveEngine(model, src, sinks=[sink])
        eng.start()
        end = time.monotonic() + 30
        while not eng.wait(0.1) and time.monotonic() < end:
            pass
        eng.stop()
        return src

    grown, src = _peak_rss_during(play)
    assert len(sink.frames) == 2 and src.channels == 256
    assert grown < 60, f"peak RSS grew {grown:.0f} MB"  # a 10 s ring of 256 channels was 491 MB
