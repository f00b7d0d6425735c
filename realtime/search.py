"""``emotrack find``: songs by a point or by a drawn profile in valence-arousal space.

- ``--point V,A``: the nearest songs by whole-song emotion (Euclidean distance in the
  valence-arousal plane).
- ``--profile CURVE``: a CSV or JSON of (t, valence, arousal) points. Ranked by DTW
  (dynamic time warping) with a Sakoe-Chiba band, the cost per step being the Euclidean
  distance in the plane, divided by the number of query points (so a distance reads as
  "mean distance per point"):
  - ``--match whole`` (default): the curve against the whole song, both resampled to 32
    points over their own length (time-normalised: a 3-minute and a 6-minute song that
    rise the same way match the same curve);
  - ``--match segment``: the curve, on its own time scale (t in seconds), against every
    window of the same length in every song, on the 2 s coarse trajectories; the result
    names the best window.
  Both prune with LB_Keogh, a lower bound of the banded DTW computed for all candidates
  at once; exact DTW runs only on candidates whose bound can still beat the k-th best.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .library import COARSE_SECONDS, SHAPE_POINTS, LibraryError, connect, default_db, resample


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
        pts = np.array(rows, dtype=np.float64)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        if isinstance(e, QueryError):
            raise
        raise QueryError(f"{name}: cannot read it as (t, valence, arousal) points: {e}") from None
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise QueryError(f"{name}: every point needs exactly three numbers: t, valence, arousal")
    if len(pts) < 2:
        raise QueryError(f"{name}: a profile needs at least 2 points")
    if not np.all(np.isfinite(pts)):
        raise QueryError(f"{name}: the points must be finite numbers")
    if np.any(np.diff(pts[:, 0]) <= 0):
        raise QueryError(f"{name}: t must increase from point to point")
    if np.any(np.abs(pts[:, 1:]) > 1):
        raise QueryError(f"{name}: valence and arousal are in [-1, 1]")
    return pts


def profile_on_grid(pts: np.ndarray, step: float) -> np.ndarray:
    """The curve sampled every ``step`` seconds from its first to its last t -> [m, 2]."""
    t = pts[:, 0] - pts[0, 0]
    m = max(2, int(round(t[-1] / step)) + 1)
    grid = np.linspace(0, t[-1], m)
    return np.stack([np.interp(grid, t, pts[:, 1]), np.interp(grid, t, pts[:, 2])], 1)


# ---------------------------------------------------------------------- DTW
def envelope(q: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension running min and max of ``q`` [m, d] over i-r..i+r."""
    m = len(q)
    lo, hi = np.empty_like(q), np.empty_like(q)
    for i in range(m):
        w = q[max(0, i - r): i + r + 1]
        lo[i], hi[i] = w.min(0), w.max(0)
    return lo, hi


