"""``emotrack index``: a music library's emotion in one SQLite file.

Per song: the dynamic trajectory (valence, arousal and their stds every ``hop`` seconds,
the same numbers ``emotrack analyze`` prints), its whole-song valence/arousal, and two
compact forms for fast queries: ``coarse`` (the trajectory averaged over 2 s) and
``shape`` (the trajectory resampled to 32 points over the song's length).

- Both cores: files are analysed in worker processes (``--jobs``, default: all cores);
  the main process alone writes the database, one transaction per song, so a crash or a
  kill loses at most the songs being analysed at that moment.
- Resumable: a file whose size and modification time (and the model) are unchanged is
  skipped; so are files that failed before and have not changed since (``--retry-failed``
  tries them again). Undecodable files are reported, recorded and skipped.
- Versioned schema (``PRAGMA user_version``): a database from a newer emotrack is refused
  with a message, never rewritten.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
COARSE_SECONDS = 2.0  # resolution of the coarse trajectory used to find segments
SHAPE_POINTS = 32  # the whole song resampled to this many points, for whole-song profile queries
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".w64", ".caf"}
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
    indexed_at REAL NOT NULL
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


def connect(path: str | Path, create: bool = True) -> sqlite3.Connection:
    """Open (or create) a library database, checking its schema version."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise LibraryError(f"no library at {path}: build one with `emotrack index DIR --db {path}`")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(str(path), timeout=30)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise LibraryError(f"{path} is not a usable SQLite database ({e}); give another --db") from e
    if version > SCHEMA_VERSION:
        db.close()
        raise LibraryError(f"{path} was written by a newer emotrack (schema {version}, this one reads "
                           f"{SCHEMA_VERSION}); upgrade emotrack or use another --db")
    if version == 0 and tables and "songs" not in tables:
        db.close()
        raise LibraryError(f"{path} is an SQLite database but not an emotrack library; give another --db")
    if version == 0:
        with db:
            db.executescript(SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (time.strftime("%Y-%m-%dT%H:%M:%S"),))
    db.execute("PRAGMA journal_mode = WAL")  # readers (find) are not blocked by an index run
    db.execute("PRAGMA synchronous = NORMAL")
    return db


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
    traj = np.ascontiguousarray(rec.trajectory, np.float32)
    with db:  # one transaction per song: a crash keeps every song written before it
        db.execute("DELETE FROM failures WHERE path = ?", (rec.path,))
        db.execute(
            "INSERT INTO songs (path, size, mtime_ns, model, duration, hop, frames, valence, arousal, static_method,"
            " trajectory, coarse, shape, indexed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, model=excluded.model,"
            " duration=excluded.duration, hop=excluded.hop, frames=excluded.frames, valence=excluded.valence,"
            " arousal=excluded.arousal, static_method=excluded.static_method, trajectory=excluded.trajectory,"
            " coarse=excluded.coarse, shape=excluded.shape, indexed_at=excluded.indexed_at",
            (rec.path, rec.size, rec.mtime_ns, rec.model, rec.duration, rec.hop, len(traj), v, a, rec.static_method,
             traj.tobytes(), coarse_of(traj, rec.hop).tobytes(), resample(traj[:, :2], SHAPE_POINTS).tobytes(),
             time.time()))


def store_failure(db: sqlite3.Connection, path: str, size: int, mtime_ns: int, error: str) -> None:
    with db:
        db.execute("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?)", (path, size, mtime_ns, error, time.time()))


# ---------------------------------------------------------------------- analysis (worker processes)
_model = None
_song = None


def _init_worker(model_path: str | None, song_path: str | None, use_song: bool) -> None:
    global _model, _song
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .model import load_model
    from .song import SongModel

    _model = load_model(model_path, threads=1)
    _song = SongModel(song_path, threads=1) if use_song else None


def analyse(path: str, size: int, mtime_ns: int, model=None, song=None) -> SongRecord | tuple[str, int, int, str]:
    """One file -> its record, or (path, size, mtime_ns, error) if it cannot be decoded. With
    a song model, the whole-song valence/arousal is its answer on the same frames."""
    from .audio import AudioDecodeError
    from .song import SongTooShortError, analyze_song

    model = model or _model
    song = song or _song
    try:
        res = analyze_song(path, model, song)
    except (AudioDecodeError, SongTooShortError) as e:
        return (path, size, mtime_ns, str(e))
    except Exception as e:  # a broken file must never stop the index
        return (path, size, mtime_ns, f"{type(e).__name__}: {e}")
    return SongRecord(path, size, mtime_ns, model_id(model, song), res.duration, model.features.frame_seconds,
                      res.trajectory, (res.valence, res.arousal) if song is not None else None,
                      song.label if song is not None else None)


