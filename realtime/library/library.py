"""A library opened for queries: songs by a point or a drawn profile in valence-arousal space.

- ``point(v, a)``: the nearest songs by whole-song emotion (Euclidean distance in the
  valence-arousal plane).
- ``profile_whole`` / ``profile_segment``: a curve of (t, valence, arousal) points; the
  distance is the sum of the Euclidean distances in the plane between matched query and
  song points, divided by the number of query points (read it as "mean distance per point"):
  - whole: the curve against the whole song, both resampled to 32 points over their own
    length (time-normalised: a 3-minute and a 6-minute song that rise the same way match
    the same curve), by DTW with a Sakoe-Chiba band of 10 %; pruned with LB_Keogh, a lower
    bound computed for all songs at once, so that exact DTW runs only on songs that can
    still enter the top k.
  - segment: the curve, on its own time scale (t in seconds, on a 2 s grid), against every
    stretch of every song's 2 s coarse trajectory, by subsequence DTW whose steps allow the
    stretch to be between half and twice the curve's length; the result names the best
    stretch. Exact, with no pruning: the dynamic programme runs over all songs at once as a
    few vector operations per query point (``dtw.segment_dtw``).

No thread of its own: ``Library`` objects stay on the thread that opened them (``find`` on
the main thread, the library service's thread inside ``live``).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from dataclasses import dataclass

import numpy as np

from .dtw import FAR, PAD, band, dtw_band, envelope, lb_keogh, segment_dtw, segment_min_points
from .store import (
    COARSE_SECONDS,
    SHAPE_POINTS,
    TAG_COLUMNS,
    LibraryError,
    connect,
    damaged,
    damaged_rows,
    resample,
)


class QueryError(ValueError):
    """A point or a profile that cannot be used; the message says why."""


# ---------------------------------------------------------------------- inputs
def parse_point(spec: str) -> tuple[float, float]:
    try:
        v, a = (float(x) for x in spec.replace(" ", "").split(","))
    except ValueError:
        raise QueryError(f"--point {spec!r}: give valence,arousal, e.g. --point 0.5,-0.2") from None
    if not (-1 <= v <= 1 and -1 <= a <= 1):
        raise QueryError(f"--point {spec!r}: valence and arousal are in [-1, 1]")
    return v, a


def parse_profile(text: str, name: str = "profile") -> np.ndarray:
    """CSV (t,valence,arousal; a header is optional) or JSON ([[t, v, a], ...], or a list
    of {"t", "valence", "arousal"} objects, or {"points": [...]}) -> float64 [n, 3]."""
    s = text.strip()
    rows: list = []
    try:
        if s.startswith(("[", "{")):
            data = json.loads(s)
            if isinstance(data, dict):
                data = data.get("points")
            if not isinstance(data, list):
                raise QueryError(f"{name}: JSON must be a list of points or {{\"points\": [...]}}")
            for p in data:
                rows.append([p["t"], p["valence"], p["arousal"]] if isinstance(p, dict) else list(p))
        else:
            for r in csv.reader(io.StringIO(s)):
                if not r or r[0].strip().startswith("#"):
                    continue
                if not rows and r[0].strip().lower() in ("t", "time"):
                    continue  # header
                rows.append(r)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        if isinstance(e, QueryError):
            raise
        raise QueryError(f"{name}: cannot read it as (t, valence, arousal) points: {e}") from None
    return profile_points(rows, name)


MAX_PROFILE_POINTS = 10_000
MAX_PROFILE_SECONDS = 4 * 3600.0  # longer than any song a segment could match: refused before any work


def profile_points(rows, name: str = "profile") -> np.ndarray:
    """Rows of (t, valence, arousal) -> float64 [n, 3], or a QueryError saying what is wrong.
    Sizes are checked before anything is built from them: at most ``MAX_PROFILE_POINTS``
    points over at most ``MAX_PROFILE_SECONDS``."""
    if hasattr(rows, "__len__") and len(rows) > MAX_PROFILE_POINTS:
        raise QueryError(f"{name}: {len(rows)} points; a profile has at most {MAX_PROFILE_POINTS} points")
    try:
        pts = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError) as e:
        raise QueryError(f"{name}: cannot read it as (t, valence, arousal) points: {e}") from None
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise QueryError(f"{name}: every point needs exactly three numbers: t, valence, arousal")
    if len(pts) < 2:
        raise QueryError(f"{name}: a profile needs at least 2 points")
    if not np.all(np.isfinite(pts)):
        raise QueryError(f"{name}: the points must be finite numbers")
    if np.any(np.diff(pts[:, 0]) <= 0):
        raise QueryError(f"{name}: t must increase from point to point")
    if pts[-1, 0] - pts[0, 0] > MAX_PROFILE_SECONDS:
        raise QueryError(f"{name}: the points span {pts[-1, 0] - pts[0, 0]:.3g} s; a profile spans at most "
                         f"{MAX_PROFILE_SECONDS / 3600:g} h (give t in seconds)")
    if np.any(np.abs(pts[:, 1:]) > 1):
        raise QueryError(f"{name}: valence and arousal are in [-1, 1]")
    return pts


def profile_on_grid(pts: np.ndarray, step: float) -> np.ndarray:
    """The curve sampled every ``step`` seconds from its first to its last t -> [m, 2]."""
    t = pts[:, 0] - pts[0, 0]
    m = max(2, int(round(t[-1] / step)) + 1)
    grid = np.linspace(0, t[-1], m)
    return np.stack([np.interp(grid, t, pts[:, 1]), np.interp(grid, t, pts[:, 2])], 1)


@dataclass
class Library:
    """What queries need, loaded once: whole-song emotion and the compact trajectories."""

    ids: np.ndarray
    paths: list[str]
    va: np.ndarray  # [N, 2]
    duration: np.ndarray
    _db: sqlite3.Connection
    _segments: tuple | None = None
    _version: int | None = None
    tags: list[dict] | None = None  # artist, title, album of each song (those its file has)

    @classmethod
    def open(cls, path) -> Library:
        """Read a library for queries (read-only); a damaged one is refused with what to do."""
        db = connect(path, create=False)
        try:
            bad = damaged_rows(db)
            cols = {r[1] for r in db.execute("PRAGMA table_info(songs)")}
            tags = ", ".join(c if c in cols else f"NULL AS {c}" for c in TAG_COLUMNS)  # schema 1 has none
            rows = db.execute(f"SELECT id, path, valence, arousal, duration, {tags} FROM songs ORDER BY id").fetchall()
        except sqlite3.DatabaseError as e:
            db.close()
            raise damaged(path, e) from e
        if bad:
            db.close()
            raise LibraryError(f"{path}: {len(bad)} songs hold values emotrack cannot have written (ids "
                               f"{', '.join(map(str, bad[:5]))}{'...' if len(bad) > 5 else ''}); run `emotrack index` "
                               f"on their folders with --db {path} to analyse them again")
        if not rows:
            db.close()
            raise LibraryError(f"the library {path} is empty: add music with `emotrack index DIR --db {path}`")
        ids = np.array([r[0] for r in rows])
        lib = cls(ids, [r[1] for r in rows], np.array([[r[2], r[3]] for r in rows]), np.array([r[4] for r in rows]), db,
                  tags=[{k: v for k, v in zip(TAG_COLUMNS, r[5:8], strict=True) if v} for r in rows])
        lib.changed()  # note the version the arrays were read at
        return lib

    def _blobs(self, column: str) -> list[bytes]:
        try:
            return [r[0] for r in self._db.execute(f"SELECT {column} FROM songs ORDER BY id")]
        except sqlite3.DatabaseError as e:
            raise damaged("the library", e) from e

    def point(self, v: float, a: float, k: int = 10) -> list[dict]:
        d = np.hypot(self.va[:, 0] - v, self.va[:, 1] - a)
        top = np.argsort(d, kind="stable")[:k]
        return [self._result(i, float(d[i])) for i in top]

    def profile_whole(self, pts: np.ndarray, k: int = 10) -> list[dict]:
        q = resample(pts[:, 1:], SHAPE_POINTS).astype(np.float64)
        shapes = np.frombuffer(b"".join(self._blobs("shape")), np.float32).reshape(-1, SHAPE_POINTS, 2)
        r = band(SHAPE_POINTS)
        lo, hi = envelope(q, r)
        lb = lb_keogh(shapes, lo, hi)
        dist = _pruned(q, shapes, lb, r, k)
        top = sorted(dist, key=dist.get)[:k]
        return [self._result(i, dist[i] / SHAPE_POINTS) for i in top]

    def profile_segment(self, pts: np.ndarray, k: int = 10) -> list[dict]:
        q = profile_on_grid(pts, COARSE_SECONDS)
        m = len(q)
        v, a, first, lengths = self._coarse()
        eligible = lengths >= segment_min_points(m)
        if not eligible.any():
            raise QueryError(f"the profile spans {pts[-1, 0] - pts[0, 0]:.0f} s, more than twice the length of "
                             "every song in the library; use --match whole")
        end_cost = segment_dtw(q, v, a)
        # per song, the best end point over its own points (every other range is padding)
        bounds = np.stack([first, first + lengths], 1).ravel()[:-1]  # the last song ends the array
        best = np.minimum.reduceat(end_cost, bounds)[::2].astype(np.float64)
        best[~eligible] = np.inf
        top = [int(s) for s in np.argsort(best, kind="stable")[:k] if np.isfinite(best[s])]
        out = []
        for s in top:
            # the winner again, alone and with start tracking, for the segment's bounds
            sl = slice(first[s] - PAD, first[s] + lengths[s])
            cost, start = segment_dtw(q, v[sl], a[sl], track=True)
            e = int(np.argmin(cost[PAD:]))
            b = int(start[PAD + e]) - PAD
            res = self._result(s, float(best[s]) / m)
            res["segment"] = [round(b * COARSE_SECONDS, 1), round(min((e + 1) * COARSE_SECONDS, self.duration[s]), 1)]
            out.append(res)
        return out

    def _coarse(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every song's coarse trajectory in one valence and one arousal array, each song
        preceded by PAD far-away points so that no step of the DP crosses from one song into
        the next; with the first index and the length of every song. Loaded once."""
        if self._segments is None:
            blobs = self._blobs("coarse")
            lengths = np.array([len(b) // 8 for b in blobs])
            first = PAD + np.concatenate([[0], np.cumsum(lengths + PAD)[:-1]])
            # the padding goes in between the blobs as bytes: one join, no scatter of 1 M points
            pad = np.full((PAD, 2), FAR, np.float32).tobytes()
            joined = pad.join([b"", *blobs])
            va = np.frombuffer(joined, np.float32).reshape(-1, 2)
            self._segments = (np.ascontiguousarray(va[:, 0]), np.ascontiguousarray(va[:, 1]), first, lengths)
        return self._segments

    def song(self, song_id: int) -> tuple[str, float]:
        """The path and duration of the song with this id (KeyError if there is none)."""
        i = np.searchsorted(self.ids, song_id)
        if i >= len(self.ids) or self.ids[i] != song_id:
            raise KeyError(song_id)
        return self.paths[i], float(self.duration[i])

    def changed(self) -> bool:
        """Has another connection (``emotrack index``) written to the file since we read it?"""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if self._version is None:
            self._version = version
        return version != self._version

    def _result(self, i: int, distance: float) -> dict:
        return {"id": int(self.ids[i]), "path": self.paths[i], "distance": round(distance, 5),
                "valence": round(float(self.va[i, 0]), 5), "arousal": round(float(self.va[i, 1]), 5),
                "duration": round(float(self.duration[i]), 2), **(self.tags[i] if self.tags else {})}

    def close(self) -> None:
        self._db.close()


def _pruned(q: np.ndarray, cands: np.ndarray, lb: np.ndarray, r: int, k: int, chunk: int = 512) -> dict[int, float]:
    """Exact DTW for candidates in order of their lower bound, until none can enter the top k."""
    order = np.argsort(lb, kind="stable")
    dist: dict[int, float] = {}
    pos = 0
    while pos < len(order):
        kth = sorted(dist.values())[k - 1] if len(dist) >= k else np.inf
        if lb[order[pos]] >= kth:
            break
        idx = order[pos: pos + chunk]
        pos += chunk
        for i, d in zip(idx, dtw_band(q, cands[idx].astype(np.float64), r), strict=True):
            dist[int(i)] = float(d)
    return dist
