"""`emotrack analyze` as a user runs it: formats, rates, several files, broken files."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from .conftest import DATA, DEMO_FRAMES, EMOTRACK, noise


def run(*args, check=True):
    r = subprocess.run(EMOTRACK + list(args), capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}: {r.stderr}")
    return r


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_demo_jsonl_contract(demo_path):
    recs = jsonl(run("analyze", str(demo_path)).stdout)
    assert len(recs) == DEMO_FRAMES  # one prediction per 0.5 s, t = end of frame
    assert [r["t"] for r in recs[:3]] == [0.5, 1.0, 1.5] and recs[-1]["t"] == DEMO_FRAMES * 0.5
    for r in recs:
        assert -1 <= r["valence"] <= 1 and -1 <= r["arousal"] <= 1
        assert r["valence_std"] > 0 and r["arousal_std"] > 0


def test_csv_and_out(tmp_path, demo_path):
    out = tmp_path / "demo.csv"
    r = run("analyze", str(demo_path), "--format", "csv", "--out", str(out))
    assert r.stdout == ""
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == DEMO_FRAMES and set(rows[0]) == {"file", "t", "valence", "arousal", "valence_std", "arousal_std"}
    js = jsonl(run("analyze", str(demo_path)).stdout)
    assert float(rows[10]["valence"]) == pytest.approx(js[10]["valence"])


@pytest.mark.parametrize("fmt,subtype,sr,ch", [
    ("WAV", "PCM_16", 44100, 2), ("FLAC", "PCM_16", 48000, 1), ("OGG", "VORBIS", 32000, 2),
    ("MP3", "MPEG_LAYER_III", 22050, 1), ("WAV", "FLOAT", 8000, 6),
])
def test_formats_rates_channels(tmp_path, fmt, subtype, sr, ch):
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(str(path), noise(3.2, sr, channels=ch), sr, format=fmt, subtype=subtype)
    recs = jsonl(run("analyze", str(path)).stdout)
    assert [r["t"] for r in recs] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def test_several_files_with_a_broken_one(tmp_path, demo_path):
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"\xff\xfb" + b"definitely not audio" * 50)
    missing = tmp_path / "missing.wav"
    short = tmp_path / "short.wav"
    sf.write(str(short), noise(1.2, 16000), 16000)
    r = run("analyze", str(demo_path), str(broken), str(missing), str(short), check=False)
    assert r.returncode == 3
    assert "broken.mp3: cannot decode" in r.stderr
    assert "missing.wav: no such file" in r.stderr
    assert "2 of 4 files could not be decoded" in r.stderr
    recs = jsonl(r.stdout)
    files = {Path(x["file"]).name for x in recs}
    assert files == {"demo.opus", "short.wav"}  # the others were still analysed
    assert sum(1 for x in recs if x["file"].endswith("short.wav")) == 2


def test_hop_option(demo_path):
    recs = jsonl(run("analyze", str(demo_path), "--hop", "0.1").stdout)
    assert len(recs) == 5 * DEMO_FRAMES - 4
    assert recs[0]["t"] == 0.5 and recs[1]["t"] == pytest.approx(0.6)
    bad = run("analyze", str(demo_path), "--hop", "0.3", check=False)
    assert bad.returncode == 2 and "must divide" in bad.stderr


def test_analyze_equals_library_stream(demo_path, model):
    from emotrack import stream_file

    cli = jsonl(run("analyze", str(demo_path)).stdout)
    lib = [p.to_dict() for p in stream_file(model, demo_path)]
    assert [c["t"] for c in cli] == [x["t"] for x in lib]  # frame ends: exact multiples of 0.5 s
    # both are rounded to 5 decimals; two processes may compute the model's float32 arithmetic
    # in other orders (thread counts, instruction paths), which differs around the 7th decimal
    # and can flip a rounding: one unit of the 5th decimal, plus margin
    for c, x in zip(cli, lib, strict=True):
        for k in ("valence", "arousal", "valence_std", "arousal_std"):
            assert abs(c[k] - x[k]) <= 2e-5, (c["t"], k, c[k], x[k])


def test_wrong_model_is_refused(tmp_path, demo_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"junk")
    r = run("analyze", str(demo_path), "--model", str(bad), check=False)
    assert r.returncode == 2 and "cannot load this model" in r.stderr and "emotrack export" in r.stderr


@pytest.mark.skipif(not DATA.exists(), reason="no shared data")
def test_runs_on_shared_data_files():
    files = [next((DATA / "panda4q" / "Q2").glob("*.opus")), DATA / "soundtracks" / "audio" / "001.opus"]
    recs = jsonl(run("analyze", *map(str, files)).stdout)
    assert {Path(r["file"]).name for r in recs} == {f.name for f in files}


def test_help_is_light():
    code = ("import sys; from emotrack.realtime import cli; "
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: cli.main(['--help'])\n"
            "    except SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'onnxruntime', 'numpy', 'soundfile') if m in sys.modules]\n"
            "print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_runtime_never_imports_torch(demo_path):
    code = ("import sys, emotrack; m = emotrack.load_model(); "
            f"list(emotrack.stream_file(m, {str(demo_path)!r})); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


def test_stdout_is_valid_jsonl_when_piped(demo_path):
    r = run("analyze", str(demo_path))
    for line in io.StringIO(r.stdout):
        json.loads(line)


def test_the_output_shape_is_the_same_for_one_file_or_many(demo_path, tmp_path):
    one = jsonl(run("analyze", str(demo_path)).stdout)
    two = jsonl(run("analyze", str(demo_path), str(demo_path)).stdout)
    assert set(one[0]) == set(two[0]) and one[0]["file"] == str(demo_path)
    arr = json.loads(run("analyze", str(demo_path), "--format", "json").stdout)
    assert [r["t"] for r in arr] == [r["t"] for r in one]


def test_dash_is_stdin_and_stdout(demo_path, tmp_path):
    r = subprocess.run(EMOTRACK + ["analyze", "-", "--out", "-"], input=demo_path.read_bytes(),
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert len(recs) == DEMO_FRAMES and recs[0]["file"] == "-"
    ref = jsonl(run("analyze", str(demo_path)).stdout)
    assert all(abs(a["valence"] - b["valence"]) <= 2e-5 for a, b in zip(recs, ref, strict=True))
    assert not (tmp_path / "-").exists()
    r = subprocess.run(EMOTRACK + ["analyze", "--song", "-"], input=demo_path.read_bytes(), capture_output=True,
                       timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["file"] == "-"