def model_id(model, song=None) -> str:
    """What analysed a song; a song analysed by other models is analysed again."""
    return f"{model.name} {model.version}" + (f" + {song.label}" if song is not None else "")


# ---------------------------------------------------------------------- the index run
def find_audio(dirs: Iterable[str | Path]) -> Iterator[Path]:
    for d in dirs:
        d = Path(d)
        if d.is_file():
            yield d.resolve()
            continue
        for root, subdirs, files in os.walk(d):
            subdirs.sort()
            for f in sorted(files):
                if Path(f).suffix.lower() in AUDIO_SUFFIXES:
                    yield (Path(root) / f).resolve()


def plan(db: sqlite3.Connection, files: Iterable[Path], model_id: str, retry_failed: bool = False):
    """(todo, skipped_unchanged, skipped_failed): todo as (path, size, mtime_ns)."""
    known = {p: (s, m, mod) for p, s, m, mod in db.execute("SELECT path, size, mtime_ns, model FROM songs")}
    failed = {p: (s, m) for p, s, m in db.execute("SELECT path, size, mtime_ns FROM failures")}
    todo, unchanged, still_failing = [], 0, 0
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        key = str(f)
        if known.get(key) == (st.st_size, st.st_mtime_ns, model_id):
            unchanged += 1
        elif not retry_failed and failed.get(key) == (st.st_size, st.st_mtime_ns):
            still_failing += 1
        else:
            todo.append((key, st.st_size, st.st_mtime_ns))
    return todo, unchanged, still_failing


def run_index(args) -> int:
    from .model import ModelMismatchError, load_model
    from .song import SongModel

    missing = [d for d in args.dirs if not Path(d).exists()]
    if missing:
        print(f"emotrack index: no such folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    try:
        model = load_model(args.model)
        try:
            song = None if args.no_song_model else SongModel(args.song_model)
        except (ModelMismatchError, FileNotFoundError) as e:
            raise LibraryError(f"{e} (--no-song-model stores the trajectory mean instead)") from e
        db = connect(args.db or default_db())
    except (ModelMismatchError, FileNotFoundError, LibraryError) as e:
        print(f"emotrack index: {e}", file=sys.stderr)
        return 2
    todo, unchanged, old_failures = plan(db, find_audio(args.dirs), model_id(model, song), args.retry_failed)
    db_path = args.db or default_db()
    print(f"emotrack index: {len(todo)} to analyse, {unchanged} unchanged"
          + (f", {old_failures} that failed before (--retry-failed tries them again)" if old_failures else "")
          + f"; database {db_path}", file=sys.stderr, flush=True)
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(todo) or 1))
    done = failed = 0
    progress = _progress(len(todo), args)
    try:
        for res in _results(todo, jobs, args, model, song):
            if isinstance(res, SongRecord):
                store(db, res)
                done += 1
            else:
                path, size, mtime_ns, error = res
                store_failure(db, path, size, mtime_ns, error)
                failed += 1
                msg = f"emotrack index: skipped (cannot decode): {error}"
                (progress.write if progress is not None else lambda m: print(m, file=sys.stderr))(msg)
            if progress is not None:
                progress.update(1)
    except KeyboardInterrupt:
        print(f"\nemotrack index: interrupted; {done} songs were stored and are kept. Run the same command "
              "again to go on.", file=sys.stderr)
        return 130
    finally:
        if progress is not None:
            progress.close()
        db.close()
    total = unchanged + done
    print(f"emotrack index: analysed {done}, {failed} could not be decoded, {unchanged} unchanged; "
          f"the library holds {total} songs", file=sys.stderr)
    return 3 if failed else 0


def _results(todo, jobs: int, args, model, song):
    if jobs == 1:
        for item in todo:
            yield analyse(*item, model=model, song=song)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: workers load their own onnxruntime session; nothing is inherited mid-state
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(args.model, args.song_model, song is not None)) as ex:
        # long files first keeps both cores busy to the end; results arrive as they finish
        order = sorted(todo, key=lambda t: -t[1])
        futures = [ex.submit(analyse, *item) for item in order]
        try:
            for f in as_completed(futures):
                yield f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _progress(total: int, args):
    if args.no_progress or total == 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="song", file=sys.stderr, dynamic_ncols=True)
