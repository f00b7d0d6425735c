"""The ridge teacher head with random Fourier features: it learns what a straight line through
the teachers' space cannot, and keeps the linear head's answers where it is off."""

from __future__ import annotations

import numpy as np
import torch
from emotrack.models import teacher_head
from emotrack.models.data import Clip
from emotrack.models.seqs import Seq

T = 20  # frames a clip


def _clips(n, rng, split, mix):
    """Clips whose 500 teacher outputs are a 64-d code mixed up, plus frame noise, with the
    stride-2 gaps of the teacher pass; valence a bowl in that code (no linear trace: its
    r with every linear read-out is ~0), arousal one of its directions."""
    seqs, feats = [], {}
    for i in range(n):
        u = rng.normal(size=64)
        c = Clip("soundtracks", f"{split}{i}", f"{split}{i}", split,
                 valence=float(np.tanh(0.05 * (u @ u - 64))), arousal=float(np.tanh(0.3 * u[0])))
        x = (u @ mix)[None] + 0.1 * rng.normal(size=(T, 500))
        x[1::2] = np.nan
        feats[c.key] = x.astype(np.float32)
        seqs.append(Seq(c, np.zeros((T, 1, 1), np.float16), np.full(T, np.nan), np.full(T, np.nan), np.zeros(2)))
    return seqs, feats


def test_random_features_learn_a_bend_the_linear_head_cannot(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(64, 500))
    (train, f1), (val, f2), (test, f3) = (_clips(n, rng, k, mix) for n, k in ((400, "train"), (100, "val"), (100, "test")))
    feats = {**f1, **f2, **f3}
    monkeypatch.setattr(teacher_head, "has_targets", lambda clip: True)
    monkeypatch.setattr(teacher_head, "teacher_features", lambda clip, n, vgg=False, tonal=None: feats[clip.key])
    labels = np.array([(s.clip.valence, s.clip.arousal) for s in test])

    def test_r(head):
        p = np.array([teacher_head.predict(head, s.clip, T) for s in test])
        assert np.isfinite(p).all()  # the gaps are held, as before
        return [float(np.corrcoef(p.mean(1)[:, d], labels[:, d])[0, 1]) for d in (0, 1)]

    linear, bent = teacher_head.fit(train, val), teacher_head.fit(train, val, rff=2000)
    assert linear["rff"] is None and bent["rff"]["W"].shape == (64, 2000)
    (lv, la), (bv, ba) = test_r(linear), test_r(bent)
    # measured 0.87 against -0.01 on these 100 clips; r's sampling sd there is ~0.1 at 0
    assert bv > 0.6 and abs(lv) < 0.3
    assert la > 0.95 and ba > 0.9  # the straight part is kept (0.998 and 0.976)
    # the random map travels with the head (student.pt keeps it): saved and read back, it answers the same
    torch.save({"teacher_head": bent}, tmp_path / "student.pt")
    back = torch.load(tmp_path / "student.pt", weights_only=False)["teacher_head"]
    clip = test[0].clip
    np.testing.assert_array_equal(teacher_head.predict(back, clip, T), teacher_head.predict(bent, clip, T))


def test_vgg_features_hold_the_last_window_and_never_look_ahead(monkeypatch, tmp_path):
    """The VGG pass runs every second frame: a frame between holds the window that ended
    before it, frames before the first window have none, and a window after the clip's
    last frame is never used."""
    from emotrack.models import teacher_pass

    monkeypatch.setenv("EMOTRACK_CACHE", str(tmp_path))
    clip = Clip("soundtracks", "x", "x", "train", valence=0.0, arousal=0.0)
    path = teacher_pass.targets_path(clip, vgg=True)
    path.parent.mkdir(parents=True)
    k = np.array([2, 4, 6], np.int32)
    parts = {key: (np.arange(3)[:, None] + 10 * i + np.zeros((3, d))).astype(np.float16)
             for i, (key, d) in enumerate(zip(teacher_pass.VGG_KEYS, (50, 256, 128, 128), strict=True))}
    np.savez(path, k=k, **parts)
    f = teacher_head.vgg_features(clip, 5)
    assert f.shape == (5, 562)
    assert np.isnan(f[0]).all()
    # window rows 0, 0, 1, 1 on frames 2..5 (the window at frame 6 is after the clip's end)
    np.testing.assert_array_equal(f[1:, 0], [0, 0, 1, 1])
    np.testing.assert_array_equal(f[1:, 50], [10, 10, 11, 11])  # the parts in VGG_KEYS order
    assert teacher_head.has_features(clip) is False  # no musicnn targets for it


