"""A music library's emotion in one SQLite file: the schema, opening it, and writing a song.

Per song: the dynamic trajectory (valence, arousal and their stds every ``hop`` seconds,
the same numbers ``emotrack analyze`` prints), its whole-song valence/arousal, and two
compact forms for fast queries: ``coarse`` (the trajectory averaged over 2 s) and
``shape`` (the trajectory resampled to 32 points over the song's length). Each song is
written in its own transaction. The schema is versioned (``PRAGMA user_version``): a
database from a newer emotrack is refused with a message, never rewritten.

No thread of its own: ``emotrack index`` writes from its main process, ``find`` and the
library service inside ``live`` read (each connection stays on the thread that opened it).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import mutagen
import numpy as np

SCHEMA_VERSION = 2  # 2: artist, title, album from the files' tags
COARSE_SECONDS = 2.0  # resolution of the coarse trajectory used to find segments
SHAPE_POINTS = 32  # the whole song resampled to this many points, for whole-song profile queries
STATIC_METHOD = "trajectory_mean"  # the whole-song valence/arousal without a song model (--no-song-model)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS songs (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- absolute
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    model TEXT NOT NULL,                -- name and version of the model that analysed it
    duration REAL NOT NULL,             -- seconds of audio
    hop REAL NOT NULL,                  -- seconds between trajectory points; the first is at 0.5 s
    frames INTEGER NOT NULL,
    valence REAL NOT NULL,              -- whole song
    arousal REAL NOT NULL,
    static_method TEXT NOT NULL,
    trajectory BLOB NOT NULL,           -- float32 [frames, 4]: valence, arousal, valence_std, arousal_std
    coarse BLOB NOT NULL,               -- float32 [n, 2]: valence, arousal averaged over {COARSE_SECONDS:g} s
    shape BLOB NOT NULL,                -- float32 [{SHAPE_POINTS}, 2]: the trajectory over normalised time
    indexed_at REAL NOT NULL,
    artist TEXT, title TEXT, album TEXT -- from the file's tags, NULL when it has none
);
CREATE TABLE IF NOT EXISTS failures (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, error TEXT NOT NULL, at REAL NOT NULL
);
"""


class LibraryError(Exception):
    """The database cannot be used (newer schema, not an emotrack library, unreadable)."""


def default_db() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(os.environ.get("EMOTRACK_DB") or Path(base) / "emotrack" / "library.sqlite")


TAG_COLUMNS = ("artist", "title", "album")
REQUIRED_COLUMNS = {"id", "path", "size", "mtime_ns", "model", "duration", "hop", "frames", "valence", "arousal",
                    "static_method", "trajectory", "coarse", "shape", "indexed_at"}


def damaged(path: str | Path, e: Exception) -> LibraryError:
    """The error for a library file SQLite cannot read (corrupt pages, not a database)."""
    return LibraryError(f"{path} is not a usable SQLite database: damaged, or not a database at all ({e}); build a "
                        "new library with `emotrack index DIR --db NEW.sqlite`, or restore a copy of this one")


def _open_read_only(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        # a WAL library on read-only media: its -shm file cannot be made there, and nothing can
        # be writing to it, so read it as immutable
        db = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=30)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db


