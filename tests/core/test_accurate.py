"""The accurate dynamic model at run time (torch-free): the shipped graphs through the
Tracker, as live, analyze and the library run it."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from emotrack.realtime.core.accurate import AccurateModel
from emotrack.realtime.core.audio import StreamingResampler
from emotrack.realtime.core.model import ModelMismatchError, load_model
from emotrack.realtime.core.teacher import SAMPLE_RATE, TeacherStream
from emotrack.realtime.core.tracker import Tracker

from ..conftest import EMOTRACK

SR = 22050


@pytest.fixture(scope="module")
def model():
    return load_model("accurate")


def _music(seconds: float, seed: int = 0, sr: int = SR) -> np.ndarray:
    """Tones that change every second over a little noise: something for the taggers to hear."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = 110 * 2 ** (rng.integers(0, 24, size=int(seconds) + 1) / 12)
    y = 0.3 * np.sin(2 * np.pi * f[t.astype(int)] * t) + 0.02 * rng.normal(size=len(t))
    return y.astype(np.float32)


def _track(model, y, blocks, sr=SR, hop=None):
    tr = Tracker(model, sr, hop=hop)
    out, i = [], 0
    for b in blocks:
        out += tr.push(y[i:i + b])
        i += b
    out += tr.push(y[i:])
    return np.array([[p.t, p.valence, p.arousal, p.valence_std, p.arousal_std] for p in out]), out


def test_loads_by_name_and_by_path(model):
    assert isinstance(model, AccurateModel) and model.takes == "audio"
    assert model.name == "emotrack-accurate" and model.input_shape == (model.features.frame_samples,)
    assert len(model.descriptor_names) >= 10 and "soft" in model.descriptor_names
    again = load_model(str(model.path))  # a path to it is told apart by its metadata
    assert isinstance(again, AccurateModel)
    with pytest.raises(ModelMismatchError, match="not an accurate dynamic model"):
        AccurateModel(load_model().path)  # the VAE-LSTM's file


def test_any_block_sizes_give_the_same_trajectory(model):
    y = _music(9.0)
    whole, preds = _track(model, y, [len(y)])
    rng = np.random.default_rng(1)
    parts, _ = _track(model, y, rng.integers(1, 9000, size=40))
    assert len(whole) == 18 and np.allclose(whole[:, 0], 0.5 * np.arange(1, 19))
    # the same frames through the same graphs in other batch sizes: float32 sums in another order
    np.testing.assert_allclose(parts, whole, atol=1e-5, rtol=0)
    d = np.array([p.descriptors for p in preds])
    assert d.shape == (18, len(model.descriptor_names)) and ((d > 0) & (d < 1)).all()
    assert np.ptp(whole[:, 1:3], axis=0).min() > 1e-3  # the music changes, so does the answer


def test_run_leaves_its_state_alone(model):
    frames = _music(2.0)[: 4 * 11025].reshape(4, 11025)
    s0 = model.zero_state()
    a, s1 = model.run(frames, s0)
    b, _ = model.run(frames, s0)
    np.testing.assert_array_equal(a.valence, b.valence)
    c, _ = model.run(frames[:1], s1)  # and the new state carries on where the frames ended
    whole, _ = model.run(np.concatenate([frames, frames[:1]]), s0)
    assert abs(float(c.valence[0]) - float(whole.valence[-1])) <= 1e-5


def test_causal(model):
    """The answer at a frame never depends on audio after the frame's end."""
    y = _music(8.0)
    other = y.copy()
    other[int(5.0 * SR):] = _music(3.0, seed=7)[: len(y) - int(5.0 * SR)]
    a, _ = _track(model, y, [len(y)])
    b, _ = _track(model, other, [len(other)])
    np.testing.assert_array_equal(a[:10], b[:10])  # frames ending at 0.5 ... 5.0 s
    assert np.abs(a[10:, 1:] - b[10:, 1:]).max() > 1e-4


def test_windows_are_those_of_the_teacher_stream(model):
    """The model-rate signal resampled to 16 kHz in one go gives the windows the song path and
    the teacher pass compute: the head is fed what it was trained on."""
    y = _music(6.0, seed=3)
    feats, _ = model.teacher_features(y[: 12 * 11025].reshape(12, 11025), model.zero_state())
    ts = TeacherStream(model.teachers, 0.5)
    ts.push(StreamingResampler(SR, SAMPLE_RATE).process(y[: 12 * 11025]))
    np.testing.assert_allclose(feats, ts.features, atol=1e-5, rtol=0)


def test_finer_hop_keeps_the_half_second_grid(model):
    y = _music(6.0, seed=4)
    half, _ = _track(model, y, [len(y)])
    fine, _ = _track(model, y, [len(y)], hop=0.1)
    assert np.allclose(np.diff(fine[:, 0]), 0.1)
    on_grid = fine[np.isclose((fine[:, 0] + 0.25) % 0.5, 0.25)]
    np.testing.assert_allclose(on_grid, half, atol=1e-5, rtol=0)


def test_input_at_another_rate_and_channels(model):
    y = _music(4.0, sr=44100)
    a, _ = _track(model, np.stack([y, y], 1), [len(y)], sr=44100)
    assert len(a) == 8 and np.isfinite(a).all()


def run_cli(*args):
    return subprocess.run(EMOTRACK + list(args), capture_output=True, text=True, timeout=300)


def test_analyze_takes_it(tmp_path):
    wav = tmp_path / "m.wav"
    import soundfile as sf

    sf.write(str(wav), _music(5.0), SR)
    r = run_cli("analyze", "--model", "accurate", str(wav))
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.returncode == 0 and len(lines) == 10 and lines[-1]["t"] == pytest.approx(5.0, abs=1e-9)
    bad = run_cli("analyze", "--model", str(tmp_path / "none.onnx"), str(wav))
    assert bad.returncode != 0 and "does not exist" in bad.stderr
