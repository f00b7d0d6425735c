"""scripts/compare_release.py: a candidate's summary beside the shipped one, goal by goal, and
the validation numbers a ship is decided by, read from the seeds' reports."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from ..conftest import ROOT

_spec = importlib.util.spec_from_file_location("compare_release", ROOT / "scripts" / "compare_release.py")
compare_release = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_release)


def run(capsys, *args):
    rc = compare_release.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _summary(tmp_path, name: str, film_valence: float, panda_sign: float, val: list[list[float]]) -> str:
    runs = []
    for i, hist in enumerate(val):
        run = tmp_path / name / f"student-s{i}"
        run.mkdir(parents=True)
        history = [{"epoch": k + 1, "val_mean_r": v} for k, v in enumerate(hist)]
        (run / "report.json").write_text(json.dumps({"head": {"history": history}}))
        runs.append(str(run))
    s = {"seed_runs": runs, "teacher_head": {},
         "student": {"soundtracks valence r": [film_valence, 0.01, 3], "panda4q valence sign accuracy": [panda_sign, 0.02, 3],
                     "vgmidi valence r": [0.25, 0.02, 3]},
         "lodo": {"panda4q": {"student": {"panda4q valence r": [0.6, 0.0, 1]}}}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(s))
    return str(path)


def test_goals_lost_and_gained_and_the_validation_that_selects(tmp_path, capsys):
    old = _summary(tmp_path, "old", 0.698, 0.785, [[0.70, 0.74, 0.72], [0.73, 0.71], [0.75]])
    new = _summary(tmp_path, "new", 0.712, 0.770, [[0.76, 0.75], [0.70, 0.74], [0.72, 0.77]])
    rc, out, err = run(capsys, old, new, "--json")
    assert rc == 0, err
    c = json.loads(out)
    assert c["lost"] == ["Panda valence sign accuracy ≥ 0.78"]
    assert c["gained"] == ["Soundtracks valence r (clip mean) ≥ 0.70"]
    # each seed's best epoch, not its last
    assert c["validation"]["old"]["runs"] == [0.74, 0.73, 0.75]
    assert c["validation"]["new"]["runs"] == [0.76, 0.74, 0.77]
    assert c["validation"]["new"]["mean"] == pytest.approx(0.7566667, abs=1e-6)
    assert c["validation"]["old"]["sd"] == pytest.approx(np.std([0.74, 0.73, 0.75]), abs=1e-9)  # as on the cards
    watch = {w["what"]: (w["old"], w["new"]) for w in c["watch"]}
    assert watch["left-out Panda valence r"] == (0.6, 0.6) and watch["EMOPIA quadrant accuracy"] == (None, None)
    text = run(capsys, old, new)[1]
    assert "| Panda valence sign accuracy ≥ 0.78 | 0.785 ± 0.020 | yes | 0.770 ± 0.020 | no |" in text
    assert "Goals lost: Panda valence sign accuracy ≥ 0.78" in text


def test_a_summary_whose_runs_are_gone_is_refused_with_where_to_keep_them(tmp_path, capsys):
    old = _summary(tmp_path, "old", 0.698, 0.785, [[0.7]])
    gone = json.loads((tmp_path / "old.json").read_text())
    gone["seed_runs"] = [str(tmp_path / "elsewhere" / "student-s0")]
    (tmp_path / "gone.json").write_text(json.dumps(gone))
    rc, _, err = run(capsys, old, str(tmp_path / "gone.json"))
    assert rc == 2 and err.startswith("compare_release: ")
    assert "elsewhere/student-s0/report.json not found" in err and "docs/model/experiments" in err


def test_a_file_that_is_not_a_summary_is_named(tmp_path, capsys):
    old = _summary(tmp_path, "old", 0.698, 0.785, [[0.7]])
    (tmp_path / "notes.md").write_text("# not JSON\n")
    (tmp_path / "list.json").write_text("[1, 2]\n")
    for bad, says in (("notes.md", "is not JSON"), ("list.json", 'has no "student" rows')):
        rc, _, err = run(capsys, old, str(tmp_path / bad))
        assert rc == 2 and f"{bad} {says}" in err and "emotrack evaluate --format json" in err, err
