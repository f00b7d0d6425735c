"""The music library inside ``emotrack live --db PATH``: queries from clients, previews,
and "more like now".

- ``find`` (a client message): a point or a drawn profile, answered with ``found`` (the
  same results as ``emotrack find --format json``).
- ``like_now`` (broadcast): every ``LIKE_EVERY`` seconds of stream time, the last
  ``like_seconds`` of the live trajectory, averaged over 2 s like the library's
  trajectories, is matched against every song by segment (``Library.profile_segment``).
- ``/preview?song=ID&start=S`` (the dashboard's HTTP side): ``PREVIEW_SECONDS`` of a
  library song as WAV. The song is named by its id in the library, never by a path.

Threads: every query and preview runs on one thread of its own (``emotrack-find``), so
neither the audio worker nor the WebSocket loop waits for one; the library is opened and
reopened (when ``emotrack index`` has written to it since) on that thread only.
``request`` and ``observe`` run on the WebSocket loop's thread and only check a message or
note a frame; ``open``/``close`` run on the main thread and wait for the find thread.
"""

from __future__ import annotations

import io
import math
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import protocol
from .library import Library, QueryError, profile_points
from .store import COARSE_SECONDS, LibraryError

LIKE_EVERY = 5.0  # seconds of stream time between "more like now" answers
PREVIEW_SECONDS = 15.0
MAX_K = 50
FIND_KEYS = ("type", "id", "point", "profile", "match", "k")


