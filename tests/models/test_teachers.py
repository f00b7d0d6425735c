"""The teachers: the numpy checkpoint reader, the torch port of musicnn against its own
TensorFlow graph (tests/fixtures/musicnn_tf.npz, made by scripts/teacher_fixture.py),
the front end's float16 detail, and the causal fast runner."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("librosa")
from emotrack.models import teachers  # noqa: E402
from emotrack.models.tfckpt import CheckpointError, read_checkpoint  # noqa: E402

from ..conftest import ROOT  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "musicnn_tf.npz"
VGG_FIXTURE = ROOT / "tests" / "fixtures" / "musicnn_vgg_tf.npz"


@pytest.fixture(scope="module")
def have_musicnn():
    try:
        teachers.checkpoint_dir("MTT_musicnn")
    except teachers.TeacherMissingError as e:
        pytest.skip(str(e))


def test_checkpoint_reader_reads_every_weight(have_musicnn):
    w = read_checkpoint(teachers.checkpoint_dir("MTT_musicnn"))
    params = {k: v for k, v in w.items() if "Adam" not in k and not k.endswith("_power")}
    assert sum(v.size for v in params.values()) == 792_079
    assert params["conv2d/kernel"].shape == (7, 38, 1, 204)
    assert params["dense_1/kernel"].shape == (200, 50)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in params.values())


def test_checkpoint_reader_refuses_garbage(tmp_path):
    (tmp_path / "x.index").write_bytes(b"not a checkpoint at all" * 4)
    with pytest.raises(CheckpointError, match="magic"):
        read_checkpoint(tmp_path / "x")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_checkpoint(tmp_path / "missing")


@pytest.mark.parametrize("name", teachers.TEACHERS)
def test_torch_port_matches_tensorflow(have_musicnn, name):
    f = np.load(FIXTURE)
    spec = teachers.melspectrogram(f["audio_int16"].astype(np.float32) / 32767)
    patches = torch.from_numpy(np.stack([spec[s:s + teachers.PATCH_FRAMES] for s in f["starts"]]))
    net = teachers.load_teacher(name)
    with torch.no_grad():
        logits, pen, mean_pool, _ = net(patches)
    # TF and torch sum in different orders: the measured gap is ~1e-5 on logits up to ~8
    np.testing.assert_allclose(logits.numpy(), f[f"{name}_logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(pen.numpy(), f[f"{name}_penultimate"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(mean_pool.numpy(), f[f"{name}_mean_pool"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", teachers.VGG_TAGGERS)
def test_vgg_port_matches_tensorflow(have_musicnn, name):
    """The wheel's VGG taggers (probed as extra teachers) against TF's own graph on the same
    patches (``scripts/teacher_fixture.py --vgg``): logits, the flattened last pool (whose
    order the dense layer depends on) and the fourth pool, TF's NHWC."""
    f = np.load(VGG_FIXTURE)
    spec = teachers.melspectrogram(f["audio_int16"].astype(np.float32) / 32767)
    patches = torch.from_numpy(np.stack([spec[s:s + teachers.PATCH_FRAMES] for s in f["starts"]]))
    with torch.no_grad():
        logits, flat, pools = teachers.load_vgg(name)(patches)
    # measured gap ~1e-5 (summation order), on logits up to ~10
    np.testing.assert_allclose(logits.numpy(), f[f"{name}_logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(flat.numpy(), f[f"{name}_pool5"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(pools[3].permute(0, 2, 3, 1).numpy(), f[f"{name}_pool4"], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="unknown VGG tagger"):
        teachers.load_vgg("MSD_musicnn")


def test_front_end_casts_to_float16_before_the_log():
    x = np.array([[7.0, 0.1, 3e-6]], np.float32)
    y = teachers.log_compress(x)
    # 10000 * 7 overflows float16 (max 65504): musicnn's own code gives inf there
    assert np.isfinite(y).all()
    x16 = x.astype(np.float16).astype(np.float32)  # 0.1 -> 0.0999755..., 3e-6 -> 2.98e-06
    np.testing.assert_allclose(y, np.log10(10000 * x16.astype(np.float64) + 1), rtol=1e-6)
    assert abs(y[0, 1] - np.log10(10000 * 0.1 + 1)) > 1e-5  # the cast is really there


@pytest.fixture(scope="module")
def runner(have_musicnn, tmp_path_factory):
    return teachers.TeacherRunner(workdir=tmp_path_factory.mktemp("teachers"))


def _windows_alone():
    """5 s of noise growing louder, frame ends every 0.5 s, and each causal window cut out on
    its own (silence before the signal, as a stream starts): what a runner must equal."""
    rng = np.random.default_rng(0)
    y = (rng.normal(size=16000 * 5) * np.linspace(0.01, 0.3, 16000 * 5)).astype(np.float32)
    ends = 0.5 * np.arange(1, 11)
    spec = np.concatenate([np.zeros((teachers.PATCH_FRAMES - 1, teachers.N_MELS), np.float32),
                           teachers.melspectrogram(y)])
    x = torch.from_numpy(np.stack([spec[s:s + teachers.PATCH_FRAMES] for s in teachers.window_starts(ends)]))
    return y, ends, x


def test_fast_runner_equals_the_network_on_each_window(runner):
    y, ends, x = _windows_alone()
    out = runner.run(y, ends)
    for name in teachers.TEACHERS:
        net = teachers.load_teacher(name)
        with torch.no_grad():
            logits, pen, _, _ = net(x)
        np.testing.assert_allclose(out[f"{name}_logits"], logits.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(out[f"{name}_penultimate"], pen.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("which", ["runner", "vgg_runner"])
def test_teacher_windows_are_causal(which, request):
    runner = request.getfixturevalue(which)
    rng = np.random.default_rng(1)
    y = (rng.normal(size=16000 * 6) * 0.1).astype(np.float32)
    ends = 0.5 * np.arange(1, 13)
    base = runner.run(y, ends)
    cut = 3.0  # change everything after 3.0 s: windows ending at or before it must not move
    z = y.copy()
    z[int(cut * 16000):] = rng.normal(size=len(z) - int(cut * 16000)).astype(np.float32)
    moved = runner.run(z, ends)
    before = ends <= cut
    for key in base:
        np.testing.assert_array_equal(base[key][before], moved[key][before])
        assert np.abs(base[key][~before] - moved[key][~before]).max() > 1e-3  # later windows do see it


@pytest.fixture(scope="module")
def vgg_runner(have_musicnn, tmp_path_factory):
    return teachers.VggRunner(workdir=tmp_path_factory.mktemp("vgg"))


def test_vgg_runner_equals_the_network_on_each_window(vgg_runner):
    y, ends, x = _windows_alone()
    out = vgg_runner.run(y, ends)
    with torch.no_grad():
        logits, flat, pools = teachers.load_vgg("MSD_vgg")(x)
    np.testing.assert_allclose(out["MSD_vgg_logits"], logits.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(out["MSD_vgg_pool5"], flat.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(out["MSD_vgg_pool4mean"], pools[3].mean((2, 3)).numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(out["MSD_vgg_pool4max"], pools[3].amax((2, 3)).numpy(), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="after the audio"):
        vgg_runner.run(y, [6.0])
