"""Dataset loaders against the real label files in ../shared/data; DEAM, PMEmo and
emoMusic in their official layouts with tiny generated audio."""

from __future__ import annotations

import collections
import os

import numpy as np
import pytest
import soundfile as sf
from emotrack.models import data as D

from ..conftest import DATA, needs_data

pytestmark = needs_data()


def _no_group_crosses_splits(clips):
    by_group = collections.defaultdict(set)
    for c in clips:
        by_group[(c.dataset, c.group)].add(c.split)
    crossing = {g: s for g, s in by_group.items() if len(s) > 1}
    assert not crossing, list(crossing.items())[:3]


def test_shared_sets_counts_labels_and_splits():
    clips = D.load_all(DATA)
    n = collections.Counter(c.dataset for c in clips)
    assert n == {"panda4q": 900, "emotify": 400, "soundtracks": 240, "vgmidi": 200, "emopia": 1078}
    _no_group_crosses_splits(clips)
    for ds in n:
        splits = collections.Counter(c.split for c in clips if c.dataset == ds)
        assert set(splits) == {"train", "val", "test"}, (ds, splits)
        assert splits["train"] > splits["test"] > 0
    for c in clips:
        assert (c.audio or c.midi).exists(), c.key


def test_split_is_fixed():
    assert D.split_of("soundtracks", "Shallow Grave") == D.split_of("soundtracks", "Shallow Grave")
    frac = collections.Counter(D.split_of("x", str(i)) for i in range(10000))
    assert 0.66 < frac["train"] / 10000 < 0.74 and 0.12 < frac["test"] / 10000 < 0.18


def test_soundtracks_scale_and_album_groups():
    clips = D.load_soundtracks(DATA)
    c = next(c for c in clips if c.id == "001")
    assert c.valence == pytest.approx((4.83 - 5) / 4) and c.arousal == pytest.approx((6.83 - 5) / 4)
    assert c.group == "Shallow Grave"
    assert len({c.group for c in clips}) == 46  # albums, as the data README says


def test_panda_and_emopia_quadrants():
    p = D.load_panda4q(DATA)
    assert collections.Counter(c.quadrant for c in p) == {1: 225, 2: 225, 3: 225, 4: 225}
    e = D.load_emopia(DATA)
    assert collections.Counter(c.quadrant for c in e) == {1: 250, 2: 265, 3: 253, 4: 310}
    q4 = next(c for c in e if c.id == "Q4_AjN_5CdVUdw_0")
    assert q4.group == "AjN_5CdVUdw"  # YouTube ids may hold underscores


def test_emotify_mapping():
    clips = D.load_emotify(DATA)
    assert len(clips) == 400
    assert all(-1 <= c.valence <= 1 and -1 <= c.arousal <= 1 for c in clips)
    # the mapping orders the genres as expected: electronic/rock more aroused than classical
    by = collections.defaultdict(list)
    for c in clips:
        by[c.meta["genre"]].append(c.arousal)
    assert np.mean(by["electronic"]) > np.mean(by["classical"])
    assert all(c.audio.exists() for c in clips)


def test_vgmidi_per_measure_labels_on_frame_grid():
    clips = D.load_vgmidi(DATA)
    assert len(clips) == 200
    c = next(c for c in clips if c.meta["name"] == "Lurking In The Darkness")
    # 63 s / 32 measures: frame ends 0.5, 1.0, ...; the first measure covers 0-1.97 s
    assert c.dyn_t[0] == 0.5 and np.all(np.diff(c.dyn_t) == 0.5)
    assert len(c.dyn_t) == int(63 / 0.5)
    assert c.meta["annotators"] >= 28
    assert np.all(np.abs(c.dyn_v) <= 1) and np.all(np.abs(c.dyn_a) <= 1)
    # frames inside the first measure share its value
    assert c.dyn_v[0] == c.dyn_v[1] == c.dyn_v[2]


