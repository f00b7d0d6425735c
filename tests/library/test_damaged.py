"""Libraries that are damaged, odd or read-only get a clear answer from find, index and
live --db, never a traceback, and nothing is written where it should not be."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess

import numpy as np
import pytest
from emotrack.realtime.library.store import SongRecord, connect, store

from ..conftest import EMOTRACK


def run(*args, timeout=60):
    return subprocess.run(EMOTRACK + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def library(tmp_path):
    path = tmp_path / "lib.sqlite"
    db = connect(path)
    rng = np.random.default_rng(0)
    for i in range(40):
        traj = np.concatenate([rng.uniform(-1, 1, (120, 2)), np.full((120, 2), 0.3)], 1).astype(np.float32)
        store(db, SongRecord(f"/music/{i:03d}.flac", 1, 1, "m 1", 60.0, 0.5, traj))
    db.close()
    return path


def _no_traceback(r):
    assert "Traceback" not in r.stderr, r.stderr


def test_corrupt_pages(library, tmp_path, demo_path):
    data = bytearray(library.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # every page after the header
    library.write_bytes(bytes(data))
    for r in (run("find", "--point", "0.1,0.1", "--db", str(library)),
              run("find", "--profile", "-", "--db", str(library), "--match", "segment"),
              run("index", str(tmp_path / "nothing"), "--db", str(library))):
        _no_traceback(r)
        assert r.returncode == 2
    r = run("find", "--point", "0.1,0.1", "--db", str(library))
    assert "not a usable SQLite database" in r.stderr or "damaged" in r.stderr
    r = run("live", "--no-gui", "--ws", "127.0.0.1:0", "--duration", "1", "--fast", "--input", str(demo_path),
            "--db", str(library))
    _no_traceback(r)
    assert r.returncode == 2 and "not a usable SQLite database" in r.stderr


@pytest.mark.parametrize("damage", [
    "ALTER TABLE songs DROP COLUMN shape",
    "UPDATE songs SET trajectory = x'0102030405' WHERE id = 3",
    "UPDATE songs SET valence = 'happy' WHERE id = 4",
])
def test_odd_rows_or_columns(library, damage):
    with sqlite3.connect(library) as db:
        db.execute(damage)
    r = run("find", "--point", "0.1,0.1", "--db", str(library))
    _no_traceback(r)
    assert r.returncode == 2
    assert "lacks shape" in r.stderr if "DROP" in damage else "cannot have written" in r.stderr


def test_index_removes_damaged_rows_and_analyses_again(library, tmp_path):
    with sqlite3.connect(library) as db:
        db.execute("UPDATE songs SET valence = 'happy' WHERE id = 4")
    (tmp_path / "none").mkdir()
    r = run("index", str(tmp_path / "none"), "--db", str(library), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "1 damaged songs were removed" in r.stderr and "the library holds 39 songs" in r.stderr
    assert run("find", "--point", "0.1,0.1", "--db", str(library)).returncode == 0


def test_wal_library_on_read_only_media(library, tmp_path):
    with sqlite3.connect(library) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(library, ro / "lib.sqlite")
    os.chmod(ro / "lib.sqlite", stat.S_IRUSR)
    r = subprocess.run(["mount", "-o", "bind,ro", str(ro), str(ro)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {r.stderr.strip()}")
    try:
        r = run("find", "--point", "0.1,0.1", "--db", str(ro / "lib.sqlite"), "--format", "json")
        assert r.returncode == 0, r.stderr
        assert '"path": "/music/' in r.stdout
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_find_never_writes_a_schema_into_an_empty_file(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    r = run("find", "--point", "0.1,0.1", "--db", str(empty))
    assert r.returncode == 2 and "holds no library yet" in r.stderr
    assert empty.read_bytes() == b""


def test_find_arguments(library, tmp_path):
    bad = tmp_path / "curve.csv"
    bad.write_bytes(b"t,valence,arousal\n0,\xff\xfe,0.1\n")
    r = run("find", "--profile", str(bad), "--db", str(library))
    _no_traceback(r)
    assert r.returncode == 2 and "not UTF-8" in r.stderr
    for k in ("0", "-3"):
        r = run("find", "--point", "0.1,0.1", "-k", k, "--db", str(library))
        assert r.returncode == 2 and "1 or more" in r.stderr
    r = run("find", "--point", "0.1,0.1", "-k", "2", "--db", str(library), "--format", "json")
    assert r.returncode == 0 and r.stdout.count('"id"') == 2
