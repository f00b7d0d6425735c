"""``emotrack index``: analyse every audio file under some folders into a library file.

Threads and processes: the main process finds the files, hands them to ``--jobs`` worker
processes (default: one per core; each runs the streaming path and the whole-song model
on one thread) and alone writes the database, one transaction per song as results arrive,
so a crash or a kill loses at most the songs being analysed at that moment.

- Resumable: a file whose size and modification time (and the models) are unchanged is
  skipped; so are files that failed before and have not changed since (``--retry-failed``
  tries them again). Undecodable files are reported, recorded and skipped.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from ..console import progress, say
from ..core.audio import AudioDecodeError
from ..core.avdecode import SUFFIXES as AV_SUFFIXES
from ..core.model import EmotionModel, ModelError, load_model
from ..core.song import (
    AccurateSongModel,
    SongModel,
    SongTooShortError,
    analyze_song,
    open_song_model,
)
from ..core.threads import single_thread_blas
from ..exitcodes import ExitCode
from .store import (
    LibraryError,
    SongRecord,
    connect,
    damaged,
    damaged_rows,
    default_db,
    read_tags,
    store,
    store_failure,
)

HELP = "analyse a music library into one SQLite file (resumable)"
DESCRIPTION = ("Analyses every audio file under the folders (both cores) and stores each song's trajectory and "
               "whole-song valence/arousal (the TNN-SVR song model). Unchanged files (size, mtime) are skipped, "
               "so running it again goes on where it stopped.")
# libsndfile's formats, and FFmpeg's (m4a/AAC, ALAC, WMA, video files: core/avdecode.py)
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".w64",
                  ".caf"} | AV_SUFFIXES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="folders (searched recursively) or files")
    p.add_argument("--db", help="the library file (default $EMOTRACK_DB or ~/.local/share/emotrack/library.sqlite)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    p.add_argument("--retry-failed", action="store_true", help="try files that could not be decoded before")
    p.add_argument("--model", help="'accurate' for the opt-in model that runs the musicnn teachers every 0.5 s "
                   "(closer to the labels, ~50x the compute), or an exported .onnx (default: the shipped VAE-LSTM)")
    p.add_argument("--song-model", help="the whole-song model: 'accurate' (the opt-in one that runs the musicnn "
                   "teachers), or an .onnx from `emotrack export-song` (default: the shipped one)")
    p.add_argument("--no-song-model", action="store_true",
                   help="whole-song valence/arousal as the mean of the trajectory instead")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


# ---------------------------------------------------------------------- analysis (worker processes)
_model: EmotionModel | None = None
_song: SongModel | AccurateSongModel | None = None


def _init_worker(model_path: str | None, song_path: str | None, use_song: bool) -> None:
    global _model, _song
    single_thread_blas()
    _model = load_model(model_path, threads=1)
    _song = open_song_model(song_path, threads=1) if use_song else None


def analyze_file(path: str, size: int, mtime_ns: int, model: EmotionModel | None = None,
                 song: SongModel | AccurateSongModel | None = None) -> SongRecord | tuple[str, int, int, str]:
    """One file -> its record, or (path, size, mtime_ns, error) if it cannot be decoded. With
    a song model, the whole-song valence/arousal is its answer on the same frames."""
    model = model or _model
    song = song or _song
    try:
        res = analyze_song(model, path, song)
    except (AudioDecodeError, SongTooShortError) as e:
        return (path, size, mtime_ns, str(e))
    except Exception as e:  # a broken file must never stop the index
        return (path, size, mtime_ns, f"{type(e).__name__}: {e}")
    return SongRecord(path, size, mtime_ns, model_id(model, song), res.duration, model.features.frame_seconds,
                      res.trajectory, (res.valence, res.arousal) if song is not None else None,
                      song.label if song is not None else None, read_tags(path))


def model_id(model: EmotionModel, song: SongModel | AccurateSongModel | None = None) -> str:
    """What analysed a song; a song analysed by other models is analysed again."""
    return model.label + (f" + {song.label}" if song is not None else "")


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


def plan(db, files: Iterable[Path], model_id: str, retry_failed: bool = False):
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


def run(args: argparse.Namespace) -> int:
    return index(args.dirs, args.db, args.jobs, args.retry_failed, args.model, args.song_model,
                 not args.no_song_model, not args.no_progress)


def index(dirs: list[str], db_path: str | None = None, jobs: int | None = None, retry_failed: bool = False,
          model_path: str | None = None, song_model_path: str | None = None, use_song_model: bool = True,
          show_progress: bool = True) -> int:
    missing = [d for d in dirs if not Path(d).exists()]
    if missing:
        say("index", f"no such folder: {', '.join(map(str, missing))}")
        return ExitCode.USAGE
    try:
        model = load_model(model_path)
        try:
            song = open_song_model(song_model_path) if use_song_model else None
        except ModelError as e:
            raise LibraryError(f"{e} (--no-song-model stores the trajectory mean instead)") from e
        db_path = db_path or default_db()
        db = connect(db_path)
        bad = damaged_rows(db)
        if bad:  # analysed again below, like any file the library does not hold
            with db:
                db.executemany("DELETE FROM songs WHERE id = ?", [(b,) for b in bad])
            say("index", f"{len(bad)} damaged songs were removed from the library; their files are analysed again")
        todo, unchanged, old_failures = plan(db, find_audio(dirs), model_id(model, song), retry_failed)
    except (ModelError, LibraryError) as e:
        say("index", str(e))
        return ExitCode.USAGE
    except sqlite3.DatabaseError as e:
        say("index", str(damaged(db_path, e)))
        return ExitCode.USAGE
    say("index", f"{len(todo)} to analyse, {unchanged} unchanged"
        + (f", {old_failures} that failed before (--retry-failed tries them again)" if old_failures else "")
        + f"; database {db_path}")
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    done = failed = 0
    bar = progress(len(todo), "song", show_progress and bool(todo))
    try:
        for res in results(todo, jobs, model_path, song_model_path, model, song):
            if isinstance(res, SongRecord):
                try:
                    store(db, res)
                except ValueError as e:  # non-finite values: recorded as a failure, never stored
                    res = (res.path, res.size, res.mtime_ns, str(e))
                else:
                    done += 1
            if not isinstance(res, SongRecord):
                path, size, mtime_ns, error = res
                store_failure(db, path, size, mtime_ns, error)
                failed += 1
                msg = f"skipped (cannot decode): {error}"
                bar.write(f"emotrack index: {msg}") if bar is not None else say("index", msg)
            if bar is not None:
                bar.update(1)
        total = db.execute("SELECT count(*) FROM songs").fetchone()[0]
    except KeyboardInterrupt:
        print(file=sys.stderr)
        say("index", f"interrupted; {done} songs were stored and are kept. Run the same command again to go on.")
        return ExitCode.INTERRUPTED
    except sqlite3.DatabaseError as e:
        say("index", f"{damaged(db_path, e)}; the {done} songs stored before are kept")
        return ExitCode.USAGE
    finally:
        if bar is not None:
            bar.close()
        db.close()
    say("index", f"analysed {done}, {failed} could not be decoded, {unchanged} unchanged; "
        f"the library holds {total} song{'s' if total != 1 else ''}")
    return ExitCode.DECODE if failed else ExitCode.OK


def results(todo, jobs: int, model_path: str | None, song_model_path: str | None, model: EmotionModel,
            song: SongModel | AccurateSongModel | None):
    """Each file's record or failure, as it finishes: in this process with one job, else in
    ``jobs`` worker processes that open the models at the same paths."""
    if jobs == 1:
        for item in todo:
            yield analyze_file(*item, model=model, song=song)
        return
    # spawn: workers load their own onnxruntime session; nothing is inherited mid-state
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(model_path, song_model_path, song is not None)) as ex:
        # long files first keeps both cores busy to the end; results arrive as they finish
        order = sorted(todo, key=lambda t: -t[1])
        futures = [ex.submit(analyze_file, *item) for item in order]
        try:
            for f in as_completed(futures):
                yield f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