def test_frame_targets():
    c = D.load_vgmidi(DATA)[0]
    v, a = c.frame_targets(np.array([0.5, 1.0, 1e6]))
    assert np.isfinite(v[:2]).all() and np.isnan(v[2])
    s = D.load_soundtracks(DATA)[0]
    v, a = s.frame_targets(np.arange(1, 5) * 0.5)
    assert np.all(v == np.float32(s.valence))


def _tiny_mp3(path, seconds=1.0, sr=22050):
    path.parent.mkdir(parents=True, exist_ok=True)
    y = (0.1 * np.random.default_rng(0).standard_normal(int(sr * seconds))).astype(np.float32)
    sf.write(str(path), y, sr, format="MP3")


def test_deam_official_layout(tmp_path):
    root = tmp_path / "DEAM"
    (root / "annotations").mkdir(parents=True)
    os.symlink(DATA / "deam" / "annotations" / "annotations averaged per song", root / "annotations" / "annotations averaged per song")
    for sid in (2, 3, 2001):
        _tiny_mp3(root / "MEMD_audio" / f"{sid}.mp3")
    clips = D.load_deam(root)
    assert {c.id for c in clips} == {"2", "3", "2001"}  # only songs with audio
    c = next(c for c in clips if c.id == "2")
    assert c.dyn_t[0] == 15.0 and len(c.dyn_t) == 60 and c.dyn_t[-1] == 44.5
    assert np.all(np.abs(c.dyn_v) <= 1)
    full = next(c for c in clips if c.id == "2001")
    assert len(full.dyn_t) > 60  # full songs have ragged, longer rows
    every = D.load_deam(root, require_audio=False)
    assert len(every) == 1802
    _no_group_crosses_splits(every)


def test_deam_without_audio_says_what_to_do(tmp_path):
    root = tmp_path / "DEAM"
    (root / "annotations").mkdir(parents=True)
    os.symlink(DATA / "deam" / "annotations" / "annotations averaged per song", root / "annotations" / "annotations averaged per song")
    with pytest.raises(FileNotFoundError, match="no audio files"):
        D.load_deam(root)
    with pytest.raises(FileNotFoundError, match="DEAM dynamic annotations"):
        D.load_deam(tmp_path / "elsewhere")


def test_pmemo_official_layout(tmp_path):
    root = tmp_path / "PMEmo2019"
    (root / "annotations").mkdir(parents=True)
    for f in ("dynamic_annotations.csv",):
        os.symlink(DATA / "pmemo" / f, root / "annotations" / f)
    os.symlink(DATA / "pmemo" / "metadata.csv", root / "metadata.csv")
    _tiny_mp3(root / "chorus" / "1.mp3")
    _tiny_mp3(root / "chorus" / "4.mp3")
    clips = D.load_pmemo(root)
    assert {c.id for c in clips} == {"1", "4"}
    c = next(c for c in clips if c.id == "1")
    assert c.dyn_t[0] == 15.5
    assert c.dyn_v[0] == pytest.approx(2 * 0.5599749999999999 - 1, abs=1e-6)  # [0,1] -> [-1,1]
    assert c.dyn_a[0] == pytest.approx(2 * 0.4376625 - 1, abs=1e-6)
    assert len(D.load_pmemo(root, require_audio=False)) == 767


def test_emomusic_official_layout_and_official_split(tmp_path):
    root = tmp_path / "emoMusic"
    (root / "annotations").mkdir(parents=True)
    for f in ("valence_cont_average.csv", "arousal_cont_average.csv", "songs_info.csv"):
        os.symlink(DATA / "emomusic" / f, root / "annotations" / f)
    _tiny_mp3(root / "clips_45seconds" / "2.mp3")
    _tiny_mp3(root / "clips_45seconds" / "3.mp3")
    clips = {c.id: c for c in D.load_emomusic(root)}
    assert set(clips) == {"2", "3"}
    assert clips["3"].split == "test"  # song 3 is in the MediaEval 2013 evaluation set
    assert clips["2"].split in ("train", "val")
    assert clips["2"].dyn_t[0] == 15.0
    every = D.load_emomusic(root, require_audio=False)
    assert collections.Counter(c.split for c in every)["test"] == 125
