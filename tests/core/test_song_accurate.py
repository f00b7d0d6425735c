"""The opt-in accurate whole-song model at run time, without torch: the musicnn teachers'
numpy front end and streamed windows, `analyze --song --song-model accurate` and the index
with it, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from emotrack.realtime.core import teacher as T
from emotrack.realtime.core.model import ModelMismatchError
from emotrack.realtime.core.song import (
    AccurateSongModel,
    SongModel,
    SongTooShortError,
    analyze_song,
    open_song_model,
)

from ..conftest import DEMO_SECONDS, noise
from .test_song import analyze


@pytest.fixture(scope="module")
def teachers():
    return T.TeacherModel()


def _music(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Decaying notes over noise, loud enough that the spectrogram is not near silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    notes = 220 * 2 ** (rng.integers(0, 24, size=int(seconds * 4) + 1) / 12)
    k = (t * 4).astype(int)
    return (0.3 * np.sin(2 * np.pi * notes[k] * t) * np.exp(-3 * (t * 4 - k)) + 0.01 * rng.standard_normal(len(t))
            ).astype(np.float32)


def test_streamed_windows_equal_the_whole_signal_in_any_blocks(teachers):
    y = _music(10.0)
    spec = np.concatenate([np.zeros((T.PATCH_FRAMES - 1, T.N_MELS), np.float32), T.melspectrogram(y)])
    for stride in (0.5, 3.0):
        ends = stride * np.arange(1, int(10.0 / stride) + 1)
        starts = T.window_starts(ends)
        whole = teachers.run(np.stack([spec[s:s + T.PATCH_FRAMES] for s in starts]))
        for block in (160, 4099, len(y)):
            st = T.TeacherStream(teachers, stride)
            for i in range(0, len(y), block):
                st.push(y[i:i + block])
            np.testing.assert_allclose(st.t, ends)
            # the same rows through the same graph, batched differently: float32 round-off only
            np.testing.assert_allclose(st.features, whole, atol=1e-5, rtol=0)


def test_windows_are_causal_and_memory_stays_bounded(teachers):
    y = _music(9.0, seed=1)
    z = y.copy()
    z[int(6.0 * 16000):] = _music(3.0, seed=2)  # a different last 3 s
    a, b = T.TeacherStream(teachers, 1.0), T.TeacherStream(teachers, 1.0)
    for i in range(0, len(y), 8000):
        a.push(y[i:i + 8000])
        b.push(z[i:i + 8000])
    before = np.array(a.t) <= 6.0
    np.testing.assert_array_equal(a.features[before], b.features[before])
    assert np.abs(a.features[~before] - b.features[~before]).max() > 1e-3  # later windows do hear it
    # only the frames the next window needs are kept (3 s of spectrogram, not 9 s)
    assert len(a._spec) <= T.PATCH_FRAMES + 16000 // T.HOP and len(a._audio) < T.N_FFT + 8000


def test_a_stream_shorter_than_a_stride_still_gets_one_window(teachers):
    st = T.TeacherStream(teachers, 3.0)
    st.push(_music(1.2))
    f = st.finish()
    assert st.t == [1.0] and f.shape == (1, T.FEATURE_DIM) and np.isfinite(f).all()
    empty = T.TeacherStream(teachers, 3.0)
    empty.push(_music(0.3))
    assert empty.finish().shape == (0, T.FEATURE_DIM)
    with pytest.raises(SongTooShortError):
        AccurateSongModel().predict_features(empty.finish())


def test_analyze_song_accurate_without_torch(demo_path, tmp_path):
    r = analyze("--song", "--song-model", "accurate", str(demo_path))
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["song_model"].startswith("emotrack-song-accurate ") and abs(rec["duration"] - DEMO_SECONDS) < 0.05
    assert -1 <= rec["valence"] <= 1 and -1 <= rec["arousal"] <= 1
    default = json.loads(analyze("--song", str(demo_path)).stdout)
    assert rec["trajectory"] == default["trajectory"]  # the same trajectory from the same read
    # a calm and an agitated clip get different answers, and the calm one is calmer
    calm, busy = tmp_path / "calm.wav", tmp_path / "busy.wav"
    sf.write(str(calm), 0.05 * np.sin(2 * np.pi * 220 * np.arange(20 * 44100) / 44100), 44100)
    sf.write(str(busy), noise(20, 44100, seed=3) * 0.8, 44100)
    out = analyze("--song", "--song-model", "accurate", str(calm), str(busy))
    assert out.returncode == 0, out.stderr
    c, b = (json.loads(line) for line in out.stdout.splitlines())
    assert b["arousal"] - c["arousal"] > 0.1, (c, b)


def test_open_song_model_tells_the_kinds_apart(tmp_path):
    from emotrack.realtime.assets import asset_path

    assert isinstance(open_song_model(None), SongModel)
    acc = open_song_model(str(asset_path("emotrack-song-accurate.onnx")))
    assert isinstance(acc, AccurateSongModel) and acc.stride == 3.0
    with pytest.raises(ModelMismatchError, match="not an accurate whole-song model"):
        AccurateSongModel(asset_path("emotrack-song.onnx"))
    with pytest.raises(ModelMismatchError, match="not the musicnn teachers"):
        AccurateSongModel(teachers=asset_path("emotrack-song.onnx"))


def test_non_finite_samples_are_silence_and_counted(model, tmp_path):
    y = _music(6.0, sr=22050)
    y[1000:1010] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), y, 22050, subtype="FLOAT")
    res = analyze_song(model, path, AccurateSongModel())
    assert res.nonfinite == 10 and np.isfinite([res.valence, res.arousal]).all()
