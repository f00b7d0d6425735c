"""Training, export and evaluation end to end on a tiny subset (proves the code path;
the shipped model is trained by the documented command, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ..conftest import DATA, DEMO_FRAMES, EMOTRACK, ROOT, needs_data

pytestmark = needs_data()
def run(*args, env=None):
    r = subprocess.run(EMOTRACK + list(args), capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, f"{args[0]} exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    env = {**os.environ, "EMOTRACK_CACHE": str(tmp / "cache")}
    deam = tmp / "DEAM"
    (deam / "annotations").mkdir(parents=True)
    os.symlink(DATA / "deam" / "annotations" / "annotations averaged per song",
               deam / "annotations" / "annotations averaged per song")
    (deam / "MEMD_audio").mkdir()
    rng = np.random.default_rng(0)
    for sid in (2, 3, 4, 5, 7, 8):
        sf.write(str(deam / "MEMD_audio" / f"{sid}.mp3"),
                 (0.1 * rng.standard_normal(22050 * 18)).astype(np.float32), 22050, format="MP3")
    out = tmp / "run"
    train = run("train", "--quick", "--limit", "2", "--datasets", "soundtracks", "vgmidi", "panda4q",
                "--deam-root", str(deam), "--out", str(out), "--jobs", "1", env=env)
    exp = tmp / "export"
    run("export", "--run", str(out), "--out", str(exp), env=env)
    return {"tmp": tmp, "env": env, "run": out, "export": exp, "train_stdout": train.stdout, "deam": deam,
            "train_stderr": train.stderr}


def test_training_writes_checkpoint_and_report(tiny_run):
    rep = json.loads((tiny_run["run"] / "report.json").read_text())
    assert (tiny_run["run"] / "vae_lstm.pt").exists()
    assert set(rep["data"]) == {"soundtracks", "vgmidi", "panda4q", "deam"}
    assert set(rep["test"]) == {"VAE-LSTM", "AE-LSTM", "CNN-LSTM", "Ridge (mel stats)", "Constant"}
    for name, res in rep["test"].items():
        assert "soundtracks" in res and "valence" in res["soundtracks"], name
    assert rep["vae"]["test"]["mse"] > 0 and rep["vae"]["test"]["kl"] >= 0
    assert "**soundtracks**" in tiny_run["train_stdout"]  # the table is printed
    # stderr went to a pipe, as to a log file: progress in lines, not a terminal bar's carriage returns
    assert "\r" not in tiny_run["train_stderr"] and "features: " in tiny_run["train_stderr"]


def test_progress_off_a_terminal_is_lines(capsys, monkeypatch):
    from emotrack.models import cache

    bar = cache.progress_bar(5, "features")  # pytest's captured stderr is not a terminal
    assert isinstance(bar, cache.LogProgress)
    bar.every = 0.0
    for _ in range(5):
        bar.update()
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("features: 1/5 clips in ") and lines[-1].startswith("features: 5/5 clips in ")
    assert len(lines) == 5  # one a clip with every=0, the last once: not again at the end
    quiet = cache.progress_bar(5, "features", enabled=False)
    quiet.update()
    quiet.close()
    assert capsys.readouterr().err == ""


def test_export_writes_onnx_and_card(tiny_run):
    exp = tiny_run["export"]
    onnx_path = exp / "emotrack-vae-lstm.onnx"
    card = json.loads((exp / "emotrack-vae-lstm.card.json").read_text())
    md = (exp / "MODEL_CARD.md").read_text()
    assert card["features"]["sample_rate"] == 22050
    assert "VAE-LSTM (ONNX)" in card["test_results"]
    assert "| VAE-LSTM (ONNX) |" in md and "## Training data" in md and "## Reproduce" in md

    import onnx

    m = onnx.load(str(onnx_path))
    onnx.checker.check_model(m)
    assert [i.name for i in m.graph.input] == ["mel", "h", "c"]
    assert [o.name for o in m.graph.output] == ["valence", "arousal", "valence_std", "arousal_std", "h_out", "c_out"]
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "time", 64, 23]  # only batch and time are dynamic
    from emotrack.export.onnx_export import IR_VERSION

    assert m.ir_version == IR_VERSION


def test_evaluate_command(tiny_run):
    r = run("evaluate", "--model", str(tiny_run["export"] / "emotrack-vae-lstm.onnx"),
            "--run", str(tiny_run["run"]), "--datasets", "soundtracks", "vgmidi", "panda4q",
            "--deam-root", str(tiny_run["deam"]), "--json", env=tiny_run["env"])
    res = json.loads(r.stdout)
    assert set(res["this model"]) == {"soundtracks", "vgmidi", "panda4q", "deam"}
    assert "quadrant_accuracy" in res["this model"]["panda4q"]
    assert res["this model"]["vgmidi"]["kind"] == "dynamic"


def test_parity_gate_fails_a_wrong_graph(tiny_run):
    import torch
    from emotrack.export.onnx_export import ExportParityError, load_checkpoint, parity_check
    from emotrack.models.nets import ExportWrapper

    model, _ = load_checkpoint(tiny_run["run"] / "vae_lstm.pt")
    wrapper = ExportWrapper(model).eval()
    onnx_path = tiny_run["export"] / "emotrack-vae-lstm.onnx"
    diffs = parity_check(wrapper, onnx_path)
    assert diffs["torch_vs_onnx"] < 1e-4 and diffs["whole_vs_steps"] < 1e-4
    with torch.no_grad():
        model.head.lstm.weight_hh_l0.add_(0.05)  # the graph no longer matches these weights
    with pytest.raises(ExportParityError, match="parity failed"):
        parity_check(wrapper, onnx_path)


def test_export_without_run_says_what_to_do(tmp_path):
    r = subprocess.run(EMOTRACK + ["export", "--run", str(tmp_path / "none")], capture_output=True, text=True)
    assert r.returncode == 2 and "run `emotrack train" in r.stderr


def test_static_benchmark_runs_end_to_end(tiny_run):
    """`emotrack static-benchmark` on a tiny subset: both feature sets, all three methods,
    a table on stdout and the JSON with every metric."""
    out = tiny_run["tmp"] / "static.json"
    r = run("static-benchmark", "--datasets", "soundtracks", "panda4q", "--limit", "8", "--folds", "2",
            "--repeats", "1", "--epochs", "2", "--run", str(tiny_run["run"]), "--jobs", "2",
            "--out", str(out), "--tsne", str(tiny_run["tmp"] / "tsne"), env=tiny_run["env"])
    assert "| soundtracks | compare (6373 →" in r.stdout and "| panda4q | vae (160 →" in r.stdout
    assert "panda4q / compare: fold 2/2 done" in r.stderr  # progress through the long folds
    assert "| 2 × 1 | TNN-SVR |" in r.stdout  # folds × repeats beside each row
    res = json.loads(out.read_text())
    rows = {(x["dataset"], x["features"]): x for x in res["rows"]}
    assert "dim" not in res["tnn"] and res["tnn"]["epochs"] == 2  # the dimension is per row
    assert set(rows) == {(d, f) for d in ("soundtracks", "panda4q") for f in ("compare", "vae")}
    for row in rows.values():
        for m in ("SVR", "PCA-SVR", "TNN-SVR"):
            assert np.isfinite(row[m]["r2_valence"][0]) and np.isfinite(row[m]["r2_arousal"][0])
        assert row["dim"] <= row["songs"] // 2
    assert rows[("panda4q", "vae")]["quadrants"] and 0 <= rows[("panda4q", "vae")]["TNN-SVR"]["quadrant_accuracy"][0] <= 1
    assert not rows[("soundtracks", "compare")]["quadrants"]
    rep = run("static-benchmark", "--report", str(out), str(out))  # tables of earlier runs, joined
    assert rep.stdout.count("| panda4q | vae (160 →") == 6 and "Made by:\nemotrack static-benchmark" in rep.stdout
    from PIL import Image

    for d in ("soundtracks", "panda4q"):
        for f in ("compare", "vae"):
            img = Image.open(tiny_run["tmp"] / "tsne" / f"tsne-{d}-{f}.png")
            assert img.size[0] > 800 and len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 50  # four panels, not blank


def test_train_song_export_song_and_analyze_without_torch(tiny_run):
    """`emotrack train-song` then `export-song` on a tiny subset: the report has the held-out
    tables, the card and MODEL_CARD.md get their section (the VAE-LSTM's stays), and the
    exported graph drives `analyze --song` in a process that cannot import torch."""
    song_run, exp = tiny_run["tmp"] / "song", tiny_run["tmp"] / "song-export"
    exp.mkdir()
    for f in ("emotrack-vae-lstm.onnx", "emotrack-vae-lstm.card.json"):
        (exp / f).write_bytes((tiny_run["export"] / f).read_bytes())
    r = run("train-song", "--datasets", "soundtracks", "panda4q", "--limit", "8", "--epochs", "2", "--dim", "8",
            "--heads", "code", "--run", str(tiny_run["run"]), "--out", str(song_run), "--no-progress", env=tiny_run["env"])
    assert "| TNN-SVR |" in r.stdout and "| trajectory mean (VAE-LSTM) |" in r.stdout
    assert "| SVR (trajectory statistics) |" in r.stdout  # reported, though not allowed to answer
    rep = json.loads((song_run / "report.json").read_text())
    assert rep["heads"] == ["code"] and rep["method"] == rep["code_method"] in ("TNN-SVR", "SVR (raw code statistics)")
    assert set(rep["test"]) == {"soundtracks", "panda4q"} and rep["tnn"]["dim"] == 8
    assert "quadrant_accuracy" in rep["test"]["panda4q"]["TNN-SVR"]
    assert np.isfinite(rep["test"]["soundtracks"]["TNN-SVR"]["arousal"]["r2"])
    # how much of the trajectory mean to mix in is chosen on validation, for the dynamic model it ran
    from emotrack.models.song import BLEND_WEIGHTS, blend_name

    w = rep["trajectory_weight"]
    assert w in BLEND_WEIGHTS and len(rep["blend_val_score"]) == len(BLEND_WEIGHTS)
    assert rep["trajectory_model"].startswith("emotrack-vae-lstm ")
    assert (blend_name(rep["method"], w) in rep["test"]["soundtracks"]) == (w < 1)

    run("export-song", "--run", str(song_run), "--out", str(exp), env=tiny_run["env"])
    from emotrack.realtime.core.song import SongModel

    song = SongModel(exp / "emotrack-song.onnx")
    assert (song.trajectory_weight, song.trajectory_model) == (w, rep["trajectory_model"])
    assert song.trajectory_columns == 0  # no trajectory head: the graph takes the frames alone
    card = json.loads((exp / "emotrack-song.card.json").read_text())
    assert card["parity"]["torch_vs_onnx"] < 1e-4 and card["parity"]["stats_vs_numpy"] < 1e-4
    from emotrack.export.options import SONG_VERSION  # export-song's default version

    assert (card["name"], card["version"], card["kind"]) == ("emotrack-song", SONG_VERSION, "song")  # as the ONNX metadata
    assert set(card["onnx_test"]) == {"soundtracks", "panda4q"}
    md = (exp / "MODEL_CARD.md").read_text()
    assert md.index("# Model card: emotrack-vae-lstm") < md.index("# Whole-song model: emotrack-song")
    assert "| shipped (ONNX) |" in md

    code = ("import sys; sys.modules['torch'] = None; from emotrack.realtime.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "analyze", "--song", "--model", str(exp / "emotrack-vae-lstm.onnx"),
                        "--song-model", str(exp / "emotrack-song.onnx"), str(ROOT / "assets" / "demo.opus")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["song_model"] == f"emotrack-song {SONG_VERSION}" and rec["trajectory"]["frames"] == DEMO_FRAMES


def test_train_song_trajectory_head_answers_for_its_own_dynamic_model(tiny_run):
    """`train-song --heads trajectory`: the SVR on the statistics of the shipped dynamic model's
    outputs answers; the exported graph takes the trajectory too, passes its parity gate (which
    fails a changed head), and `analyze --song` uses that head with the dynamic model it was
    trained on and the code head with any other."""
    import torch
    from emotrack.export.onnx_export import ExportParityError
    from emotrack.export.song_export import parity_check
    from emotrack.models.cache import audio_frames, load_audio
    from emotrack.models.song import TRAJECTORY_METHOD, load_song_net
    from emotrack.realtime.core.model import load_model
    from emotrack.realtime.core.song import SongModel, analyze_song

    song_run, exp = tiny_run["tmp"] / "song-trajectory", tiny_run["tmp"] / "song-trajectory-export"
    r = run("train-song", "--datasets", "soundtracks", "panda4q", "--limit", "8", "--epochs", "2", "--dim", "8",
            "--heads", "trajectory", "--run", str(tiny_run["run"]), "--out", str(song_run), "--no-progress",
            env=tiny_run["env"])
    rep = json.loads((song_run / "report.json").read_text())
    shipped = load_model()
    assert rep["method"] == TRAJECTORY_METHOD and rep["trajectory_model"] == shipped.label
    assert rep["trajectory_model_sha256"] == shipped.sha256
    assert f"| {TRAJECTORY_METHOD} |" in r.stdout and rep["code_method"] in rep["selection_val_score"]
    # the card compares with the song model shipped now, run on the same test songs
    run("export-song", "--run", str(song_run), "--out", str(exp), "--previous", str(ROOT / "assets" / "emotrack-song.onnx"),
        env=tiny_run["env"])
    path = exp / "emotrack-song.onnx"
    card = json.loads((exp / "emotrack-song.card.json").read_text())
    assert card["parity"]["torch_vs_onnx"] < 1e-4 and card["parity"]["stats_vs_numpy"] < 1e-4
    before = f"{SongModel().label}, shipped before"
    assert card["previous_model"] == SongModel().label and set(card["previous_test"]) == set(card["onnx_test"])
    md = (exp / "MODEL_CARD.md").read_text()
    assert f"| {before} |" in md and f"--previous OLD.onnx   # OLD: {SongModel().label}" in md
    song = SongModel(path)
    assert song.trajectory_columns == 4 + len(shipped.descriptor_names)

    demo = ROOT / "assets" / "demo.opus"
    mels = audio_frames(load_audio(demo))
    res = analyze_song(shipped, demo, song)  # its own dynamic model: the trajectory head answers
    assert song.hears(np.zeros((3, song.trajectory_columns)), shipped)
    tiny = load_model(tiny_run["export"] / "emotrack-vae-lstm.onnx")
    assert tiny.label == shipped.label  # an own export keeps the default name and version: the sha256 tells them apart
    other = analyze_song(tiny, demo, song)  # another model: the code head, whatever the blend weight
    assert abs(other.valence - song.predict(mels)[0]) < 1e-5 and abs(other.arousal - song.predict(mels)[1]) < 1e-5
    assert max(abs(res.valence - other.valence), abs(res.arousal - other.arousal)) > 1e-6

    net, _ = load_song_net(song_run)
    assert parity_check(net, path)["torch_vs_onnx"] < 1e-4
    with torch.no_grad():
        net.trajectory_head.svr_v.coef.mul_(1.5)  # the graph no longer matches this head
    with pytest.raises(ExportParityError, match="parity failed"):
        parity_check(net, path)


def test_train_song_both_heads_answer_their_mean(tiny_run):
    """`train-song --heads both`: the answer is the mean of the code head and the trajectory
    head (then the trajectory-mean blend), in training, in the exported graph's metadata and
    at run time; with another dynamic model the code head answers alone."""
    from emotrack.models.song import BOTH_METHOD
    from emotrack.realtime.core.model import load_model
    from emotrack.realtime.core.song import SongModel, analyze_song

    song_run, exp = tiny_run["tmp"] / "song-both", tiny_run["tmp"] / "song-both-export"
    r = run("train-song", "--datasets", "soundtracks", "panda4q", "--limit", "8", "--epochs", "2", "--dim", "8",
            "--heads", "both", "--run", str(tiny_run["run"]), "--out", str(song_run), "--no-progress",
            env=tiny_run["env"])
    rep = json.loads((song_run / "report.json").read_text())
    assert rep["method"] == BOTH_METHOD and rep["trajectory_head_share"] == 0.5
    assert f"| {BOTH_METHOD} |" in r.stdout and BOTH_METHOD in rep["selection_val_score"]
    run("export-song", "--run", str(song_run), "--out", str(exp), env=tiny_run["env"])
    song = SongModel(exp / "emotrack-song.onnx")
    shipped = load_model()
    assert song.trajectory_head_share == 0.5 and song.trajectory_columns == 4 + len(shipped.descriptor_names)
    assert song.meta["method"].startswith("the mean of ")

    seen = {}
    run_graph = song._run

    def spy(mel, trajectory):  # what analyze_song hands the graph
        seen["mel"], seen["trajectory"] = mel, trajectory
        return run_graph(mel, trajectory)

    song._run = spy
    res = analyze_song(shipped, ROOT / "assets" / "demo.opus", song)
    song._run = run_graph
    mel, traj = np.asarray(seen["mel"], np.float32), np.asarray(seen["trajectory"], np.float32)
    code_v, code_a = song.predict(mel)  # the code head alone
    tv, ta = (float(x) for x in song.session.run(list(song.TRAJECTORY_OUTPUTS), {"mel": mel, "trajectory": traj}))
    assert max(abs(tv - code_v), abs(ta - code_a)) > 1e-6  # the two heads differ, or the check proves little
    want = song.blend((0.5 * tv + 0.5 * code_v, 0.5 * ta + 0.5 * code_a), traj, shipped)
    assert abs(res.valence - want[0]) < 1e-5 and abs(res.arousal - want[1]) < 1e-5  # float32 graph outputs
    other = analyze_song(load_model(tiny_run["export"] / "emotrack-vae-lstm.onnx"), ROOT / "assets" / "demo.opus", song)
    assert abs(other.valence - code_v) < 1e-5 and abs(other.arousal - code_a) < 1e-5  # another model: code head alone


def test_train_song_cv_scores_every_head_on_held_out_folds(tiny_run):
    """`train-song --cv K`: every head fit K times and scored on a fold of validation songs it
    did not see (with --cv-songs all, of training and validation songs); the test split is never
    read, no model is written, and the paired differences are those of the folds' scores."""
    out = tiny_run["tmp"] / "song-cv"
    args = ["--datasets", "soundtracks", "panda4q", "--limit", "8", "--epochs", "2", "--dim", "8",
            "--run", str(tiny_run["run"]), "--no-progress"]
    r = run("train-song", "--cv", "2", "--out", str(out), *args, env=tiny_run["env"])
    rep = json.loads((out / "cv.json").read_text())
    assert not (out / "song.pt").exists() and not (out / "report.json").exists()
    assert rep["folds"] == 2 and all(d["test"] == 0 for d in rep["data"].values())  # the test split unread
    assert rep["songs"] == "val" and sum(rep["fold_songs"]) == sum(d["val"] for d in rep["data"].values())
    assert min(rep["fold_songs"]) > 0 and "2 folds of the validation songs" in r.stdout
    run("train-song", "--cv", "2", "--cv-songs", "all", "--out", str(out / "all"), *args, env=tiny_run["env"])
    every = json.loads((out / "all" / "cv.json").read_text())
    assert every["songs"] == "all" and sum(every["fold_songs"]) == sum(d["train"] + d["val"] for d in every["data"].values())
    ra = run("train-song", "--cv", "2", "--cv-fit", "val", "--out", str(out / "fit-val"), *args, env=tiny_run["env"])
    alone = json.loads((out / "fit-val" / "cv.json").read_text())
    assert alone["fit"] == "val" and alone["fold_songs"] == rep["fold_songs"]  # the same folds, fit without the training songs
    fits = [int(line.split("fit on ")[1].split()[0]) for line in ra.stderr.splitlines() if "fit on " in line]
    assert fits == [sum(rep["fold_songs"]) - n for n in rep["fold_songs"]]  # the other fold alone
    assert alone["methods"] != rep["methods"]  # fit on other songs: other scores
    rt = run("train-song", "--cv", "2", "--cv-fit", "train", "--out", str(out / "fit-train"), *args, env=tiny_run["env"])
    fits = [int(line.split("fit on ")[1].split()[0]) for line in rt.stderr.splitlines() if "fit on " in line]
    assert fits == [sum(d["train"] for d in rep["data"].values())] * 2  # the training songs alone, every fold
    # the SVR-settings grid of the trajectory head on the same folds: its default setting is train-song --cv's head
    g = subprocess.run([sys.executable, str(ROOT / "scripts" / "song_svr_grid.py"), "--datasets", "soundtracks",
                        "panda4q", "--limit", "8", "--folds", "2", "--c", "1", "4", "--epsilon", "0.1", "--out",
                        str(out / "grid.json")], capture_output=True, text=True, env=tiny_run["env"], timeout=600)
    assert g.returncode == 0, g.stderr
    grid = json.loads((out / "grid.json").read_text())
    assert set(grid["grid"]) == {"C 1, epsilon 0.1", "C 4, epsilon 0.1"} and grid["fold_songs"] == rep["fold_songs"]
    assert np.allclose(grid["grid"]["C 1, epsilon 0.1"]["folds"], rep["heads"]["trajectory"]["folds"], atol=1e-9)
    assert grid["grid"]["C 4, epsilon 0.1"]["folds"] != grid["grid"]["C 1, epsilon 0.1"]["folds"]
    assert "best − C 1, epsilon 0.1" in g.stdout
    bad = subprocess.run(EMOTRACK + ["train-song", "--cv", "2", "--cv-fit", "train", "--cv-songs", "all", "--out",
                                     str(out / "bad"), *args], capture_output=True, text=True, env=tiny_run["env"])
    assert bad.returncode == 2 and "needs the validation songs in folds" in bad.stderr
    from emotrack.models.song import CODE_METHODS, TRAJECTORY_METHOD

    assert set(CODE_METHODS) | {TRAJECTORY_METHOD} <= set(rep["methods"])
    for m, v in rep["methods"].items():
        assert len(v["folds"]) == 2 and all(-1 <= f <= 1 for f in v["folds"]), m  # CCCs, accuracies: finite
    code = rep["code_method"]
    assert rep["methods"][code]["mean"] == max(rep["methods"][m]["mean"] for m in CODE_METHODS)
    assert rep["heads"]["code"] == rep["methods"][code] and rep["heads"]["trajectory"] == rep["methods"][TRAJECTORY_METHOD]
    assert rep["heads"]["both"] == rep["methods"][f"mean of the {code} and trajectory heads"]
    for h in ("code", "both"):  # a difference of two stored floats, recomputed: the same to rounding
        d = np.subtract(rep["heads"][h]["folds"], rep["heads"]["trajectory"]["folds"])
        assert np.allclose(rep["paired_vs_trajectory"][h]["folds"], d, atol=1e-12)
        assert abs(rep["paired_vs_trajectory"][h]["sd"] - np.std(d, ddof=1)) < 1e-12
    assert "| both − trajectory |" in r.stdout and f"code head: {code}" in r.stdout
    # more folds than a dataset has groups: a clear refusal, nothing written
    bad = subprocess.run(EMOTRACK + ["train-song", "--cv", "1000", "--datasets", "soundtracks", "--limit", "8",
                                     "--run", str(tiny_run["run"]), "--out", str(tiny_run["tmp"] / "cv-bad")],
                         capture_output=True, text=True, env=tiny_run["env"], timeout=600)
    assert bad.returncode == 2 and "--cv 1000 needs at least 1000" in bad.stderr
    assert not (tiny_run["tmp"] / "cv-bad").exists()


def test_export_song_cv_and_seed_runs_on_the_card(tiny_run):
    """`export-song --cv cv.json`: the card says whether validation's choice is more than the folds'
    noise; `--seed-runs RUN`: it gives the other seeds' held-out numbers and their mean ± sd. A
    cv.json of another dynamic model, a seed run on the same dynamic model, or files that are
    not what they should be, are refused before anything is written."""
    song_run, cv = tiny_run["tmp"] / "song-cv-card", tiny_run["tmp"] / "song-cv" / "cv.json"
    args = ["--datasets", "soundtracks", "panda4q", "--limit", "8", "--epochs", "2", "--dim", "8",
            "--run", str(tiny_run["run"]), "--no-progress"]
    run("train-song", "--heads", "trajectory", "--out", str(song_run), *args, env=tiny_run["env"])
    if not cv.exists():
        run("train-song", "--cv", "2", "--out", str(cv.parent), *args, env=tiny_run["env"])
    exp = tiny_run["tmp"] / "song-cv-export"
    exp.mkdir()
    run("export-song", "--run", str(song_run), "--out", str(exp), "--cv", str(cv), env=tiny_run["env"])
    card = json.loads((exp / "emotrack-song.card.json").read_text())
    assert card["cross_validation"] == [json.loads(cv.read_text())]
    md = (exp / "MODEL_CARD.md").read_text()
    assert "### Is validation's choice more than noise?" in md and "| 2 of the validation songs (" in md
    assert "the shipped head (the trajectory head) minus the code head" in md
    assert "emotrack train-song --cv 2" in md and "--cv CV1.json" in md  # Reproduce names the folds' command
    # another seed's run: the same songs, the heads on another dynamic model (the tiny run's own)
    seed_run = tiny_run["tmp"] / "song-other-seed"
    run("train-song", "--out", str(seed_run), *args,
        env={**tiny_run["env"], "EMOTRACK_MODEL": str(tiny_run["export"] / "emotrack-vae-lstm.onnx")})
    exp2 = tiny_run["tmp"] / "song-seeds-export"
    exp2.mkdir()
    run("export-song", "--run", str(song_run), "--out", str(exp2), "--seed-runs", str(seed_run), env=tiny_run["env"])
    card = json.loads((exp2 / "emotrack-song.card.json").read_text())
    from emotrack.export.card import seed_entry

    other_rep = json.loads((seed_run / "report.json").read_text())
    assert card["seed_runs"] == [seed_entry(other_rep, str(seed_run))]
    film = [e["test"]["soundtracks"]["valence"]["r"]["mean"] for e in [seed_entry(card["report"])] + card["seed_runs"]]
    md = (exp2 / "MODEL_CARD.md").read_text()
    assert "## 2 training seeds" in md and f"mean of 2 seeds {np.mean(film):.3f} ± {np.std(film):.3f}" in md
    assert f"--seed-runs {seed_run}" in md
    for bad_run, says in ((song_run, "reads the same dynamic model"), (cv, "is not the report of a `emotrack train-song` run")):
        out2 = tiny_run["tmp"] / f"export-seed-{bad_run.name}"
        r = subprocess.run(EMOTRACK + ["export-song", "--run", str(song_run), "--out", str(out2), "--seed-runs",
                                       str(bad_run)], capture_output=True, text=True, env=tiny_run["env"])
        assert r.returncode == 2 and says in r.stderr and not out2.exists(), r.stderr
    other = json.loads(cv.read_text())
    other["trajectory_model_sha256"] = "0" * 64
    (tiny_run["tmp"] / "other-cv.json").write_text(json.dumps(other))
    (tiny_run["tmp"] / "not-cv.json").write_text("{}")
    for bad, says in (("other-cv.json", "was measured with"), ("not-cv.json", "is not a `emotrack train-song --cv` report")):
        out = tiny_run["tmp"] / f"export-{bad}"
        r = subprocess.run(EMOTRACK + ["export-song", "--run", str(song_run), "--out", str(out), "--cv",
                                       str(tiny_run["tmp"] / bad)], capture_output=True, text=True, env=tiny_run["env"])
        assert r.returncode == 2 and says in r.stderr and not out.exists(), r.stderr


def test_song_parity_gate_fails_a_wrong_graph(tiny_run):
    import torch
    from emotrack.export.onnx_export import ExportParityError
    from emotrack.export.song_export import parity_check
    from emotrack.models.song import load_song_net

    song_run, onnx_path = tiny_run["tmp"] / "song", tiny_run["tmp"] / "song-export" / "emotrack-song.onnx"
    if not onnx_path.exists():
        pytest.skip("needs the export of test_train_song_export_song_and_analyze_without_torch")
    net, _ = load_song_net(song_run)
    assert parity_check(net, onnx_path)["torch_vs_onnx"] < 1e-4
    with torch.no_grad():
        net.svr_a.coef.mul_(1.5)  # the graph no longer matches these weights
    with pytest.raises(ExportParityError, match="parity failed"):
        parity_check(net, onnx_path)


def test_train_song_without_vae_run_says_what_to_do(tmp_path):
    r = subprocess.run(EMOTRACK + ["train-song", "--run", str(tmp_path / "none"), "--limit", "2", "--out",
                                   str(tmp_path / "s")], capture_output=True, text=True)
    assert r.returncode == 2 and "emotrack train --teachers --out" in r.stderr
    r = subprocess.run(EMOTRACK + ["export-song", "--run", str(tmp_path / "none")], capture_output=True, text=True)
    assert r.returncode == 2 and "run `emotrack train-song" in r.stderr
