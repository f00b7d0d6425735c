"""Whole-song emotion at run time: `emotrack analyze --song` with the shipped whole-song graph,
without torch; its agreement with the frame-by-frame output and the offline features; and
the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from ..conftest import DEMO_FRAMES, DEMO_SECONDS, noise

NO_TORCH = ("import sys; sys.modules['torch'] = None; sys.modules['sklearn'] = None; "
            "from emotrack.realtime.cli import main; sys.exit(main(sys.argv[1:]))")


def analyze(*args, torch_blocked=True):
    cmd = [sys.executable, "-c", NO_TORCH] if torch_blocked else [sys.executable, "-m", "emotrack.realtime.cli"]
    return subprocess.run(cmd + ["analyze", *args], capture_output=True, text=True, timeout=300)


def test_song_model_runs_without_torch_and_agrees_with_the_frames(demo_path, model):
    from emotrack.models.cache import audio_frames, load_audio
    from emotrack.realtime.core.audio import read_blocks
    from emotrack.realtime.core.song import SongModel, quadrant, trajectory_matrix
    from emotrack.realtime.core.tracker import stream_blocks

    r = analyze("--song", str(demo_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["file"] == str(demo_path) and abs(rec["duration"] - DEMO_SECONDS) < 0.05
    assert -1 <= rec["valence"] <= 1 and -1 <= rec["arousal"] <= 1
    assert rec["song_model"].startswith("emotrack-song ") and rec["trajectory_model"].startswith("emotrack-vae-lstm ")
    assert rec["quadrant"] == quadrant(rec["valence"], rec["arousal"])

    # the trajectory summary is that of the frames `emotrack analyze` prints
    sr, _, blocks = read_blocks(demo_path)
    preds = list(stream_blocks(model, sr, blocks))
    full = trajectory_matrix(*np.array([[p.valence, p.arousal, p.valence_std, p.arousal_std] for p in preds]).T,
                             [p.descriptors for p in preds])
    frames = full[:, :2]
    traj = rec["trajectory"]
    assert traj["frames"] == len(frames) == DEMO_FRAMES
    assert traj["warmup_frames_left_out"] == 4  # the LSTM's first 2 s, as in evaluation
    for d, key in ((0, "valence"), (1, "arousal")):
        assert abs(traj[key]["mean"] - frames[4:, d].mean()) < 1e-3
        assert abs(traj[key]["max"] - frames[4:, d].max()) < 1e-3
    assert abs(sum(traj["quadrant_share"].values()) - 1) < 1e-3

    # the whole-song value is the model on the offline frames that training used and on every
    # output of every frame of the dynamic trajectory (the shipped model's head reads them), with
    # the trajectory's mean mixed in as its metadata says
    song, mels = SongModel(), audio_frames(load_audio(demo_path))
    assert (song.trajectory_model, song.trajectory_sha256) == (model.label, model.sha256) and song.made_for(model)
    assert 0 <= song.trajectory_weight <= 1
    if song.trajectory_columns:  # a trajectory head (emotrack-song 3, half of 5) reads every output of every frame
        assert song.trajectory_columns == 4 + len(model.descriptor_names) == full.shape[1] and song.hears(full, model)
    else:  # the code head answers (emotrack-song 4), with the trajectory's mean mixed in
        assert song.trajectory_weight > 0 and not song.hears(full, model)
    v, a = song.whole(mels, full, model)
    assert abs(v - rec["valence"]) < 1e-3 and abs(a - rec["arousal"]) < 1e-3
    head = song.predict(mels)  # the code head: what any other dynamic model gets, even under the same label
    same_label = SimpleNamespace(label=model.label, sha256="0" * 64)
    assert song.whole(mels, full, same_label) == head and not song.hears(full, same_label)
    assert max(abs(v - head[0]), abs(a - head[1])) > 1e-3  # the trajectory (its head or its mean) changes the answer


def test_song_blend_mixes_the_trajectory_mean_only_for_its_own_dynamic_model():
    from emotrack.realtime.core.song import SongModel

    song = SongModel.__new__(SongModel)  # the weights as a model's metadata would give them
    song.trajectory_weight, song.trajectory_model, song.trajectory_sha256 = 0.75, "emotrack-vae-lstm 3", "ab" * 32
    own = SimpleNamespace(label="emotrack-vae-lstm 3", sha256="ab" * 32)
    traj = np.array([[0.2, -0.4, 0.3, 0.3], [0.6, 0.0, 0.3, 0.3]])  # mean (0.4, -0.2)
    v, a = song.blend((0.8, 0.2), traj, own)
    assert abs(v - (0.75 * 0.8 + 0.25 * 0.4)) < 1e-9 and abs(a - (0.75 * 0.2 - 0.25 * 0.2)) < 1e-9
    for other in (SimpleNamespace(label="emotrack-accurate 1", sha256="ab" * 32),  # another model: the head alone
                  SimpleNamespace(label="emotrack-vae-lstm 3", sha256="cd" * 32)):  # an own export under that label
        assert song.blend((0.8, 0.2), traj, other) == (0.8, 0.2)
    assert song.blend((0.8, 0.2), traj[:0], own) == (0.8, 0.2)
    assert song.blend((1.0, -1.0), np.array([[1.0, -1.0]]), own) == (1.0, -1.0)  # stays in range
    song.trajectory_sha256 = None  # a model exported before the sha256 was recorded: the label decides
    assert song.blend((0.8, 0.2), traj, SimpleNamespace(label="emotrack-vae-lstm 3", sha256="cd" * 32)) != (0.8, 0.2)
    song.trajectory_weight = 1.0
    assert song.blend((0.8, 0.2), traj, own) == (0.8, 0.2)


def test_song_value_depends_on_the_music(tmp_path):
    """Different music, different answers: the demo against a quiet noise and a loud
    click track (which must not all land on one point)."""
    sr = 22050
    t = np.arange(sr * 20) / sr
    clicks = (np.sin(2 * np.pi * 2000 * t) * (np.mod(t, 0.125) < 0.01)).astype(np.float32) * 0.9
    sf.write(tmp_path / "hiss.wav", noise(20, sr) * 0.01, sr)
    sf.write(tmp_path / "clicks.wav", clicks, sr)
    r = analyze("--song", "--format", "csv", str(tmp_path / "hiss.wav"), str(tmp_path / "clicks.wav"))
    assert r.returncode == 0, r.stderr
    rows = r.stdout.strip().splitlines()
    head = rows[0].split(",")
    assert head[:4] == ["file", "duration", "valence", "arousal"] and "trajectory_arousal_mean" in head
    vals = [tuple(float(x) for x in row.split(",")[2:4]) for row in rows[1:]]
    assert len(vals) == 2 and max(abs(vals[0][0] - vals[1][0]), abs(vals[0][1] - vals[1][1])) > 0.05


def test_song_refusals(tmp_path, demo_path):
    sf.write(tmp_path / "short.wav", noise(0.3, 22050), 22050)
    (tmp_path / "broken.mp3").write_bytes(b"not audio at all" * 100)
    r = analyze("--song", str(tmp_path / "short.wav"), str(tmp_path / "broken.mp3"), str(demo_path))
    assert r.returncode == 3
    assert "shorter than one 0.5 s frame" in r.stderr and "broken.mp3" in r.stderr
    assert "2 of 3 files could not be analysed" in r.stderr
    assert [json.loads(x)["file"] for x in r.stdout.strip().splitlines()] == [str(demo_path)]  # the good one is kept

    r = analyze("--song", "--hop", "0.25", str(demo_path))
    assert r.returncode == 2 and "leave out --hop" in r.stderr

    from emotrack.realtime.core.model import default_model_path

    r = analyze("--song-model", str(default_model_path()), str(demo_path))
    assert r.returncode == 2 and "not a whole-song model" in r.stderr and "export-song" in r.stderr
    r = analyze("--song", "--song-model", str(tmp_path / "none.onnx"), str(demo_path))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_code_statistics_in_the_graph_equal_numpy():
    torch = pytest.importorskip("torch")
    from emotrack.models.song import torch_modules
    from emotrack.models.static import code_statistics

    CodeStats = torch_modules()[0]
    g = torch.Generator().manual_seed(0)
    for T in (1, 2, 3, 10, 91):
        z = torch.randn(T, 32, generator=g)
        np.testing.assert_allclose(CodeStats()(z).numpy(), code_statistics(z.numpy()), atol=1e-5)


def test_trajectory_statistics_in_the_graph_equal_numpy():
    """The trajectory head reads the descriptors as logits (clipped, so 0 and 1 stay finite)
    and the five statistics of every column, in the graph as in training."""
    torch = pytest.importorskip("torch")
    from emotrack.export.song_export import random_trajectory
    from emotrack.models.song import torch_modules, trajectory_statistics

    _, RbfSvr, _, _, TrajectoryHead = torch_modules()
    svr = RbfSvr(np.zeros((1, 30)), np.zeros(1), 0.0, 1.0)
    head = TrajectoryHead(np.zeros(30), np.ones(30), svr, svr)
    g = torch.Generator().manual_seed(0)
    for T in (1, 2, 5, 40):
        traj = random_trajectory(T, 6, g)
        traj[0, 4:] = torch.tensor([0.0, 1.0])  # saturated descriptors
        got = head.statistics(traj).numpy()
        assert got.shape == (30,) and np.isfinite(got).all()
        np.testing.assert_allclose(got, trajectory_statistics(traj.numpy()), atol=1e-4)


def test_song_benchmark_times_both_paths(model):
    """`emotrack bench --song` times the whole path and the graph on the same 45 s clip,
    and, with opensmile installed, the ComParE extraction it is compared with."""
    from emotrack.realtime.bench.model import bench_song

    res = bench_song(model, runs=2)
    assert res["frames"] == 90 and res["runs"] == 2
    assert 0 < res["song_graph_ms"]["median_ms"] < res["whole_ms"]["median_ms"] <= res["whole_ms"]["p95_ms"]
    try:
        import opensmile  # noqa: F401
    except ImportError:
        assert res["compare_extraction_ms"] is None
    else:
        assert res["compare_extraction_ms"]["runs"] == 5 and res["compare_extraction_ms"]["median_ms"] > 0


def test_song_folds_keep_each_group_in_one_fold_and_deal_them_evenly():
    pytest.importorskip("sklearn")
    from emotrack.models.data import Clip
    from emotrack.models.song import song_folds

    rng = np.random.default_rng(0)
    clips = [Clip(ds, f"{ds}-{i}", f"g{g}", "train") for ds, n in (("soundtracks", 40), ("panda4q", 60))
             for i, g in enumerate(rng.integers(0, n // 3, n))]
    fold = song_folds(clips, 5)
    assert set(fold) == set(range(5))
    for ds in ("soundtracks", "panda4q"):
        groups = {}
        for c, f in zip(clips, fold, strict=True):
            if c.dataset == ds:
                groups.setdefault(c.group, set()).add(int(f))
        assert all(len(v) == 1 for v in groups.values())  # no group (album, piece) split across folds
        sizes = np.bincount([f for c, f in zip(clips, fold, strict=True) if c.dataset == ds], minlength=5)
        assert sizes.min() > 0 and sizes.max() - sizes.min() <= max(len([c for c in clips if c.group == g])
                                                                   for g in groups)  # within one group's size
    assert np.array_equal(song_folds(clips, 5), fold)  # deterministic
    with pytest.raises(ValueError, match="soundtracks has 3 groups .* --cv 5 needs at least 5"):
        song_folds([Clip("soundtracks", str(i), f"a{i % 3}", "val") for i in range(9)], 5)
