"""PortAudio's own input overflows (its status flags) reach the overflow count."""

from __future__ import annotations

import numpy as np
from emotrack.realtime.live.ring import BlockRing
from emotrack.realtime.live.sources import DeviceSource


class _Flags:
    def __init__(self, overflow: bool):
        self.input_overflow = overflow


def test_callback_counts_portaudio_input_overflows():
    src = DeviceSource.__new__(DeviceSource)  # the callback alone: no device is opened
    src.ring = BlockRing(1.0, 48000, 2, 480)
    src.sample_rate = 48000
    block = np.zeros((480, 2), np.float32)
    src._callback(block, 480, None, _Flags(False))
    src._callback(block, 480, None, _Flags(True))
    src._callback(block, 480, None, _Flags(True))
    assert src.ring.overflows == 2 and src.ring.written_samples == 3 * 480
