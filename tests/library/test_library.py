"""emotrack index / find: the SQLite library, resuming, bad files, and queries whose answer
is known."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import numpy as np
import pytest

from ..conftest import DATA, EMOTRACK, wait_for


def _synthetic_db(path, songs: dict[str, np.ndarray], hop=0.5):
    """A library whose trajectories we choose ([n, 2] valence, arousal every ``hop``)."""
    from emotrack.realtime.library.store import SongRecord, connect, store

    db = connect(path)
    for name, va in songs.items():
        traj = np.concatenate([va, np.full_like(va, 0.3)], 1).astype(np.float32)
        store(db, SongRecord(f"/music/{name}.flac", 1, 1, "synthetic 1", len(va) * hop, hop, traj))
    db.close()


def _curve(points) -> str:
    return "t,valence,arousal\n" + "\n".join(",".join(str(x) for x in p) for p in points)


@pytest.fixture()
def shaped_db(tmp_path):
    n = 240  # 2 minutes at 0.5 s
    flat = lambda v, a, k=n: np.tile([v, a], (k, 1))  # noqa: E731
    songs = {
        "rising": np.stack([np.full(n, 0.2), np.linspace(-0.8, 0.8, n)], 1),
        "falling": np.stack([np.full(n, 0.2), np.linspace(0.8, -0.8, n)], 1),
        "happy": flat(0.7, 0.6),
        "sad": flat(-0.6, -0.5),
        "calm": flat(0.5, -0.6),
        # calm for 60 s, a 20 s surge to excited, then calm again
        "surge": np.concatenate([flat(0.0, -0.6, 120), np.stack([np.linspace(0, 0.6, 40), np.linspace(-0.6, 0.8, 40)], 1),
                                 flat(0.0, -0.6, 80)]),
    }
    path = tmp_path / "lib.sqlite"
    _synthetic_db(path, songs)
    return path


def test_point_query(shaped_db):
    from emotrack.realtime.library.library import Library

    lib = Library.open(shaped_db)
    res = lib.point(0.65, 0.55, k=3)
    assert [r["path"] for r in res][:1] == ["/music/happy.flac"]
    assert abs(res[0]["distance"] - np.hypot(0.05, 0.05)) < 1e-5
    assert [r["path"] for r in lib.point(-0.6, -0.5, k=1)] == ["/music/sad.flac"]
    assert [r["distance"] for r in res] == sorted(r["distance"] for r in res)


def test_profile_whole_and_segment(shaped_db, tmp_path):
    from emotrack.realtime.library.library import Library, parse_profile

    lib = Library.open(shaped_db)
    rise = parse_profile(_curve([(0, 0.2, -0.8), (60, 0.2, 0.0), (120, 0.2, 0.8)]))
    whole = lib.profile_whole(rise, k=6)
    assert whole[0]["path"] == "/music/rising.flac" and whole[0]["distance"] < 0.02
    falling = next(r for r in whole if r["path"] == "/music/falling.flac")
    assert falling["distance"] > 0.5 and whole[1]["distance"] > 10 * whole[0]["distance"]
    # the same rise drawn over 10 s matches the same song: whole-song matching is time-normalised
    fast = parse_profile(_curve([(0, 0.2, -0.8), (10, 0.2, 0.8)]))
    assert lib.profile_whole(fast, k=1)[0]["path"] == "/music/rising.flac"
    # a 20 s surge from calm to excited: only "surge" has it, from 60 s to 80 s
    surge = parse_profile(json.dumps([{"t": 0, "valence": 0.0, "arousal": -0.6}, {"t": 20, "valence": 0.6, "arousal": 0.8}]))
    seg = lib.profile_segment(surge, k=3)
    assert seg[0]["path"] == "/music/surge.flac" and seg[0]["distance"] < 0.1
    a, b = seg[0]["segment"]
    assert abs(a - 60) <= 2 and abs(b - 80) <= 2
    assert seg[1]["distance"] > 2 * seg[0]["distance"]


def test_queries_give_the_reference_answer(tmp_path):
    """LB_Keogh pruning must never change the whole-song ranking (DTW on every candidate
    gives the same), and the vectorised segment search must agree with a cell-by-cell one."""
    from emotrack.realtime.library.dtw import band, dtw_band
    from emotrack.realtime.library.library import (
        Library,
        parse_profile,
        profile_on_grid,
    )
    from emotrack.realtime.library.store import SHAPE_POINTS, resample

    rng = np.random.default_rng(5)
    songs = {}
    for i in range(300):
        n = int(rng.integers(60, 500))
        walk = np.cumsum(rng.normal(0, 0.05, (n, 2)), 0)
        songs[f"s{i:03d}"] = np.clip(walk - walk.mean(0) + rng.uniform(-0.5, 0.5, 2), -1, 1)
    path = tmp_path / "rand.sqlite"
    _synthetic_db(path, songs)
    lib = Library.open(path)
    pts = parse_profile(_curve([(0, -0.3, 0.2), (8, 0.1, 0.4), (15, 0.4, -0.1), (30, 0.0, -0.4)]))

    q = resample(pts[:, 1:], SHAPE_POINTS).astype(np.float64)
    shapes = np.stack([resample(songs[k], SHAPE_POINTS) for k in sorted(songs)]).astype(np.float64)
    brute = dtw_band(q, shapes, band(SHAPE_POINTS)) / SHAPE_POINTS
    got = lib.profile_whole(pts, k=10)
    want = np.argsort(brute, kind="stable")[:10]
    assert [r["path"] for r in got] == [f"/music/{sorted(songs)[i]}.flac" for i in want]
    np.testing.assert_allclose([r["distance"] for r in got], brute[want], atol=1e-4)

    from emotrack.realtime.library.store import coarse_of

    qs = profile_on_grid(pts, 2.0)
    best = {}
    for name in sorted(songs)[:120]:  # the plain-Python reference is slow; 120 songs are plenty
        c = coarse_of(np.concatenate([songs[name], songs[name]], 1), 0.5).astype(np.float64)
        best[name] = _segment_reference(qs, c)
    small = tmp_path / "small.sqlite"
    _synthetic_db(small, {n: songs[n] for n in best})
    seg = Library.open(small).profile_segment(pts, k=10)
    top = sorted(best, key=lambda n: best[n][0])[:10]
    assert [r["path"] for r in seg] == [f"/music/{n}.flac" for n in top]
    np.testing.assert_allclose([r["distance"] for r in seg], [best[n][0] / len(qs) for n in top], atol=1e-4)
    assert [r["segment"] for r in seg] == [[2.0 * best[n][1], min(2.0 * best[n][2] + 2, len(songs[n]) * 0.5)] for n in top]


def _segment_reference(q: np.ndarray, c: np.ndarray) -> tuple[float, int, int]:
    """The segment matching of ``segment_dtw`` cell by cell, for one song: the least total
    distance over paths t_0 <= ... <= t_{m-1} (start anywhere; steps of 0, 1 or 2 points, no
    two 0-steps in a row; each 0- or 2-step adds TEMPO_STEP), and the first and last point
    of the best path."""
    from emotrack.realtime.library.dtw import TEMPO_STEP

    w = float(TEMPO_STEP)
    m, n = len(q), len(c)
    d = np.hypot(c[None, :, 0] - q[:, None, 0], c[None, :, 1] - q[:, None, 1])
    # state (cost, start) for F (arrived by advancing, or the first point) and E (did not)
    F = [(d[0, t], t) for t in range(n)]
    E = [(np.inf, -1)] * n
    for i in range(1, m):
        nF, nE = [], []
        for t in range(n):
            options = [(x[0] + (w if s == 2 else 0.0), x[1]) for s in (1, 2) if t - s >= 0
                       for x in [min(E[t - s], F[t - s])]]
            best = min(options) if options else (np.inf, -1)
            nF.append((best[0] + d[i, t], best[1]))
            nE.append((F[t][0] + w + d[i, t], F[t][1]))
        F, E = nF, nE
    cost, start, end = min((min(E[t], F[t])[0], min(E[t], F[t])[1], t) for t in range(n))
    return cost, start, end


@pytest.mark.parametrize("text, words", [
    ("t,valence,arousal\n0,0,0\n", "at least 2 points"),
    ("0,0,0\n0,0.5,0.5\n", "t must increase"),
    ("0,0,0\n1,2,0\n", "in [-1, 1]"),
    ("0,0\n1,1\n", "exactly three numbers"),
    ('{"curve": []}', "list of points"),
    ("a,b,c\nx,y,z\n", "cannot read it"),
])
def test_bad_profiles(text, words):
    from emotrack.realtime.library.library import QueryError, parse_profile

    with pytest.raises(QueryError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_profile(text)


def test_find_cli(shaped_db, tmp_path):
    prof = tmp_path / "rise.csv"
    prof.write_text(_curve([(0, 0.2, -0.8), (120, 0.2, 0.8)]))
    r = subprocess.run(EMOTRACK + ["find", "--profile", str(prof), "--db", str(shaped_db), "-k", "2", "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert [x["path"] for x in res][0] == "/music/rising.flac" and set(res[0]) >= {"path", "distance", "valence", "arousal"}
    r = subprocess.run(EMOTRACK + ["find", "--point", "0.7,0.6", "--db", str(shaped_db), "-k", "2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[:3] == ["#", "distance", "valence"]
    assert "/music/happy.flac" in r.stdout.splitlines()[1]
    for argv, words in [(["--point", "2,0"], "in [-1, 1]"), (["--point", "x"], "give valence,arousal"),
                        ([], "give --point V,A or --profile FILE"), (["--profile", str(tmp_path / "no.csv")], "No such file"),
                        (["--point", "0,0", "--db", str(tmp_path / "none.sqlite")], "no library at")]:
        r = subprocess.run(EMOTRACK + ["find", "--db", str(shaped_db), *argv] if "--db" not in argv else EMOTRACK + ["find", *argv],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and words in r.stderr, (argv, r.stderr)


def test_refuses_newer_or_foreign_databases(tmp_path):
    from emotrack.realtime.library.store import LibraryError, connect

    for name, sql, words in [("newer", "PRAGMA user_version = 99", "newer emotrack"),
                             ("foreign", "CREATE TABLE invoices (x)", "not an emotrack library")]:
        path = tmp_path / f"{name}.sqlite"
        db = sqlite3.connect(path)
        db.execute(sql)
        db.close()
        with pytest.raises(LibraryError, match=words):
            connect(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(LibraryError, match="not a usable SQLite database"):
        connect(junk)


# ---------------------------------------------------------------------- real files
@pytest.fixture()
def real_library(tmp_path):
    if not DATA.exists():
        pytest.skip(f"{DATA} not present")
    src = sorted((DATA / "soundtracks" / "audio").glob("*.opus"))[:16]
    lib = tmp_path / "music"
    for i, f in enumerate(src):
        d = lib / ("film" if i % 2 else "tv")
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, d / f.name)
    (lib / "tv" / "corrupt.flac").write_bytes(b"fLaC" + os.urandom(3000))
    (lib / "notes.txt").write_text("not audio")
    return lib


def _index(lib, db, *extra, **kw):
    return subprocess.run(EMOTRACK + ["index", str(lib), "--db", str(db), *extra], capture_output=True, text=True,
                          timeout=300, **kw)


def test_index_real_files_then_skip_unchanged(real_library, tmp_path, model):
    from emotrack.realtime.core.tracker import stream_file

    db = tmp_path / "lib.sqlite"
    r = _index(real_library, db)
    assert r.returncode == 3, r.stderr  # 3: some files could not be decoded
    assert "skipped (cannot decode)" in r.stderr and "corrupt.flac" in r.stderr
    assert "analysed 16, 1 could not be decoded, 0 unchanged" in r.stderr
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2  # schema 2: with the tags
    rows = con.execute("SELECT path, frames, trajectory, valence, arousal, duration, static_method, model "
                       "FROM songs").fetchall()
    assert len(rows) == 16
    assert con.execute("SELECT count(*) FROM failures").fetchone()[0] == 1
    # the stored trajectory is what analyze gives
    path, frames, blob, v, a, dur, method, model_id = rows[0]
    traj = np.frombuffer(blob, np.float32).reshape(frames, 4)
    ref = np.array([[p.valence, p.arousal, p.valence_std, p.arousal_std] for p in stream_file(model, path)], np.float32)
    np.testing.assert_allclose(traj, ref, atol=1e-6)
    # the whole-song emotion is the song model's, as `analyze --song` gives it
    from emotrack.realtime.core.song import SongModel, analyze_song

    song = analyze_song(model, path, SongModel())
    assert abs(v - song.valence) < 1e-5 and abs(a - song.arousal) < 1e-5 and dur > 10
    from emotrack.export.options import SONG_VERSION, STUDENT_VERSION  # the shipped files' versions

    song_id = f"emotrack-song {SONG_VERSION}"
    assert method == song_id and model_id == f"emotrack-vae-lstm {STUDENT_VERSION} + {song_id}"
    stamps = dict(con.execute("SELECT path, indexed_at FROM songs"))
    con.close()
    # again: nothing to do; a touched file is analysed again, and only it
    r = _index(real_library, db)
    assert r.returncode == 0 and "0 to analyse, 16 unchanged, 1 that failed before" in r.stderr
    touched = sorted(real_library.rglob("*.opus"))[3]
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))
    r = _index(real_library, db)
    assert "1 to analyse, 15 unchanged" in r.stderr
    con = sqlite3.connect(db)
    again = dict(con.execute("SELECT path, indexed_at FROM songs"))
    assert [p for p in again if again[p] != stamps[p]] == [str(touched)]
    # the point query finds a song at its own whole-song emotion
    r = subprocess.run(EMOTRACK + ["find", "--point", f"{v},{a}", "--db", str(db), "-k", "1", "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["path"] == path
    # without the song model: every song is analysed again, its emotion the trajectory mean
    r = _index(real_library, db, "--no-song-model")
    assert "16 to analyse, 0 unchanged" in r.stderr
    v, a, blob, frames, method = con.execute("SELECT valence, arousal, trajectory, frames, static_method FROM songs "
                                             "WHERE path = ?", (path,)).fetchone()
    traj = np.frombuffer(blob, np.float32).reshape(frames, 4)
    assert method == "trajectory_mean" and abs(v - traj[:, 0].mean()) < 1e-5 and abs(a - traj[:, 1].mean()) < 1e-5


def test_index_resumes_after_kill(real_library, tmp_path):
    """kill -9 in the middle: what was stored stays; the next run does only the rest."""
    db = tmp_path / "lib.sqlite"
    p = subprocess.Popen(EMOTRACK + ["index", str(real_library), "--db", str(db), "--jobs", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stored():
        try:
            con = sqlite3.connect(db, timeout=1)
            n = con.execute("SELECT count(*) FROM songs").fetchone()[0]
            con.close()
            return n
        except sqlite3.Error:
            return 0

    try:
        wait_for(lambda: stored() >= 3, 120, "three songs stored", step=0.005)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    kept = stored()
    assert 3 <= kept < 16, f"the kill came too late to test resuming ({kept} songs)"
    con = sqlite3.connect(db)
    before = dict(con.execute("SELECT path, indexed_at FROM songs"))
    con.close()
    r = _index(real_library, db)
    assert f"{17 - kept} to analyse, {kept} unchanged" in r.stderr, r.stderr
    assert f"analysed {16 - kept}, 1 could not be decoded, {kept} unchanged; the library holds 16 songs" in r.stderr
    con = sqlite3.connect(db)
    after = dict(con.execute("SELECT path, indexed_at FROM songs"))
    assert len(after) == 16 and all(after[p] == t for p, t in before.items())  # nothing done twice


def test_index_errors(tmp_path):
    r = _index(tmp_path / "nowhere", tmp_path / "x.sqlite")
    assert r.returncode == 2 and "no such folder" in r.stderr
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(os.urandom(5000))
    (tmp_path / "m").mkdir()
    r = _index(tmp_path / "m", bad)
    assert r.returncode == 2 and "not a usable SQLite database" in r.stderr
    from emotrack.realtime.assets import default_model_path

    r = _index(tmp_path / "m", tmp_path / "y.sqlite", "--song-model", str(default_model_path()))
    assert r.returncode == 2 and "not a whole-song model" in r.stderr and "--no-song-model" in r.stderr
    assert not (tmp_path / "y.sqlite").exists()  # nothing written before the refusal


def test_library_benchmark_runs_small():
    from emotrack.realtime.bench.library import bench_library, describe

    r = bench_library(songs=150, queries=2)
    assert r["songs"] == 150 and r["point"]["median_ms"] > 0 and r["profile_segment"]["median_ms"] > 0
    assert "library of 150 songs" in describe(r)


@pytest.mark.parametrize("tempo_step", [None, 0.0])
def test_segments_keep_the_curves_tempo(tmp_path, monkeypatch, tempo_step):
    """A stretch of a song, read on 2 s blocks that are off the song's own by 1 s (as "more
    like now" reads the live trajectory), is matched at its own length: the tempo weight
    keeps a slowly changing song from matching a shrunk or stretched stretch. Without the
    weight (``0.0``) the same queries do shrink and stretch, which is what it is there for."""
    from emotrack.realtime.library import dtw
    from emotrack.realtime.library.library import Library, parse_profile

    rng = np.random.default_rng(11)
    n = 480  # 4 minutes at 0.5 s, drifting slowly (0.02 a frame, as music often does)
    walk = np.cumsum(rng.normal(0, 0.02, (n, 2)), 0)
    song = np.clip(walk - walk.mean(0), -1, 1)
    others = {f"o{i}": np.clip(np.cumsum(rng.normal(0, 0.02, (n, 2)), 0) + rng.uniform(-0.5, 0.5, 2), -1, 1)
              for i in range(5)}
    path = tmp_path / "slow.sqlite"
    _synthetic_db(path, {"song": song, **others})
    lib = Library.open(path)
    if tempo_step is not None:
        real = dtw.segment_dtw
        monkeypatch.setattr("emotrack.realtime.library.library.segment_dtw",
                            lambda *a, **k: real(*a, **k, tempo=tempo_step))
    off = []
    for start in range(3, 200, 10):  # seconds; the 1 s shift puts every block between two of the song's
        t = np.arange(start, start + 20, 2.0) + 1.0
        blocks = [song[int(2 * s): int(2 * s) + 4].mean(0) for s in t - 1.0]
        pts = parse_profile(_curve([(s, *np.round(b, 5)) for s, b in zip(t, blocks, strict=True)]))
        hit = lib.profile_segment(pts, k=1)[0]
        assert hit["path"] == "/music/song.flac"
        a, b = hit["segment"]
        off.append(abs((b - a) - 20.0))
    if tempo_step is None:
        assert max(off) <= 2.0, off  # one 2 s block: the shift itself
    else:
        assert max(off) > 2.0, off