def lb_keogh(c: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """LB_Keogh of candidates ``c`` [N, m, d] against the query envelope: a lower bound of
    their banded DTW cost (each candidate point is matched to some query point in the band,
    which lies inside the envelope box)."""
    excess = np.maximum(c - hi, 0) + np.maximum(lo - c, 0)
    return np.sqrt((excess ** 2).sum(-1)).sum(-1)


def dtw_band(q: np.ndarray, c: np.ndarray, r: int) -> np.ndarray:
    """Banded DTW cost of query ``q`` [m, d] against each candidate ``c`` [N, m, d] (same
    length), all candidates at once; step cost = Euclidean distance."""
    n, m = c.shape[0], len(q)
    cost = np.sqrt(((c - q[None]) ** 2).sum(-1))  # [N, m]: only the diagonal; off-diagonal below
    inf = np.full(n, np.inf)
    prev = [inf] * m
    for i in range(m):
        row = [inf] * m
        for j in range(max(0, i - r), min(m, i + r + 1)):
            cij = cost[:, i] if i == j else np.sqrt(((c[:, j] - q[i]) ** 2).sum(-1))
            if i == 0 and j == 0:
                best = np.zeros(n)
            else:
                best = np.minimum(np.minimum(prev[j - 1] if j > 0 else inf, prev[j]), row[j - 1] if j > 0 else inf)
            row[j] = cij + best
        prev = row
    return prev[m - 1]


def _band(m: int) -> int:
    return max(1, int(round(0.1 * m)))


# ---------------------------------------------------------------------- queries
@dataclass
class Library:
    """What queries need, loaded once: whole-song emotion and the compact trajectories."""

    ids: np.ndarray
    paths: list[str]
    va: np.ndarray  # [N, 2]
    duration: np.ndarray
    _db: sqlite3.Connection

    @classmethod
    def open(cls, path) -> Library:
        db = connect(path, create=False)
        rows = db.execute("SELECT id, path, valence, arousal, duration FROM songs ORDER BY id").fetchall()
        if not rows:
            raise LibraryError(f"the library {path} is empty: add music with `emotrack index DIR --db {path}`")
        ids = np.array([r[0] for r in rows])
        return cls(ids, [r[1] for r in rows], np.array([[r[2], r[3]] for r in rows]), np.array([r[4] for r in rows]), db)

    def _blobs(self, column: str) -> list[bytes]:
        return [r[0] for r in self._db.execute(f"SELECT {column} FROM songs ORDER BY id")]

    def point(self, v: float, a: float, k: int = 10) -> list[dict]:
        d = np.hypot(self.va[:, 0] - v, self.va[:, 1] - a)
        top = np.argsort(d, kind="stable")[:k]
        return [self._result(i, float(d[i])) for i in top]

    def profile_whole(self, pts: np.ndarray, k: int = 10) -> list[dict]:
        q = resample(pts[:, 1:], SHAPE_POINTS).astype(np.float64)
        shapes = np.frombuffer(b"".join(self._blobs("shape")), np.float32).reshape(-1, SHAPE_POINTS, 2)
        r = _band(SHAPE_POINTS)
        lo, hi = envelope(q, r)
        lb = lb_keogh(shapes, lo, hi)
        dist = _pruned(q, shapes, lb, r, k)
        top = sorted(dist, key=dist.get)[:k]
        return [self._result(i, dist[i] / SHAPE_POINTS) for i in top]

    def profile_segment(self, pts: np.ndarray, k: int = 10) -> list[dict]:
        q = profile_on_grid(pts, COARSE_SECONDS)
        m = len(q)
        blobs = self._blobs("coarse")
        lengths = np.array([len(b) // 8 for b in blobs])
        if not (lengths >= m).any():
            raise QueryError(f"the profile spans {pts[-1, 0] - pts[0, 0]:.0f} s, longer than every song in the "
                             "library; use --match whole")
        flat = np.frombuffer(b"".join(blobs), np.float32).reshape(-1, 2).astype(np.float64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        r = _band(m)
        # a window starts at flat position p if it stays inside its song
        song_at = np.repeat(np.arange(len(lengths)), lengths)
        n_start = len(flat) - m + 1
        valid = (np.arange(n_start) - offsets[song_at[:n_start]]) <= lengths[song_at[:n_start]] - m
        lb = _lb_sliding(flat, q, r, n_start)
        cand = np.flatnonzero(valid)
        cand_lb = lb[cand]
        best_d = np.full(len(lengths), np.inf)
        best_p = np.zeros(len(lengths), np.int64)
        span = np.arange(m)[None]
        batch = 4096
        while len(cand):
            kth = np.partition(best_d, k - 1)[k - 1] if len(best_d) >= k else np.inf
            # the others can neither beat the k-th best song nor improve their own song
            keep = cand_lb < np.minimum(kth, best_d[song_at[cand]])
            cand, cand_lb = cand[keep], cand_lb[keep]
            if not len(cand):
                break
            if len(cand) > batch:
                part = np.argpartition(cand_lb, batch)[:batch]
            else:
                part = np.arange(len(cand))
            idx = cand[part]
            rest = np.ones(len(cand), bool)
            rest[part] = False
            cand, cand_lb = cand[rest], cand_lb[rest]
            d = dtw_band(q, flat[idx[:, None] + span], r)
            songs = song_at[idx]
            better = d < best_d[songs]
            order = np.argsort(-d[better], kind="stable")  # the smallest last: it wins the assignment
            s_b, d_b, p_b = songs[better][order], d[better][order], idx[better][order]
            best_d[s_b] = d_b
            best_p[s_b] = p_b - offsets[s_b]
        top = np.argsort(best_d, kind="stable")[:k]
        out = []
        for s in top:
            if not np.isfinite(best_d[s]):
                break
            res = self._result(int(s), float(best_d[s]) / m)
            p = int(best_p[s])
            res["segment"] = [round(p * COARSE_SECONDS, 1), round(min((p + m) * COARSE_SECONDS, self.duration[s]), 1)]
            out.append(res)
        return out

    def _result(self, i: int, distance: float) -> dict:
        return {"path": self.paths[i], "distance": round(distance, 5), "valence": round(float(self.va[i, 0]), 5),
                "arousal": round(float(self.va[i, 1]), 5), "duration": round(float(self.duration[i]), 2)}

    def close(self) -> None:
        self._db.close()


def _lb_sliding(flat: np.ndarray, q: np.ndarray, r: int, n_start: int, w: int = 4) -> np.ndarray:
    """A lower bound of the banded DTW of ``q`` against the window starting at every flat
    position, in m/w vector steps: the distance of a point to its envelope box is convex, so
    the sum over a block of w points is at least w times the distance of the block's mean to
    the block's merged box (Jensen); the points after the last whole block are left out
    (their terms are >= 0). Both make it weaker than LB_Keogh, never wrong."""
    m = len(q)
    w = max(1, min(w, m))
    lo, hi = envelope(q, r)
    cs = np.concatenate([np.zeros((1, 2)), np.cumsum(flat, 0)])
    means = (cs[w:] - cs[:-w]) / w  # means[p] = mean of flat[p : p + w]
    lb = np.zeros(n_start)
    for b in range(m // w):
        blo, bhi = lo[b * w:(b + 1) * w].min(0), hi[b * w:(b + 1) * w].max(0)
        x = means[b * w: b * w + n_start]
        ev = np.maximum(x[:, 0] - bhi[0], 0) + np.maximum(blo[0] - x[:, 0], 0)
        ea = np.maximum(x[:, 1] - bhi[1], 0) + np.maximum(blo[1] - x[:, 1], 0)
        lb += w * np.hypot(ev, ea)
    return lb


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


# ---------------------------------------------------------------------- CLI
def run_find(args) -> int:
    if (args.point is None) == (args.profile is None):
        print("emotrack find: give --point V,A or --profile FILE (one of them)", file=sys.stderr)
        return 2
    try:
        if args.point is not None:
            v, a = parse_point(args.point)
        else:
            try:
                text = sys.stdin.read() if args.profile == "-" else Path(args.profile).read_text()
            except OSError as e:
                raise QueryError(f"--profile {args.profile}: {e.strerror or e}") from None
            pts = parse_profile(text, args.profile)
        lib = Library.open(args.db or default_db())
    except (QueryError, LibraryError) as e:
        print(f"emotrack find: {e}", file=sys.stderr)
        return 2
    try:
        if args.point is not None:
            results = lib.point(v, a, args.k)
        elif args.match == "segment":
            results = lib.profile_segment(pts, args.k)
        else:
            results = lib.profile_whole(pts, args.k)
    except QueryError as e:
        print(f"emotrack find: {e}", file=sys.stderr)
        return 2
    finally:
        lib.close()
    if args.format == "json":
        print(json.dumps(results, indent=1))
    else:
        print(format_table(results))
    return 0


def format_table(results: list[dict]) -> str:
    seg = any("segment" in r for r in results)
    head = f"{'#':>3}  {'distance':>8}  {'valence':>7}  {'arousal':>7}  {'length':>7}  " + ("segment        " if seg else "") + "path"
    lines = [head]
    for i, r in enumerate(results, 1):
        m, s = divmod(int(round(r["duration"])), 60)
        line = f"{i:>3}  {r['distance']:>8.3f}  {r['valence']:>+7.2f}  {r['arousal']:>+7.2f}  {m:>4}:{s:02d}  "
        if seg:
            a, b = r["segment"]
            line += f"{int(a) // 60}:{int(a) % 60:02d}-{int(b) // 60}:{int(b) % 60:02d}".ljust(15)
        lines.append(line + r["path"])
    return "\n".join(lines)
