"""A recording on a disk that fills up: no partial line is left, and the run says so and
ends non-zero. A real tmpfs of 4 KiB (mounting needs root, as CI runs)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import uuid

import pytest

from ..conftest import EMOTRACK


@pytest.fixture()
def small_disk(tmp_path):
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); CI runs as root and can")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.parametrize("ext", ["jsonl", "csv"])
def test_disk_full_leaves_whole_lines_and_a_nonzero_exit(small_disk, demo_path, ext):
    rec = small_disk / f"run.{ext}"
    r = subprocess.run(EMOTRACK + ["live", "--no-gui", "--quiet", "--fast", "--ws", "off", "--input", str(demo_path),
                                   "--record", str(rec)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "recording to" in r.stderr and "stopped" in r.stderr and "No space left" in r.stderr
    data = rec.read_bytes()
    assert data.endswith(b"\n") and 0 < os.path.getsize(rec) <= 4096
    lines = data.decode().splitlines()
    if ext == "jsonl":
        rows = [json.loads(x) for x in lines]
    else:
        rows = list(csv.DictReader(lines))
        assert set(rows[0]) == {"seq", "t", "wall", "valence", "arousal", "valence_std", "arousal_std", "latency_ms"}
    assert [int(x["seq"]) for x in rows] == list(range(len(rows)))  # every prediction up to the end, whole
    assert f"holds the first {len(rows)} predictions" in r.stderr