def test_solve_weighs_each_set_the_same_and_learns_its_offset():
    """The array-level ridge (the frame-level head's and the clip-level probe's): every set
    weighs the same in total whatever its size, and a set with an offset gets it unpenalised."""
    rng = np.random.default_rng(0)
    D = np.array(["soundtracks"] * 900 + ["panda4q"] * 100)
    X = rng.normal(size=(1000, 3))
    coef = np.array([[0.5, -0.2], [0.0, 0.3], [0.1, 0.0]])
    Y = X @ coef + np.where(D == "soundtracks", -0.3, 0.0)[:, None]
    (w, b, off), = teacher_head.solve(X, Y, D, (1e-6,), ["soundtracks"])
    np.testing.assert_allclose(w, coef, atol=1e-6)  # noise-free: exact up to the tiny penalty
    np.testing.assert_allclose(b, 0.0, atol=1e-6)
    np.testing.assert_allclose(off["soundtracks"], [-0.3, -0.3], atol=1e-6)
    # an enormous penalty leaves the intercept alone: the mean of the two sets' means, not of the rows
    Y = np.where(D == "soundtracks", 1.0, -1.0)[:, None].repeat(2, 1)
    (w, b, off), = teacher_head.solve(X, Y, D, (1e12,), [])
    assert np.abs(w).max() < 1e-6 and off == {}
    np.testing.assert_allclose(b, 0.0, atol=1e-6)  # by rows it would be 0.8


def test_a_tonal_head_hears_the_mode_the_teachers_outputs_do_not_carry(monkeypatch, tmp_path):
    """With ``tonal``, the ridge head also reads the frames' key-and-mode numbers from the
    chroma cache (the frame's and their average's): where valence follows the mode and the
    teachers' outputs are noise, it reads valence and the plain head cannot; a clip without
    cached profiles has no features for it."""
    from emotrack.models.cache import chroma_path
    from emotrack.models.teacher_pass import KEYS

    monkeypatch.setenv("EMOTRACK_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    major, minor = np.eye(12)[[0, 4, 7]].sum(0), np.eye(12)[[0, 3, 7]].sum(0)  # triads (a minor scale is a major one turned)
    outs = {}

    def clips(n, split):
        seqs = []
        for i in range(n):
            is_major = i % 2 == 0
            c = Clip("soundtracks", f"{split}{i}", f"{split}{i}", split, valence=0.5 if is_major else -0.5,
                     arousal=float(rng.uniform(-0.5, 0.5)))
            scale = np.roll(major if is_major else minor, int(rng.integers(12)))  # any key
            prof = scale * rng.uniform(0.5, 1.5, (T, 12)) + 0.05
            p = chroma_path(c)
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, (prof / prof.sum(1, keepdims=True)).astype(np.float16))
            outs[c.key] = {k: rng.normal(size=(T, 50 if "logits" in k else 200)).astype(np.float32) for k in KEYS}
            seqs.append(Seq(c, np.zeros((T, 1, 1), np.float16), np.full(T, np.nan), np.full(T, np.nan), np.zeros(2)))
        return seqs

    train, val, test = clips(200, "train"), clips(40, "val"), clips(40, "test")
    monkeypatch.setattr(teacher_head, "has_targets", lambda clip: True)
    monkeypatch.setattr(teacher_head, "load_targets", lambda clip, n: {k: v[:n] for k, v in outs[clip.key].items()})
    plain, tonal = teacher_head.fit(train, val), teacher_head.fit(train, val, tonal=10.0)
    assert plain["tonal"] is None and tonal["tonal"] == 10.0 and tonal["mu"].shape == (500 + 44,)
    labels = np.array([s.clip.valence for s in test])

    def r(head):
        p = np.array([teacher_head.predict(head, s.clip, T)[:, 0].mean() for s in test])
        return float(np.corrcoef(p, labels)[0, 1])

    # measured 0.995 against -0.11; r's sampling sd on 40 clips is ~0.16 at 0
    assert r(tonal) > 0.8 and abs(r(plain)) < 0.5
    chroma_path(test[0].clip).unlink()
    assert teacher_head.has_features(test[0].clip) and not teacher_head.has_features(test[0].clip, tonal=10.0)
    assert test[0].key not in teacher_head.predictions(tonal, test) and test[0].key in teacher_head.predictions(plain, test)