def connect(path: str | Path, create: bool = True) -> sqlite3.Connection:
    """Open a library database, checking its schema version and shape. ``create``: open it
    for writing, making the file and the schema if needed; otherwise read-only, and a file
    that holds no library yet is refused, never written to."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise LibraryError(f"no library at {path}: build one with `emotrack index DIR --db {path}`")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(str(path), timeout=30) if create else _open_read_only(path)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {r[1] for r in db.execute("PRAGMA table_info(songs)")} if "songs" in tables else set()
    except sqlite3.DatabaseError as e:
        raise damaged(path, e) from e
    if version == 1 and create:  # schema 1 lacked the tags: add the columns (NULL until analysed again)
        with db:
            for col in TAG_COLUMNS:
                if col not in columns:
                    db.execute(f"ALTER TABLE songs ADD COLUMN {col} TEXT")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        columns |= set(TAG_COLUMNS)
    if version > SCHEMA_VERSION:
        db.close()
        raise LibraryError(f"{path} was written by a newer emotrack (schema {version}, this one reads "
                           f"{SCHEMA_VERSION}); upgrade emotrack or use another --db")
    if version == 0 and tables and "songs" not in tables:
        db.close()
        raise LibraryError(f"{path} is an SQLite database but not an emotrack library; give another --db")
    if version == 0 and not tables:
        if not create:
            db.close()
            raise LibraryError(f"{path} holds no library yet: build one with `emotrack index DIR --db {path}`")
        with db:
            db.executescript(SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (time.strftime("%Y-%m-%dT%H:%M:%S"),))
        columns = REQUIRED_COLUMNS
    if not REQUIRED_COLUMNS <= columns:
        db.close()
        missing = ", ".join(sorted(REQUIRED_COLUMNS - columns))
        raise LibraryError(f"{path}: its songs table lacks {missing} (damaged, or made by another program); "
                           "build a new library with `emotrack index DIR --db NEW.sqlite`")
    if create:
        try:
            db.execute("PRAGMA journal_mode = WAL")  # readers (find) are not blocked by an index run
            db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as e:
            db.close()
            raise damaged(path, e) from e
    return db


def damaged_rows(db: sqlite3.Connection) -> list[int]:
    """Ids of songs whose stored values cannot be what emotrack wrote: a valence or arousal
    that is not a number, blobs of the wrong size."""
    return [r[0] for r in db.execute(
        "SELECT id FROM songs WHERE typeof(valence) NOT IN ('real', 'integer') "
        "OR typeof(arousal) NOT IN ('real', 'integer') OR typeof(duration) NOT IN ('real', 'integer') "
        "OR typeof(trajectory) != 'blob' OR length(trajectory) = 0 OR length(trajectory) % 16 != 0 "
        "OR typeof(coarse) != 'blob' OR length(coarse) = 0 OR length(coarse) % 8 != 0 "
        f"OR typeof(shape) != 'blob' OR length(shape) != {SHAPE_POINTS * 8}")]


# ---------------------------------------------------------------------- what a song becomes
@dataclass
class SongRecord:
    path: str
    size: int
    mtime_ns: int
    model: str
    duration: float
    hop: float
    trajectory: np.ndarray  # [frames, 4]
    song_va: tuple[float, float] | None = None  # from the whole-song model, if one was used
    song_method: str | None = None  # e.g. "emotrack-song 1"
    tags: dict[str, str] | None = None  # artist, title, album (those the file has)

    @property
    def static(self) -> tuple[float, float]:
        if self.song_va is not None:
            return self.song_va
        return float(self.trajectory[:, 0].mean()), float(self.trajectory[:, 1].mean())

    @property
    def static_method(self) -> str:
        return self.song_method if self.song_va is not None else STATIC_METHOD


def coarse_of(traj: np.ndarray, hop: float, seconds: float = COARSE_SECONDS) -> np.ndarray:
    """Mean valence/arousal over consecutive ``seconds``-long blocks (the last may be shorter)."""
    k = max(1, round(seconds / hop))
    va = traj[:, :2].astype(np.float64)
    starts = np.arange(0, len(va), k)
    counts = np.diff(np.append(starts, len(va)))[:, None]
    return (np.add.reduceat(va, starts, axis=0) / counts).astype(np.float32)


def resample(points: np.ndarray, n: int) -> np.ndarray:
    """``points`` [m, d] linearly resampled to ``n`` points over its normalised length."""
    m = len(points)
    if m == 1:
        return np.repeat(points.astype(np.float32), n, axis=0)
    x = np.linspace(0.0, m - 1, n)
    return np.stack([np.interp(x, np.arange(m), points[:, d]) for d in range(points.shape[1])], 1).astype(np.float32)


def store(db: sqlite3.Connection, rec: SongRecord) -> None:
    v, a = rec.static
    if not (np.isfinite([v, a, rec.duration]).all() and np.isfinite(rec.trajectory).all()):
        raise ValueError(f"{rec.path}: non-finite values in its analysis; not stored")
    traj = np.ascontiguousarray(rec.trajectory, np.float32)
    with db:  # one transaction per song: a crash keeps every song written before it
        db.execute("DELETE FROM failures WHERE path = ?", (rec.path,))
        db.execute(
            "INSERT INTO songs (path, size, mtime_ns, model, duration, hop, frames, valence, arousal, static_method,"
            " trajectory, coarse, shape, indexed_at, artist, title, album) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, model=excluded.model,"
            " duration=excluded.duration, hop=excluded.hop, frames=excluded.frames, valence=excluded.valence,"
            " arousal=excluded.arousal, static_method=excluded.static_method, trajectory=excluded.trajectory,"
            " coarse=excluded.coarse, shape=excluded.shape, indexed_at=excluded.indexed_at, artist=excluded.artist,"
            " title=excluded.title, album=excluded.album",
            (rec.path, rec.size, rec.mtime_ns, rec.model, rec.duration, rec.hop, len(traj), v, a, rec.static_method,
             traj.tobytes(), coarse_of(traj, rec.hop).tobytes(), resample(traj[:, :2], SHAPE_POINTS).tobytes(),
             time.time(), *((rec.tags or {}).get(k) for k in TAG_COLUMNS)))


def read_tags(path: str | Path) -> dict[str, str]:
    """Artist, title and album from a file's tags (any format mutagen reads); {} if none."""
    try:
        f = mutagen.File(str(path), easy=True)
    except Exception:  # damaged tags must never stop the index
        return {}
    if f is None or not f.tags:
        return {}
    out = {}
    for k in TAG_COLUMNS:
        v = f.tags.get(k)
        if v:
            out[k] = str(v[0] if isinstance(v, list) else v)[:300]
    return out


def store_failure(db: sqlite3.Connection, path: str, size: int, mtime_ns: int, error: str) -> None:
    with db:
        db.execute("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?)", (path, size, mtime_ns, error, time.time()))
