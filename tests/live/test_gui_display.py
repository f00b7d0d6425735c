"""What the window draws at --hop 0.1: a causal 0.5 s average, so the phase-shifted states'
ripple does not dominate; the raw values stay on the stream."""

from __future__ import annotations

import numpy as np
from emotrack.realtime.live.sinks.gui import smooth_display


def test_a_half_second_ripple_is_averaged_away_causally():
    t = 0.5 + 0.1 * np.arange(100)
    ripple = np.tile([0.3, -0.3, 0.1, -0.1, 0.0], 20)  # five phases disagreeing, period 0.5 s
    trend = np.linspace(-0.5, 0.5, 100)
    h = np.column_stack([t, trend + ripple, trend, np.full(100, 0.2), np.full(100, 0.2)])
    out = smooth_display(h, 0.1, 0.5)
    assert np.abs(out[5:, 1] - np.convolve(trend, np.ones(5) / 5, "valid")[1:]).max() < 1e-9  # ripple gone
    assert np.allclose(out[:, 0], t)  # times untouched
    # causal: each drawn value uses only outputs up to its own time
    h2 = h.copy()
    h2[60:, 1] += 5.0
    assert np.array_equal(smooth_display(h2, 0.1, 0.5)[:60], out[:60])


def test_at_the_model_hop_nothing_is_smoothed():
    h = np.random.default_rng(0).uniform(-1, 1, (30, 5))
    assert np.array_equal(smooth_display(h, 0.5, 0.5), h)
