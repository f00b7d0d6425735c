"""LSL timestamps from PortAudio's ADC time of the block: a source whose converter captured
every block 50 ms before it reached us gives frames 40-50 ms older than their arrival."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from emotrack.realtime.live.engine import LiveEngine
from emotrack.realtime.live.ring import BlockRing
from emotrack.realtime.live.sources import Source

from ..conftest import ListSink

OFFSET = 0.050  # seconds between the capture of a block's first sample and its callback
SR, BLOCK = 48000, 480


class _DelayedSource(Source):
    """Plays noise in 10 ms blocks at real time, each stamped as PortAudio would for a card
    with 50 ms of input latency."""

    kind = "device"

    def __init__(self, seconds: float):
        super().__init__()
        self.name, self.sample_rate, self.channels = "delayed", SR, 1
        self.ring = BlockRing(2.0, SR, 1, BLOCK)
        self.seconds = seconds
        self._t = threading.Thread(target=self._play, daemon=True)

    def start(self):
        self._state = "running"
        self._t.start()

    def _play(self):
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for k in range(int(self.seconds * SR / BLOCK)):
            due = t0 + (k + 1) * BLOCK / SR
            time.sleep(max(0.0, due - time.perf_counter()))
            now = time.perf_counter()
            self.ring.write((0.1 * rng.standard_normal((BLOCK, 1))).astype(np.float32), now, now - OFFSET, SR)
        self._finish("ended")

    def stop(self):
        self._t.join(5)
        self._finish("stopped")


def test_frames_carry_the_capture_time_and_lsl_stamps_use_it(model):
    sink = ListSink()
    engine = LiveEngine(model, _DelayedSource(2.5), sinks=[sink])
    engine.start()
    assert engine.wait(20)
    engine.stop()
    assert len(sink.frames) == 5
    for f in sink.frames:
        extra = f["adc_latency_ms"] - f["latency_ms"]
        assert 40.0 - 0.5 <= extra <= 50.0 + 0.5, f  # 50 ms less the frame's last sample's place in its block

    pylsl = pytest.importorskip("pylsl")
    from emotrack.realtime.live.sinks.lsl import LslSink

    lsl = LslSink("adc-test", 0.5, engine.hello())
    pushed = []
    lsl.outlet = type("O", (), {"push_sample": lambda self, x, stamp: pushed.append(stamp)})()
    lsl._clock = lambda: 1000.0
    lsl.frame(sink.frames[0], "")
    assert pushed[0] == pytest.approx(1000.0 - sink.frames[0]["adc_latency_ms"] / 1000, abs=1e-9)
    del pylsl
