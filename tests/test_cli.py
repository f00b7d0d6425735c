"""Command-line conventions: exit codes in --help, --version names the models, and every
torch command without the train extra gives one clean message with the install command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BLOCK = ("import sys\n"
         "for m in ('torch', 'onnx', 'onnxscript', 'sklearn', 'opensmile', 'openTSNE', 'matplotlib', 'librosa'):\n"
         "    sys.modules[m] = None  # as in an installation without the train extra\n"
         "from emotrack.realtime.cli import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def run(*args, block=True, env=None):
    cmd = [sys.executable, "-c", BLOCK, *args] if block else [sys.executable, "-m", "emotrack.realtime.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("command", [["train", "--out", "x"], ["teacher-pass"], ["export", "--run", "x"],
                                     ["static-benchmark"], ["train-song"], ["export-song", "--run", "x"]])
def test_torch_commands_without_the_train_extra(command):
    r = run(*command)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "pip install 'emotrack[train]'" in r.stderr
    h = run(command[0], "--help")  # the options are torch-free: help works
    assert h.returncode == 0 and "usage: emotrack" in h.stdout


def test_help_lists_exit_codes_and_version_names_the_models():
    h = run("--help", block=False)
    assert h.returncode == 0 and "exit codes:" in h.stdout and "interrupted" in h.stdout
    v = run("--version", block=False)
    assert v.returncode == 0 and v.stdout.startswith("emotrack ")
    assert "emotrack-vae-lstm" in v.stdout and "sha256" in v.stdout and "differs" not in v.stdout


def test_evaluate_refuses_a_run_without_its_report_before_any_work(tmp_path):
    done, unfinished = tmp_path / "done", tmp_path / "unfinished"
    done.mkdir()
    unfinished.mkdir()
    (done / "report.json").write_text("{}")
    r = run("evaluate", "--student-runs", str(done), "--lodo-runs", str(unfinished), block=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"{unfinished} has no report.json" in r.stderr and "emotrack train --teachers" in r.stderr


@pytest.mark.parametrize("command", [["teacher-pass"], ["train", "--teachers", "--quick"], ["train", "--quick"],
                                     ["train", "--accurate", "--quick"], ["static-benchmark"], ["train-song"]])
def test_training_commands_without_the_data_say_where_it_goes(tmp_path, command):
    """On a machine without ../shared/ (a user's clone), the training side says where the data
    goes and how to point at it, in one line, and leaves nothing behind."""
    pytest.importorskip("torch")
    missing = tmp_path / "no-data"
    env = {**os.environ, "EMOTRACK_DATA": str(missing), "EMOTRACK_CACHE": str(tmp_path / "cache")}
    out = ["--out", str(tmp_path / "out")] if command[0].startswith("train") else []
    r = run(*command, *out, block=False, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == (f"emotrack {command[0]}: data folder {missing} not found: the labelled sets sit in "
                                "../shared/data beside the checkout; pass --data DIR or set EMOTRACK_DATA"), r.stderr
    assert not (tmp_path / "out").exists() and not missing.exists()


def test_one_format_vocabulary():
    for cmd in (["analyze"], ["find"], ["devices"], ["bench"], ["evaluate"]):
        assert "--format" in run(*cmd, "--help", block=False).stdout, cmd


def test_a_point_with_negative_valence_is_a_value_not_an_option():
    """`find --point -0.5,0.3` (a sad, slightly energetic point) once failed in argparse with
    'expected one argument'; the library test met it on a real song with negative valence."""
    from emotrack.realtime.cli import _join_negative_values, parser

    argv = _join_negative_values(["find", "--point", "-0.5,-0.3", "-k", "3"])
    assert argv == ["find", "--point=-0.5,-0.3", "-k", "3"]
    assert parser("find").parse_args(argv).point == "-0.5,-0.3"
    assert _join_negative_values(["find", "--point", "0.5,0.3"]) == ["find", "--point", "0.5,0.3"]



def test_probe_mels_script_gives_every_module_the_probes_frame():
    """scripts/probe_mels.py replaces the feature contract before emotrack is imported, so the
    runtime's own check sees the probe's 32 bands and refuses the shipped 64-band model."""
    from .conftest import ROOT

    script = str(ROOT / "scripts" / "probe_mels.py")
    r = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "usage:" in r.stderr
    r = subprocess.run([sys.executable, script, "32", "analyze", str(ROOT / "assets" / "demo.opus")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "n_mels: runtime 32 vs model 64" in r.stderr
