"""The one log-mel definition, the streaming resampler and the framer."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
from emotrack.realtime.core.audio import Framer, StreamingResampler
from emotrack.realtime.core.config import FEATURES, FeatureConfig
from emotrack.realtime.core.features import logmel_frames, mel_filterbank


def _blocks(x, sizes):
    i, k = 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        yield x[i : i + n]
        i += n
        k += 1


def test_frame_geometry():
    assert FEATURES.frame_samples == 11025
    assert FEATURES.frame_shape == (64, 23)
    # the last STFT window of a frame ends inside the frame: no padding across borders
    assert (FEATURES.n_stft_frames - 1) * FEATURES.stft_hop + FEATURES.n_fft <= FEATURES.frame_samples


@pytest.mark.parametrize("sr", [22050, 24000, 44100, 48000, 16000, 88200, 96000, 8000, 44101])
def test_resampler_is_block_size_independent(sr):
    x = np.random.default_rng(1).standard_normal(sr * 2).astype(np.float32)
    whole = StreamingResampler(sr, 22050).process(x)
    for sizes in ([1, 333, 4096, 17], [sr // 2], [50_000, 3]):  # single samples, live blocks, big reads
        rs = StreamingResampler(sr, 22050)
        parts = np.concatenate([rs.process(b) for b in _blocks(x, sizes)])
        assert len(whole) == len(parts) == 2 * 22050
        # exact by design: each output is the same row of a product of the same shape, whatever
        # the blocks (a single row or a narrower band would take another BLAS kernel)
        np.testing.assert_array_equal(whole, parts)


def _filter64(rs: StreamingResampler, x: np.ndarray, n: int) -> np.ndarray:
    """The plain definition in float64: output k is the dot of the K inputs ending at input
    (k*M)//L (zeros before the start) with the taps of its phase (k*M) % L."""
    buf = np.concatenate([np.zeros(rs.K - 1), x.astype(np.float64)])
    m = np.arange(n, dtype=np.int64) * rs.M
    win = np.lib.stride_tricks.sliding_window_view(buf, rs.K)
    return (win[m // rs.L] * rs._polyrev[m % rs.L].astype(np.float64)).sum(axis=1)


@pytest.mark.parametrize("sr", [44100, 88200])
def test_one_phase_resampler_is_the_causal_filter(sr):
    # 44.1 -> 22.05 kHz has one polyphase phase: every M-th output of the causal FIR
    # (float32 sums against float64 np.convolve: within 1e-5 on unit noise)
    x = np.random.default_rng(4).standard_normal(sr // 2).astype(np.float32)
    rs = StreamingResampler(sr, 22050)
    y = rs.process(x)
    assert rs.L == 1 and len(y) == len(x) // rs.M
    h = rs._polyrev[0][::-1].astype(np.float64)  # poly[0, q] weights the q-th most recent input
    ref = np.convolve(x.astype(np.float64), h)[: len(x)][:: rs.M]
    np.testing.assert_allclose(y, ref, atol=1e-5)
    np.testing.assert_allclose(_filter64(rs, x, len(y)), ref, atol=1e-12)  # the definition says the same


def test_resampler_passband_and_stopband():
    sr = 48000
    t = np.arange(sr) / sr
    for f, lo, hi in ((1000, 0.99, 1.01), (13000, 0.0, 0.02)):
        y = StreamingResampler(sr, 22050).process(np.sin(2 * np.pi * f * t).astype(np.float32))
        amp = np.abs(y[2000:-2000]).max()
        assert lo <= amp <= hi, (f, amp)


def test_resampler_is_causal():
    sr = 44100
    x = np.zeros(sr, np.float32)
    x[sr // 2] = 1.0  # an impulse at 0.5 s
    y = StreamingResampler(sr, 22050).process(x)
    first = np.nonzero(np.abs(y) > 1e-6)[0][0]
    assert first / 22050 >= 0.5 - 1e-9  # nothing before the impulse arrives


def test_streamed_frames_equal_offline_frames():
    x = np.random.default_rng(2).standard_normal(22050 * 5).astype(np.float32)
    f1 = Framer(FEATURES.frame_samples, FEATURES.frame_samples, 22050)
    off, t_off = f1.push(x)
    f2 = Framer(FEATURES.frame_samples, FEATURES.frame_samples, 22050)
    got = [f2.push(b) for b in _blocks(x, [100, 5000, 11025, 7])]
    on = np.concatenate([g[0] for g in got])
    t_on = np.concatenate([g[1] for g in got])
    np.testing.assert_array_equal(off, on)
    np.testing.assert_array_equal(t_off, t_on)
    np.testing.assert_allclose(t_off, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0])
    np.testing.assert_array_equal(logmel_frames(off), np.concatenate([logmel_frames(f[None]) for f in on]))


def test_framer_keeps_bounded_history():
    f = Framer(11025, 2205, 22050)
    for _ in range(200):
        f.push(np.zeros(3000, np.float32))
    assert len(f._buf) < 11025 + 3000


def test_sine_lands_in_its_mel_band():
    sr = FEATURES.sample_rate
    t = np.arange(FEATURES.frame_samples) / sr
    fb = mel_filterbank()
    bins = np.linspace(0, sr / 2, FEATURES.n_fft // 2 + 1)
    for f in (200.0, 1000.0, 5000.0):
        m = logmel_frames(np.sin(2 * np.pi * f * t).astype(np.float32))
        band = int(m.mean(1).argmax())
        assert band == int(fb[:, np.argmin(np.abs(bins - f))].argmax())


def test_gain_shifts_logmel():
    x = np.random.default_rng(3).standard_normal(FEATURES.frame_samples).astype(np.float32) * 0.1
    a, b = logmel_frames(x), logmel_frames(x * 10 ** (6 / 20))
    np.testing.assert_allclose(b - a, 6 / FEATURES.db_scale, atol=1e-4)


def test_config_roundtrip_and_diff():
    d = FEATURES.to_dict()
    assert FeatureConfig.from_dict(d) == FEATURES
    other = FeatureConfig(n_mels=96)
    assert FEATURES.diff(other) == {"n_mels": (64, 96)}
    with pytest.raises(ValueError, match="unknown feature parameters"):
        FeatureConfig.from_dict({**d, "bogus": 1})


def test_stereo_to_mono_is_the_mean_of_the_channels_exactly():
    # the fast path for two channels must give the same float32 numbers as numpy's mean, so that
    # a file and its stereo or mono rendering keep giving the trajectories recorded before it
    from emotrack.realtime.core.audio import to_mono

    rng = np.random.default_rng(3)
    x = rng.standard_normal((48_000, 2)).astype(np.float32)
    x[:4] = [[3e38, 3e38], [np.inf, -np.inf], [np.nan, 1.0], [1e-45, 1e-45]]  # overflow, inf, NaN, subnormal
    with np.errstate(over="ignore", invalid="ignore"):
        np.testing.assert_array_equal(to_mono(x), x.mean(axis=1, dtype=np.float32))
    x3 = rng.standard_normal((1000, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_mono(x3), x3.mean(axis=1, dtype=np.float32))
    np.testing.assert_array_equal(to_mono(x[:, :1]), x[:, 0])  # one channel, as a column or as it is
    np.testing.assert_array_equal(to_mono(x[:, 0]), x[:, 0])


def _plain_logmel(frames, cfg=FEATURES):
    """The log-mel written plainly (a gather of the STFT windows, the stacked product): the
    formula the training features were computed with; the runtime's faster form must give
    the same bits, or cached features and live frames would drift apart."""
    from emotrack.realtime.core.features import _window

    idx = np.arange(cfg.n_fft)[None, :] + cfg.stft_hop * np.arange(cfg.n_stft_frames)[:, None]
    spec = np.fft.rfft(frames[:, idx] * _window(cfg), axis=-1)
    mel = (spec.real**2 + spec.imag**2).astype(np.float32) @ mel_filterbank(cfg).T
    db = 10.0 * np.log10(np.maximum(mel, cfg.power_floor))
    return np.ascontiguousarray(((db - cfg.db_offset) / cfg.db_scale).transpose(0, 2, 1), dtype=np.float32)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_logmel_equals_the_plain_formula_bit_for_bit(n):
    rng = np.random.default_rng(n)
    for scale in (1e-6, 1e-3, 0.3, 3.0):  # silence-level to clipped, through the floor and the log
        x = (rng.standard_normal((n, FEATURES.frame_samples)) * scale).astype(np.float32)
        np.testing.assert_array_equal(logmel_frames(x), _plain_logmel(x))


def test_logmel_refuses_a_batch_of_batches():
    with pytest.raises(ValueError, match=r"expected one frame or a batch"):
        logmel_frames(np.zeros((2, 3, FEATURES.frame_samples), np.float32))


@pytest.mark.parametrize("sr_in,sr_out", [(48000, 22050), (24000, 22050), (22050, 16000), (96000, 22050),
                                           (8000, 22050), (192000, 16000), (44101, 22050)])
def test_many_phase_resampler_is_the_plain_filter(sr_in, sr_out):
    # outputs are computed as rows of whole periods against band matrices of taps (float64), in
    # runs of at most _OUTPUTS, or for a long period (44,101 Hz) gathered in runs of _CHUNK; each
    # must be the plain dot of its K inputs with its phase's taps, rounded to float32: within one
    # float32 step of the float64 dot (rounding is half a step; the float64 sums' own error ~1e-16)
    rs = StreamingResampler(sr_in, sr_out)
    assert rs._banded == (sr_in != 44101)
    x = np.random.default_rng(5).standard_normal(3 * rs._OUTPUTS * rs.M // rs.L + 777).astype(np.float32)
    y = rs.process(x)
    assert len(y) > 3 * rs._OUTPUTS  # several runs, the last one partial
    ref = _filter64(rs, x, len(y))
    assert (np.abs(y - ref) <= np.spacing(np.abs(ref).astype(np.float32))).all()


_RESAMPLE_RUN = """
import hashlib
import numpy as np
from emotrack.realtime.core.audio import StreamingResampler
x = np.random.default_rng(6).standard_normal(96000).astype(np.float32)
print(" ".join(hashlib.sha256(StreamingResampler(sr, out).process(x).tobytes()).hexdigest()[:16]
               for sr, out in ((48000, 22050), (44100, 22050), (22050, 16000), (44101, 22050))))
"""


@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("qemu-x86_64") is None,
                    reason="needs an x86_64 host and qemu-user (scripts/setup.sh installs it)")
def test_resampler_gives_the_same_bits_on_another_cpu():
    """The resampler's products go through BLAS, whose kernels differ by CPU; in float64 and
    rounded to float32 the samples are the same bits on an emulated Haswell (AVX2, another
    OpenBLAS kernel) as here (~10 s)."""
    here = subprocess.run([sys.executable, "-c", _RESAMPLE_RUN], capture_output=True, text=True, timeout=120)
    there = subprocess.run(["qemu-x86_64", "-cpu", "Haswell", sys.executable, "-c", _RESAMPLE_RUN],
                           capture_output=True, text=True, timeout=600)
    assert here.returncode == 0 and there.returncode == 0, (here.stderr[-1000:], there.stderr[-1000:])
    assert there.stdout.split() == here.stdout.split()


def _tones(freqs, seconds=0.5, sr=22050):
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32) * 0.2


def test_chroma_tells_semitones_apart_and_sums_to_one():
    from emotrack.realtime.core.features import chroma_frames

    # A4 is pitch class 9 and A#4 class 10, a semitone (26 Hz) apart: the long FFT keeps them apart
    a, b = chroma_frames(np.stack([_tones([440.0]), _tones([466.16])]))
    assert a.argmax() == 9 and a[9] > 0.9 and b.argmax() == 10 and b[10] > 0.9
    # a C major triad in the octave below middle C, where the log-mel's bands are ~50 Hz wide
    c = chroma_frames(_tones([130.81, 164.81, 196.0]))
    assert c[[0, 4, 7]].sum() > 0.85 and c[4] > 10 * c[3]  # E, not E flat: the mode is there
    np.testing.assert_allclose(chroma_frames(np.random.default_rng(0).standard_normal((7, 11025))).sum(1), 1.0,
                               rtol=1e-5)  # float32 sums of 12 shares
    silent = chroma_frames(np.stack([np.zeros(11025), np.full(11025, 1e-6)]))
    np.testing.assert_array_equal(silent, np.full((2, 12), 1 / 12, np.float32))  # no pitch below -100 dBFS
    with pytest.raises(ValueError, match="11025"):
        chroma_frames(np.zeros((2, 1000)))


def test_tonal_features_hear_the_mode_in_any_key():
    torch = pytest.importorskip("torch")
    from emotrack.models.nets import TonalFeatures
    from emotrack.realtime.core.features import chroma_frames

    tf = TonalFeatures()
    major = chroma_frames(np.stack([_tones([261.63 * 2 ** (k / 12) * r for r in (1, 2 ** (4 / 12), 2 ** (7 / 12))])
                                    for k in range(12)]))  # a major triad on each of the 12 roots
    minor = chroma_frames(np.stack([_tones([261.63 * 2 ** (k / 12) * r for r in (1, 2 ** (3 / 12), 2 ** (7 / 12))])
                                    for k in range(12)]))
    fm, fn = (tf.raw(torch.from_numpy(x)).numpy() for x in (major, minor))
    # transposition changes nothing: each feature is the same in all 12 keys, to the leakage of a
    # 1.35 Hz bin grid that sits a little differently under each root (it moves the entropy,
    # column 9, most: up to 0.1 of its 1.3; the rest by under 0.035)
    for f in (fm, fn):
        spread = np.abs(f - f[:1]).max(0)
        assert spread[9] < 0.12 and np.delete(spread, 9).max() < 0.035, spread
    # best major fit minus best minor fit: a major triad fits its major key a little better than
    # its relative minor (Krumhansl-Kessler: +0.06); a minor triad fits its minor key far better
    assert (fm[:, 2] > 0.04).all() and (fn[:, 2] < -0.2).all()
    assert (fm[:, 2] - fn[:, 2]).min() > 0.3


def test_the_profiles_average_is_causal_the_same_however_a_stream_is_cut_and_keeps_its_time_constant():
    from emotrack.realtime.core.features import average_profiles

    rng = np.random.default_rng(0)
    c = rng.dirichlet(np.ones(12), 40).astype(np.float32)
    avg, end = average_profiles(c, 10.0)
    assert avg.shape == (40, 12) and avg.dtype == np.float32
    np.testing.assert_allclose(avg.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(avg[0], c[0], atol=1e-7)  # a stream's first frame: its own profile
    a, mid = average_profiles(c[:17], 10.0)
    b, end2 = average_profiles(c[17:], 10.0, mid)
    np.testing.assert_array_equal(np.concatenate([a, b]), avg)  # the same float64 steps either way
    np.testing.assert_array_equal(end2, end)
    changed = c.copy()
    changed[30] = np.roll(changed[30], 5)
    np.testing.assert_array_equal(average_profiles(changed, 10.0)[0][:30], avg[:30])  # nothing from later frames
    # a long C, then G: after one time constant (20 frames of 0.5 s) 1 - 1/e of the way over
    C, G = np.eye(12)[0], np.eye(12)[7]
    step, _ = average_profiles(np.stack([C] * 400 + [G] * 20), 10.0)
    assert abs(step[-1, 7] - (1 - np.exp(-1))) < 1e-6 and abs(step[-1, 0] - np.exp(-1)) < 1e-6
    with pytest.raises(ValueError, match="time constant above 0"):
        average_profiles(c, 0.0)
    with pytest.raises(ValueError, match=r"shape \(T, 12\), got \(40, 6\)"):
        average_profiles(c[:, :6], 10.0)