class LibraryService:
    """The library inside ``emotrack live --db``: finds, "more like now" and previews."""

    def __init__(self, db_path: str | Path, like_seconds: float = 20.0, k: int = 10):
        self.db_path = Path(db_path)
        self.like_seconds = like_seconds
        self.k = k
        self.songs = 0
        self.last_like: dict | None = None  # the latest like_now message, for new clients
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="emotrack-find")
        self._lib: Library | None = None
        self._hist: deque[tuple[float, float, float]] = deque()
        self._next_like: float | None = None
        self._like_busy = False

    # ------------------------------------------------------------------ library
    def open(self) -> None:
        """Open the library now (raises LibraryError with advice if it cannot be used)."""
        self._pool.submit(self._library).result()

    def _library(self) -> Library:
        """The library, reopened if another process wrote to it (find thread only)."""
        if self._lib is not None and self._lib.changed():
            self._lib.close()
            self._lib = None
        if self._lib is None:
            self._lib = Library.open(self.db_path)
            self.songs = len(self._lib.ids)
        return self._lib

    def submit(self, fn, *args) -> Future:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Close the library (on the find thread, which opened it) and end that thread."""
        try:
            self._pool.submit(self._close_library)
        except RuntimeError:  # closed already
            return
        self._pool.shutdown(wait=True)

    def _close_library(self) -> None:
        if self._lib is not None:
            self._lib.close()
            self._lib = None

    # ------------------------------------------------------------------ find
    def request(self, m: dict):
        """Check a ``find`` message (on the loop thread, cheap): an ``error`` dict, or the
        job to run on the find thread, which returns the answer."""
        bad = sorted(str(key)[:40] for key in m if key not in FIND_KEYS)
        if bad:
            return protocol.error("bad_find", f"find takes point or profile, match, k and id; unknown: {', '.join(bad)}")
        if ("point" in m) == ("profile" in m):
            return protocol.error("bad_find", 'give "point": [valence, arousal] or "profile": [[t, valence, arousal], ...]')
        k = m.get("k", self.k)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            return protocol.error("bad_find", f"k must be a whole number 1-{MAX_K}")
        match = m.get("match", "whole")
        if match not in ("whole", "segment"):
            return protocol.error("bad_find", 'match must be "whole" or "segment"')
        rid = m.get("id")
        if not (rid is None or isinstance(rid, int | str) and not isinstance(rid, bool) and len(str(rid)) <= 64):
            return protocol.error("bad_find", "id must be a number or a string of at most 64 characters")
        try:
            if "point" in m:
                p = m["point"]
                if not (isinstance(p, list) and len(p) == 2 and all(_number(x) and -1 <= x <= 1 for x in p)):
                    raise QueryError("point must be [valence, arousal], each in [-1, 1]")
                v, a = float(p[0]), float(p[1])
                return lambda: self._found(rid, "point", None, lambda lib: lib.point(v, a, k))
            rows = m["profile"]
            if not (isinstance(rows, list) and all(isinstance(r, list) and all(_number(x) for x in r) for r in rows)):
                raise QueryError("profile must be a list of [t, valence, arousal] points")
            pts = profile_points(rows, "profile")
        except QueryError as e:
            return protocol.error("bad_find", str(e))
        query = (lambda lib: lib.profile_segment(pts, k)) if match == "segment" else (lambda lib: lib.profile_whole(pts, k))
        return lambda: self._found(rid, "profile", match, query)

    def _found(self, rid, query: str, match: str | None, run) -> dict:
        t0 = time.perf_counter()
        try:
            lib = self._library()
            results = run(lib)
        except (QueryError, LibraryError) as e:
            return protocol.error("find_failed", str(e))
        return protocol.found(rid, query, match, len(lib.ids), (time.perf_counter() - t0) * 1000, results)

    # ------------------------------------------------------------------ more like now
    def observe(self, frame: dict) -> Future | None:
        """Note a live frame (loop thread); every LIKE_EVERY s of stream time, once the
        window is full, start a "more like now" query and return its future."""
        if self.like_seconds <= 0:
            return None
        t = float(frame["t"])
        if self._hist and t < self._hist[-1][0]:  # the stream started over
            self._hist.clear()
            self._next_like = None
        self._hist.append((t, float(frame["valence"]), float(frame["arousal"])))
        while self._hist[0][0] <= t - self.like_seconds:
            self._hist.popleft()
        if self._next_like is None:
            self._next_like = self._hist[0][0] + self.like_seconds - COARSE_SECONDS / 4
        if t < self._next_like or self._like_busy:
            return None
        self._next_like = t + LIKE_EVERY
        self._like_busy = True
        return self._pool.submit(self._like_now, np.array(self._hist))

    def _like_now(self, hist: np.ndarray) -> dict:
        """The last seconds of the live trajectory as 2 s means (as in the library), ending
        at the newest frame, matched by segment against every song."""
        t0 = time.perf_counter()
        try:
            end = hist[-1, 0]
            block = np.floor((end - hist[:, 0]) / COARSE_SECONDS).astype(int)
            pts = np.array([[end - (b + 0.5) * COARSE_SECONDS, *np.clip(hist[block == b, 1:].mean(0), -1, 1)]
                            for b in range(block.max(), -1, -1)])
            songs, results, message = self.songs, [], None
            try:
                lib = self._library()
                songs = len(lib.ids)
                if len(pts) < 2:
                    raise QueryError("not enough of the live trajectory yet")
                results = lib.profile_segment(pts, self.k)
            except (QueryError, LibraryError) as e:
                message = str(e)
            msg = protocol.like_now(end, (hist[0, 0], end), self.like_seconds, songs, results, message,
                                    (time.perf_counter() - t0) * 1000)
            self.last_like = msg
            return msg
        finally:
            self._like_busy = False

    # ------------------------------------------------------------------ preview
    def preview(self, song_id: int, start: float | None) -> bytes:
        """PREVIEW_SECONDS of the song from ``start`` (default: a third of the way in), as
        16-bit WAV at the file's own rate, mono or stereo, faded in and out over 20 ms.
        Raises KeyError (no such song) or OSError/RuntimeError (the file cannot be read)."""
        path, duration = self._library().song(song_id)
        if start is None:
            start = duration / 3
        start = min(max(0.0, start), max(0.0, duration - PREVIEW_SECONDS))
        with sf.SoundFile(path) as f:
            sr = f.samplerate
            f.seek(min(int(start * sr), max(0, f.frames - 1)))
            x = f.read(int(PREVIEW_SECONDS * sr), dtype="float32", always_2d=True)
        if x.shape[1] > 2:
            x = x.mean(1, keepdims=True)
        n = min(len(x) // 2, int(0.02 * sr))
        if n:
            ramp = np.linspace(0, 1, n, dtype=np.float32)[:, None]
            x[:n] *= ramp
            x[len(x) - n:] *= ramp[::-1]
        buf = io.BytesIO()
        sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
        return buf.getvalue()


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
