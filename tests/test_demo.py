"""The bundled demo shows what emotrack does: the shipped model's trajectory on it travels
(through at least two quadrants, arousal moving), and its sources and licences sit beside it."""

from __future__ import annotations

import numpy as np
from emotrack.realtime.core.tracker import stream_file

from .conftest import ROOT

WARMUP = 2.0  # the LSTM's first frames from its zero state, left out as everywhere else


def test_the_shipped_model_travels_on_the_demo(model, demo_path):
    p = [x for x in stream_file(model, demo_path) if x.t > WARMUP]
    v, a = np.array([x.valence for x in p]), np.array([x.arousal for x in p])
    assert 60 <= p[-1].t <= 90  # 60-90 s of music
    quadrant = np.where(v >= 0, np.where(a >= 0, 1, 4), np.where(a >= 0, 2, 3))
    share = np.bincount(quadrant, minlength=5)[1:] / len(quadrant)
    # "covers" a quadrant: a tenth of the time at least (5 s of a 60 s demo), not a passing frame
    assert (share >= 0.1).sum() >= 2, share
    assert a.std() >= 0.15, a.std()


def test_the_demo_names_its_sources_and_licences():
    text = (ROOT / "assets" / "DEMO_AUDIO.txt").read_text()
    parts = [line for line in text.splitlines() if "Debian package" in line]
    assert len(parts) >= 2 and all("licence" in line for line in parts)
    assert "demo.opus" in text
