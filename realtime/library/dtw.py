"""Dynamic time warping for ``find --profile``: banded DTW with its LB_Keogh lower bound
(whole-song matches) and an exact subsequence DTW over all songs at once (segments).
Pure numpy, no thread of its own.
"""

from __future__ import annotations

import numpy as np


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


def band(m: int) -> int:
    """The Sakoe-Chiba band for ``m`` points: 10 % of them, at least 1."""
    return max(1, int(round(0.1 * m)))


PAD = 2  # far-away points before every song in the segment arrays: the DP looks back 2 points
FAR = np.float32(1e4)  # their coordinates: any path through them costs more than any real one


def segment_min_points(m: int) -> int:
    """The fewest song points a path of ``m`` query points can cover (steps 0, 1, 0, 1, ...)."""
    return (m - 1) // 2 + 1


TEMPO_STEP = np.float32(0.05)  # cost of a step that does not advance one point (see segment_dtw)


def segment_dtw(q: np.ndarray, v: np.ndarray, a: np.ndarray, track: bool = False, tempo: float = TEMPO_STEP):
    """Subsequence DTW of the query ``q`` [m, 2] against the sequence (``v``, ``a``), for
    every end point at once: ``cost[t]`` is the least sum, over the m query points, of the
    distance from each query point to the sequence point it is matched to (plus the step
    weights below), over all matchings that end with the last query point at ``t``. A
    matching starts anywhere; from one query point to the next it advances 0, 1 or 2
    sequence points, never 0 twice in a row, so the matched stretch is between half and
    twice the query's length (a tempo change of up to 2x either way) and every query point
    counts exactly once.

    Every step that advances 0 or 2 points adds ``tempo`` to the cost (a step weight, as in
    the additive step weights of classic DTW): without it, where a trajectory changes little
    many matchings cost nearly the same and the matched stretch could shrink or stretch at
    random; with it, a matching changes tempo only where each change lowers the summed
    distance by more than ``tempo``. 0.05 is about the median change of a coarse trajectory
    from one 2 s block to the next (0.056 on the demo with emotrack-vae-lstm 4): a tempo change
    must buy more than one typical block's change to win, which a real 1.5x or 2x stretch of a
    shaped curve does many times over.

    Two states per point: F (the last step advanced) and E (it did not). Every row depends
    only on the row before, so each is a handful of vector operations over all songs.
    With ``track``, also returns where each best matching starts."""
    n = len(v)
    inf = np.float32(np.inf)

    def cost(i: int) -> np.ndarray:
        dv = v - np.float32(q[i, 0])
        da = a - np.float32(q[i, 1])
        dv *= dv
        da *= da
        dv += da
        return np.sqrt(dv, out=dv)

    tempo = np.float32(tempo)
    f = cost(0)  # the first query point may sit anywhere
    e = np.full(n, inf, np.float32)
    g2 = np.empty(max(0, n - 2), np.float32)  # g[t-2] + tempo, reused every row
    sf = np.arange(n) if track else None
    se = sf
    for i in range(1, len(q)):
        c = cost(i)
        g = np.minimum(e, f)
        prev = np.full(n, inf, np.float32)  # best of g[t-1], g[t-2] + tempo
        prev[1:] = g[:-1]
        np.add(g[:-2], tempo, out=g2)
        if not track:
            np.minimum(prev[2:], g2, out=prev[2:])
        else:
            two = g2 < prev[2:]
            prev[2:][two] = g2[two]
            sg = np.where(e < f, se, sf)
            sp = np.zeros(n, np.int64)
            sp[1:] = sg[:-1]
            sp[2:][two] = sg[:-2][two]
            se, sf = sf, sp
        e = f + c  # q[i] on the same point as q[i-1], which was reached by advancing
        e += tempo
        f = prev + c
    g = np.minimum(e, f)
    if track:
        return g, np.where(e < f, se, sf)
    return g
