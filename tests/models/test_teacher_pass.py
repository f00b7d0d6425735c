"""`emotrack teacher-pass` stops cleanly on Ctrl-C: the clips not yet started are dropped, the
ones that finished count and stay cached, the partial pass is recorded, the command exits 130,
and the same command goes on with the rest."""

from __future__ import annotations

import json
import time
from concurrent.futures import as_completed
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")
from emotrack.models import teacher_pass as tp  # noqa: E402

N = 30


def _fake_work(clip):  # a clip's targets, written as the real pass writes them (atomically, at the end)
    time.sleep(0.05)
    path = tp.targets_path(clip)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"targets")
    return clip.key, 10.0, None


def _clips():
    return [SimpleNamespace(dataset="debian", id=f"c{i:02d}", key=f"debian/c{i:02d}") for i in range(N)]


@pytest.fixture
def fake_pass(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOTRACK_CACHE", str(tmp_path))
    monkeypatch.setattr(tp, "_init", lambda vgg=False: None)  # no teachers: the workers run the fake
    monkeypatch.setattr(tp, "_work", _fake_work)
    return tmp_path


def _interrupted_after(k):
    """as_completed that hands over k finished clips, then raises KeyboardInterrupt as a Ctrl-C
    in the parent's loop does."""
    def gen(futures):
        for i, f in enumerate(as_completed(futures)):
            if i == k:
                raise KeyboardInterrupt
            yield f
    return gen


def test_ctrl_c_stops_the_pass_and_loses_nothing(fake_pass, monkeypatch):
    monkeypatch.setattr(tp, "as_completed", _interrupted_after(3))
    lines = []
    res = tp.run_pass(_clips(), jobs=2, log=lines.append)
    cached = sorted(fake_pass.glob("teacher/v1/debian/*.npz"))
    assert res["interrupted"] and 3 <= res["done"] < N  # stopped: the queued clips were dropped
    assert len(cached) == res["done"]  # every clip that finished is counted, none is half-written
    assert res["audio_hours"] == pytest.approx(res["done"] * 10.0 / 3600)
    assert any("interrupted" in line for line in lines)
    rec = json.loads((fake_pass / "teacher" / "v1" / "pass.json").read_text())
    assert rec["interrupted"] and rec["passes"][-1]["done"] == res["done"]

    monkeypatch.setattr(tp, "as_completed", _interrupted_after(N + 1))  # never interrupted
    again = tp.run_pass(_clips(), jobs=2, log=lines.append)
    assert not again["interrupted"] and again["done"] == N - res["done"]
    assert len(list(fake_pass.glob("teacher/v1/debian/*.npz"))) == N
    rec = json.loads((fake_pass / "teacher" / "v1" / "pass.json").read_text())
    assert rec["total"]["done"] == N and [p["interrupted"] for p in rec["passes"]] == [True, False]


def test_the_command_exits_130_and_says_how_to_go_on(fake_pass, monkeypatch, capsys):
    monkeypatch.setattr(tp, "as_completed", _interrupted_after(2))
    monkeypatch.setattr(tp, "load_clips", lambda *a, **k: _clips())
    args = SimpleNamespace(data=None, datasets=None, jobs=2, vgg=False, limit=None)
    monkeypatch.setattr(tp, "roots_of", lambda a: {})
    assert tp.cmd_teacher_pass(args) == 130
    out = capsys.readouterr().out
    assert "teacher pass stopped" in out and "the same command goes on with them" in out


def _killed_after(k):
    """as_completed that hands over k finished clips, then stops the pass as SIGKILL would:
    nothing after that point in run_pass runs (here: an exception it does not catch)."""
    def gen(futures):
        for i, f in enumerate(as_completed(futures)):
            if i == k:
                raise SystemExit("killed")
            yield f
    return gen


def test_a_killed_pass_keeps_the_record_it_had_written(fake_pass, monkeypatch):
    """The record is written as the pass goes (every 25 clips), so a pass stopped outright by the
    machine leaves what it did, marked as not finished, and the next pass adds to it."""
    monkeypatch.setattr(tp, "as_completed", _killed_after(27))
    with pytest.raises(SystemExit):
        tp.run_pass(_clips(), jobs=2, log=lambda m: None)
    rec = json.loads((fake_pass / "teacher" / "v1" / "pass.json").read_text())
    assert rec["done"] == 25 and rec["interrupted"] and rec["audio_hours"] == pytest.approx(25 * 10.0 / 3600)
    for f in sorted(fake_pass.glob("teacher/v1/debian/*.npz"))[25:]:  # the fake's clips outran the loop: a
        f.unlink()  # real kill leaves those that had not finished uncached
    left = N - 25
    monkeypatch.setattr(tp, "as_completed", _interrupted_after(N + 1))  # never interrupted
    again = tp.run_pass(_clips(), jobs=2, log=lambda m: None)
    assert again["done"] == left and not again["interrupted"]
    rec = json.loads((fake_pass / "teacher" / "v1" / "pass.json").read_text())
    assert [(p["done"], p["interrupted"]) for p in rec["passes"]] == [(25, True), (left, False)]
    assert rec["total"]["done"] == 25 + left and rec["total"]["passes"] == 2
