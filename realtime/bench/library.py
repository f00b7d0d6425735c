"""``emotrack bench --library``: query times on a 10,000-song library (main thread).

The library is synthetic (trajectories are random walks in valence-arousal space, songs 2
to 6 minutes long, 0.5 s hop), written through the same ``store`` as ``emotrack index``.
Timed, each over ``queries`` random queries, on one thread:
- open: ``Library.open`` (reads every song's whole-song emotion),
- point: ``--point`` with k = 10,
- profile whole / segment: ``--profile`` with a random 30 s curve of 4 points, k = 10;
  the first segment query on an open library also reads every song's coarse trajectory
  (timed apart as "segment, first"); the rest reuse them, as the dashboard and ``live``
  do.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..core.timing import timing_summary
from ..library.library import Library
from ..library.store import SongRecord, connect, store


def build(path: Path, songs: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    db = connect(path)
    db.execute("PRAGMA synchronous = OFF")
    for i in range(songs):
        n = int(rng.integers(240, 720))
        walk = np.cumsum(rng.normal(0, 0.03, (n, 2)), 0)
        va = np.clip(walk - walk.mean(0) + rng.uniform(-0.6, 0.6, 2), -1, 1)
        traj = np.concatenate([va, np.full((n, 2), 0.3)], 1).astype(np.float32)
        store(db, SongRecord(f"/synthetic/{i:05d}.flac", 1, 1, "synthetic 1", n * 0.5, 0.5, traj))
    db.close()


def _ms(seconds: list[float]) -> dict:
    return timing_summary(np.asarray(seconds) * 1000)


def bench_library(songs: int = 10000, queries: int = 20) -> dict:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "lib.sqlite"
        t0 = time.perf_counter()
        build(path, songs)
        build_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        opens, point, whole, first, segment = [], [], [], [], []
        for _ in range(queries):
            t0 = time.perf_counter()
            lib = Library.open(path)
            opens.append(time.perf_counter() - t0)
            v, a = rng.uniform(-1, 1, 2)
            t0 = time.perf_counter()
            lib.point(v, a, 10)
            point.append(time.perf_counter() - t0)
            curve = np.column_stack([[0, 10, 20, 30], rng.uniform(-0.8, 0.8, (4, 2))])
            t0 = time.perf_counter()
            lib.profile_whole(curve, 10)
            whole.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            lib.profile_segment(curve, 10)
            first.append(time.perf_counter() - t0)
            curve = np.column_stack([[0, 10, 20, 30], rng.uniform(-0.8, 0.8, (4, 2))])
            t0 = time.perf_counter()
            lib.profile_segment(curve, 10)
            segment.append(time.perf_counter() - t0)
            lib.close()
    return {"songs": songs, "queries": queries, "db_mb": round(size_mb, 1), "build_seconds": round(build_s, 1),
            "open": _ms(opens), "point": _ms(point), "profile_whole": _ms(whole), "profile_segment_first": _ms(first), "profile_segment": _ms(segment)}


def describe(r: dict) -> str:
    f = lambda k: f"median {r[k]['median_ms']:.1f} ms, p95 {r[k]['p95_ms']:.1f} ms"  # noqa: E731
    return (f"library of {r['songs']} songs ({r['db_mb']:.0f} MB, built in {r['build_seconds']:.0f} s), "
            f"{r['queries']} random queries each: open {f('open')}; point {f('point')}; "
            f"profile whole {f('profile_whole')}; profile segment {f('profile_segment')} "
            f"(the first on an open library {f('profile_segment_first')})")
