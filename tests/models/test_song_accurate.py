"""The accurate models' training side: the runtime's numpy front end against librosa (what
the teacher pass used), the shipped teachers' graph against the torch port, and the whole
paths on a tiny scale from one teacher pass: `train-song --teacher-features`, `export-song`
(both parity gates and the end-to-end check), `analyze` and `index` with the exported
song model; and `train --accurate`, `export` (parity gate, end-to-end check, card), then
`analyze --model` with the exported dynamic model."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("librosa")
from emotrack.models import teachers  # noqa: E402
from emotrack.realtime.core import teacher as T  # noqa: E402
from emotrack.realtime.core.song import SongModel  # noqa: E402

from ..conftest import EMOTRACK, needs_data  # noqa: E402
from .test_training import run  # noqa: E402


def _signal(seconds=8.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    return (rng.normal(size=n) * np.abs(np.sin(np.arange(n) / 2500)) * 0.3).astype(np.float32)


def test_numpy_front_end_matches_librosa():
    y = _signal()
    ours, ref = T.melspectrogram(y), teachers.melspectrogram(y)
    assert ours.shape == ref.shape
    # both round the mel power to float16 before the log; where float32 sums differ in the last bit, the
    # float16 rounding can fall one step apart: 2^-10 relative, at most 0.434 * 2^-10 = 4.2e-4 after log10
    diff = np.abs(ours - ref)
    assert diff.max() <= 4.3e-4
    assert (diff > 1e-6).mean() < 0.01  # and that happens on few bins


def test_shipped_teachers_graph_equals_the_torch_port():
    try:
        nets = [teachers.load_teacher(n) for n in teachers.TEACHERS]
    except teachers.TeacherMissingError as e:
        pytest.skip(str(e))
    y = _signal(6.0, seed=1)
    spec = np.concatenate([np.zeros((T.PATCH_FRAMES - 1, T.N_MELS), np.float32), T.melspectrogram(y)])
    patches = np.stack([spec[s:s + T.PATCH_FRAMES] for s in T.window_starts(np.array([1.0, 3.5, 6.0]))])
    with torch.no_grad():
        ref = np.concatenate([x.numpy() for net in nets for x in net(torch.from_numpy(patches))[:2]], 1)
    np.testing.assert_allclose(T.TeacherModel().run(patches), ref, atol=1e-4, rtol=0)


@needs_data()
def test_accurate_song_pipeline_tiny(tmp_path):
    env = {**os.environ, "EMOTRACK_CACHE": str(tmp_path / "cache")}
    data = ["--datasets", "soundtracks", "panda4q", "--limit", "5"]  # 10 training songs, the minimum
    run("teacher-pass", *data, "--jobs", "2", env=env)
    out = tmp_path / "song-accurate"
    tr = run("train-song", "--teacher-features", *data, "--out", str(out), env=env)
    report = json.loads((out / "report.json").read_text())
    assert report["stride_seconds"] in (0.5, 1.0, 3.0) and set(report["selection_val_score"]) == {"3 s", "1 s", "0.5 s"}
    shipped = f"shipped song model ({SongModel().label})"  # the default song model, as shipped now
    assert shipped in report["test"]["soundtracks"] and "| method |" in tr.stdout

    exp = tmp_path / "export"
    run("export-song", "--run", str(out), "--out", str(exp), env=env)
    card = json.loads((exp / "emotrack-song-accurate.card.json").read_text())
    assert card["kind"] == "song-accurate" and card["parity"]["torch_vs_onnx"] <= 1e-4
    assert card["parity"]["teachers"]["torch_vs_onnx"] <= 1e-4
    # the runtime's path from the audio file reproduces the training features' answer
    assert len(card["end_to_end"]["clips"]) >= 2 and card["end_to_end"]["max_abs_difference"] <= 1e-3
    assert "# Accurate whole-song model (opt-in): emotrack-song-accurate" in (exp / "MODEL_CARD.md").read_text()

    from emotrack.models.cli import load_clips

    audio = [c.audio for c in load_clips(None, ["soundtracks"], {}, 1) if c.audio is not None][:2]
    model = str(exp / "emotrack-song-accurate.onnx")
    a = run("analyze", "--song", "--song-model", model, *map(str, audio), env=env)
    recs = [json.loads(line) for line in a.stdout.splitlines()]
    assert len(recs) == 2 and all(r["song_model"] == "emotrack-song-accurate 1" for r in recs)

    lib = tmp_path / "lib"
    lib.mkdir()
    for p in audio:
        (lib / p.name).symlink_to(p)
    db = tmp_path / "music.sqlite"
    run("index", str(lib), "--db", str(db), "--song-model", model, "--jobs", "1", "--no-progress", env=env)
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT model, static_method FROM songs").fetchall()
    assert len(rows) == 2 and all(m.endswith("+ emotrack-song-accurate 1") for m, _ in rows), rows

    # the accurate dynamic model from the same teacher pass
    acc = tmp_path / "accurate"
    tr = run("train", "--accurate", "--quick", *data, "--out", str(acc), env=env)
    rep = json.loads((acc / "report.json").read_text())
    assert rep["kind"] == "accurate" and len(rep["settings"]) == 1 and "| accurate |" in tr.stdout
    assert set(rep["test"]) == {"accurate", "teacher head"} and "soundtracks" in rep["levels"]["accurate"]
    # a changed recipe (--set, as for the student): whole-clip labels, a second seed the card counts
    acc1 = tmp_path / "accurate-clip"
    run("train", "--accurate", "--quick", *data, "--seed", "1", "--set", "label_pool=clip", "--out", str(acc1), env=env)
    assert json.loads((acc1 / "report.json").read_text())["config"]["label_pool"] == "clip"
    assert rep["config"]["label_pool"] == "frame"
    bad = subprocess.run(EMOTRACK + ["train", "--accurate", "--set", "label_pool=bag", "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and "label_pool='bag'" in bad.stderr and not (tmp_path / "bad").exists(), bad.stderr
    exp2 = tmp_path / "export-accurate"
    run("export", "--run", str(acc), "--out", str(exp2), "--accurate-runs", str(acc1), env=env)
    card = json.loads((exp2 / "emotrack-accurate.card.json").read_text())
    assert card["kind"] == "accurate" and card["parity"]["torch_vs_onnx"] <= 1e-4
    assert card["parity"]["swapped_state_effect"] > 1e-6 and (exp2 / "musicnn-teachers.onnx").exists()
    assert len(card["end_to_end"]["clips"]) >= 2 and card["end_to_end"]["max_abs_difference"] <= 1e-3
    md = (exp2 / "MODEL_CARD.md").read_text()
    assert "# Accurate dynamic model (opt-in): emotrack-accurate 1" in md and "2 training seed(s)" in md
    a = run("analyze", "--model", str(exp2 / "emotrack-accurate.onnx"), str(audio[0]), env=env)
    recs = [json.loads(line) for line in a.stdout.splitlines()]
    assert len(recs) > 10 and all(-1 <= r["valence"] <= 1 and r["arousal_std"] > 0 for r in recs)


def test_accurate_card_pools_the_seeds_of_a_left_out_set():
    """Several runs that leave out the same set are one row each metric, mean ± sd over them
    (np.std, as for the seeds), with the seeds named; a set left out once stays one run."""
    from emotrack.export.accurate_card import _runs_section

    def rep(seed, leave_out, film_arousal, panda_sign=0.6):
        test = {"soundtracks": {"arousal": {"r": {"mean": film_arousal}}},
                "panda4q": {"valence": {"sign_accuracy": panda_sign}}}
        return {"config": {"seed": seed, "leave_out": leave_out}, "test": {"accurate": test, "teacher head": test}}

    card = {"run": "s0", "report": rep(0, None, 0.87),
            "other_runs": {"l0": rep(0, "soundtracks", 0.70), "l1": rep(1, "soundtracks", 0.80),
                           "l2": rep(2, "soundtracks", 0.75), "p0": rep(0, "panda4q", 0.9, 0.55)}}
    lines = _runs_section(card)
    film = [x for x in lines if x.startswith("| soundtracks | Soundtracks arousal r")]
    assert film == [f"| soundtracks | Soundtracks arousal r | 0.750 ± {np.std([0.7, 0.8, 0.75]):.3f} | 0.750 | "
                    "3 (seed 0, 1, 2) |"]
    assert "| panda4q | Panda valence sign acc. | 0.550 | 0.550 | 1 (seed 0) |" in lines
    assert "1 training seed(s)" in lines[2]
