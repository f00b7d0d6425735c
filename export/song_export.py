"""``emotrack export-song``: the whole-song model of a ``train-song`` run -> ONNX,
parity-gated, and its model card. Offline.

The default model is one graph, ``mel (T, n_mels, n_t) -> valence (), arousal (), embedding
(d,)``; with a trajectory head (``train-song`` chose it) also ``trajectory (T', 4 + D) ->
trajectory_valence (), trajectory_arousal ()``; only T and T' are dynamic. Its parity gate
compares torch and onnxruntime at several song lengths (one frame included), and the in-graph
statistics with ``static.code_statistics`` and ``song.trajectory_statistics``. The accurate model (a ``--teacher-features`` run) is the head
``features (N, 500) -> valence (), arousal ()`` and, beside it, the musicnn teachers' graph
(:mod:`emotrack.export.teacher_export`), both parity-gated; the runtime's whole path from
audio files is then checked against the training features.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from emotrack.export.card import SHIPPED_SONG, SONG_PARITY_LENGTHS, seed_entry, write_markdown
from emotrack.export.cli import open_run, out_dir, run_clips
from emotrack.models.cache import load_features
from emotrack.models.song import (
    TRAJECTORY_METHOD,
    evaluate_split,
    load_song_net,
    trajectories,
    trajectory_statistics,
)
from emotrack.models.song_accurate import accurate_head, window_features
from emotrack.models.static import code_statistics, static_labels
from emotrack.realtime.assets import TEACHERS_MODEL
from emotrack.realtime.core.config import FEATURES
from emotrack.realtime.core.model import ModelError, load_model
from emotrack.realtime.core.song import AccurateSongModel, SongModel, analyze_song
from emotrack.realtime.core.teacher import TeacherModel

from .onnx_export import OPSET, PARITY_TOL, ExportParityError, finish_onnx
from .options import SONG_VERSION
from .teacher_export import export_teachers

PARITY_LENGTHS = SONG_PARITY_LENGTHS


def export_song_onnx(run: Path, out: Path, name: str = "emotrack-song", version: str = SONG_VERSION,
                     extra_meta: dict | None = None) -> tuple[Path, dict]:
    """Write ``out`` and check parity; raise ExportParityError on a mismatch."""

    net, cfg = load_song_net(Path(run))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ck = torch.load(Path(run) / "song.pt", map_location="cpu", weights_only=False)
    code_method = ck.get("code_method", ck.get("method", "TNN-SVR"))
    args, names_in, names_out = (torch.randn(7, *FEATURES.frame_shape),), ["mel"], ["valence", "arousal", "embedding"]
    dynamic = {"mel": {0: "time"}}
    method = f"{code_method} on VAE-code statistics (mean, std, p10, p50, p90)"
    if net.trajectory_head is not None:
        args += (random_trajectory(9, ck["trajectory_head"]["columns"], torch.Generator().manual_seed(1)),)
        names_in, names_out = names_in + ["trajectory"], names_out + ["trajectory_valence", "trajectory_arousal"]
        dynamic["trajectory"] = {0: "frames"}
        share = float(ck.get("trajectory_head_share", 1.0))
        head = (f"{TRAJECTORY_METHOD} of {ck['trajectory_model']} (its outputs, descriptors as logits: mean, std, "
                f"p10, p50, p90)")
        method = (f"{head}; with another dynamic model, {method}" if share >= 1.0 else
                  f"the mean of {head} and {method}; with another dynamic model, the latter alone")
    torch.onnx.export(net, args, str(out), input_names=names_in, output_names=names_out,
                      dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    meta = {"name": name, "version": version, "kind": "song", "features": FEATURES.to_dict(),
            "outputs": names_out, "scale": "DEAM [-1, 1]", "embedding_dim": cfg.dim, "method": method,
            "trajectory_weight": float(ck.get("trajectory_weight", 1.0)), "trajectory_model": ck.get("trajectory_model"),
            "trajectory_head_share": float(ck.get("trajectory_head_share", 1.0)) if net.trajectory_head is not None else 0.0,
            "trajectory_model_sha256": ck.get("trajectory_model_sha256")}
    finish_onnx(out, {**meta, **(extra_meta or {})})
    return out, parity_check(net, out)


def random_trajectory(frames: int, columns: int, g: torch.Generator) -> torch.Tensor:
    """A made-up dynamic trajectory (frames, columns): valence and arousal in [-1, 1], stds in
    (0, 0.5), descriptors in (0, 1), as the dynamic model's outputs are."""
    u = torch.rand(frames, columns, generator=g)
    return torch.cat([2 * u[:, :2] - 1, 0.5 * u[:, 2:4], u[:, 4:]], 1)


def plausible_trajectory(head, frames: int, g: torch.Generator) -> torch.Tensor:
    """Frames around the training songs' outputs, so that the head's RBF kernels see them
    (made-up ones far away all give its intercept): each column at a song level drawn from the
    training songs' spread of that column's mean, moving by its typical within-song std;
    descriptor columns back through the sigmoid."""
    mean, scale = head.standardise.mean, head.standardise.scale
    k = mean.numel() // 5  # the statistics are mean, std, p10, p50, p90 of each column
    x = mean[:k] + scale[:k] * torch.randn(k, generator=g) + mean[k:2 * k] * torch.randn(frames, k, generator=g)
    return torch.cat([x[:, :4], torch.sigmoid(x[:, 4:])], 1)


@torch.no_grad()
def parity_check(net, path: Path, seed: int = 0) -> dict:

    g = torch.Generator().manual_seed(seed)
    sm = SongModel(path)
    head = net.trajectory_head
    worst = {"torch_vs_onnx": 0.0, "embedding": 0.0, "stats_vs_numpy": 0.0}
    outs, t_outs = [], []
    for T in PARITY_LENGTHS:
        mel = torch.randn(T, *FEATURES.frame_shape, generator=g) * 0.7
        feed, names = {"mel": mel.numpy()}, list(sm.OUTPUTS)
        traj = None
        if head is not None:
            traj = plausible_trajectory(head, T, g)
            feed["trajectory"], names = traj.numpy(), names + list(sm.TRAJECTORY_OUTPUTS)
        got = sm.session.run(names, feed)
        want = [o.numpy() for o in net(mel, traj)]
        worst["torch_vs_onnx"] = max(worst["torch_vs_onnx"], *(float(np.abs(w - o).max())
                                                               for i, (w, o) in enumerate(zip(want, got, strict=True)) if i != 2))
        worst["embedding"] = max(worst["embedding"], float(np.abs(want[2] - got[2]).max()))
        codes = net.codes(mel)
        ref = code_statistics(codes.numpy())
        worst["stats_vs_numpy"] = max(worst["stats_vs_numpy"], float(np.abs(net.stats(codes).numpy() - ref).max()))
        if head is not None:
            ref = trajectory_statistics(traj.numpy())
            worst["stats_vs_numpy"] = max(worst["stats_vs_numpy"],
                                          float(np.abs(head.statistics(traj).numpy() - ref).max()))
            t_outs.append((float(got[3]), float(got[4])))
        outs.append((float(got[0]), float(got[1])))
    # different songs must give different answers, or the comparison above proves little
    worst["spread"] = min(float(np.ptp(np.array(o), axis=0).max()) for o in (outs, t_outs) if o)
    bad = {k: v for k, v in worst.items() if k != "spread" and not v <= PARITY_TOL}
    if bad or worst["spread"] < 1e-4:
        raise ExportParityError(f"{path}: parity failed {worst} (tolerance {PARITY_TOL})")
    return worst


def evaluate_song_onnx(models: dict[str, SongModel], clips, split: str = "test") -> dict:
    """Song graphs ({row name: SongModel}: the export, an earlier one), through the runtime, on
    the cached frames of ``split``, each reading the same trajectories of the dynamic model
    shipped beside them (computed once)."""

    clips = [c for c in clips if c.split == split and static_labels(c) is not None]
    model = load_model()
    runs = trajectories(clips, model)
    preds = {row: np.array([sm.whole(load_features(c), traj, model) for c, traj in zip(clips, runs, strict=True)])
             for row, sm in models.items()}
    return evaluate_split(clips, preds)


def export_accurate_song(run: Path, out: Path, name: str, version: str, extra_meta: dict | None = None):
    """The head of a ``train-song --teacher-features`` run -> ``out`` (features (N, 500) ->
    valence, arousal), with the teachers' graph beside it; both parity-gated."""

    out = Path(out)
    teachers_path, teacher_parity = export_teachers(out.parent / TEACHERS_MODEL)
    head, stride = accurate_head(run)
    with torch.no_grad():
        torch.onnx.export(head, (torch.randn(5, 500),), str(out), input_names=["features"],
                          output_names=["valence", "arousal"], dynamic_axes={"features": {0: "windows"}},
                          opset_version=OPSET, dynamo=False)
    meta = {"name": name, "version": version, "kind": "song-accurate", "features": FEATURES.to_dict(),
            "outputs": ["valence", "arousal"], "scale": "DEAM [-1, 1]", "stride_seconds": 0.5 * stride,
            "teachers": TeacherModel(teachers_path).label,
            "method": "RBF SVR on the mean and std of the musicnn teachers' outputs over the song's 3 s windows",
            **(extra_meta or {})}
    finish_onnx(out, meta)
    g = torch.Generator().manual_seed(0)
    sm, worst, outs = AccurateSongModel(out, teachers_path), 0.0, []
    with torch.no_grad():
        for n in PARITY_LENGTHS:
            # windows around the training songs' mean outputs, spread by their typical within-song std
            st = head.standardise.mean
            f = st[:500] + st[500:] * torch.randn(n, 500, generator=g)
            v, a = head(f)
            ov, oa = sm.predict_features(f.numpy())
            worst = max(worst, abs(float(v) - ov), abs(float(a) - oa))
            outs.append((ov, oa))
    spread = float(np.ptp(np.array(outs), axis=0).max())
    if not worst <= PARITY_TOL or spread < 1e-4:
        raise ExportParityError(f"{out}: parity failed (max |torch - onnx| {worst}, spread {spread}; "
                                f"tolerance {PARITY_TOL})")
    return out, {"torch_vs_onnx": worst, "spread": spread, "lengths": list(PARITY_LENGTHS),
                 "teachers": teacher_parity}


def evaluate_accurate_onnx(path: Path, clips, split: str = "test", end_to_end: int = 6) -> tuple[dict, dict]:
    """The exported head through the runtime on the cached teacher outputs of ``split``; and,
    for ``end_to_end`` of its clips with audio files, the whole runtime path from the file
    (decoding, resampling, the numpy front end, the teachers' graph) against the cached
    features the head was trained on."""

    sm = AccurateSongModel(path)  # with the teachers' graph exported beside it
    stride = round(sm.stride / FEATURES.frame_seconds)
    clips = [c for c in clips if c.split == split and static_labels(c) is not None]
    p = np.array([sm.predict_features(window_features(c, stride)) for c in clips])
    worst, checked, model = 0.0, [], load_model()
    by_set: dict[str, list] = {}
    for c in clips:
        if c.audio is not None:
            by_set.setdefault(c.dataset, []).append(c)
    per_set = max(1, end_to_end // max(1, len(by_set)))
    for c in [c for ds in sorted(by_set) for c in by_set[ds][:per_set]]:
        res = analyze_song(model, c.audio, sm)
        ref = p[clips.index(c)]
        worst = max(worst, abs(res.valence - ref[0]), abs(res.arousal - ref[1]))
        checked.append(c.key)
    return evaluate_split(clips, {SHIPPED_SONG: p}), {"clips": checked, "max_abs_difference": worst}


def read_report(path: Path, keys: tuple[str, ...], what: str) -> dict:
    """A JSON report that must hold ``keys``; a ValueError that says which file is not ``what``."""
    try:
        rep = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e}); give {what}") from None
    if not isinstance(rep, dict) or not all(k in rep for k in keys):
        raise ValueError(f"{path} is not {what} (no {' / '.join(keys)})")
    return rep


def read_cv_reports(paths: list, report: dict) -> list[dict]:
    """The ``train-song --cv`` reports in ``paths``, each checked to be of the dynamic model the
    run's trajectory head reads (its sha256), so the card does not put another model's folds
    beside this one."""
    out = []
    for p in paths:
        cv = read_report(Path(p), ("heads", "paired_vs_trajectory"), "a `emotrack train-song --cv` report")
        if cv.get("trajectory_model_sha256") != report.get("trajectory_model_sha256"):
            raise ValueError(f"{p} was measured with {cv.get('trajectory_model')} (sha256 "
                             f"{str(cv.get('trajectory_model_sha256'))[:12]}…), not the dynamic model this run's heads "
                             f"read ({report.get('trajectory_model')}, {str(report.get('trajectory_model_sha256'))[:12]}…)")
        out.append(cv)
    return out


def read_seed_runs(runs: list, report: dict) -> list[dict]:
    """The other seeds' ``train-song`` runs (a folder with report.json, or the file), each checked
    to be of the same songs (the same sets and splits) as the exported run."""
    out = []
    for run in runs:
        path = Path(run) / "report.json" if Path(run).is_dir() else Path(run)
        other = read_report(path, ("method", "test"), "the report of a `emotrack train-song` run")
        if other.get("data") != report.get("data"):
            raise ValueError(f"{path} was trained and tested on other songs ({other.get('data')}) than the exported "
                             f"run ({report.get('data')}): its numbers would not be comparable")
        if other.get("trajectory_model_sha256") == report.get("trajectory_model_sha256"):
            raise ValueError(f"{path} reads the same dynamic model as the exported run: give the runs on the other "
                             "seeds' dynamic models")
        out.append(seed_entry(other, str(run)))
    return out


def cmd_export_song(args) -> int:

    run = Path(args.run)
    if (run / "song_accurate.pt").exists():
        return export_accurate_run(args, run)
    report = open_run(run, "song.pt", "export-song", "train-song")
    if report is None:
        return 2
    try:
        cv = read_cv_reports(args.cv or [], report)
    except (OSError, ValueError) as e:
        print(f"emotrack export-song: --cv: {e}", file=sys.stderr)
        return 2
    try:
        seeds = read_seed_runs(args.seed_runs or [], report)
    except (OSError, ValueError) as e:
        print(f"emotrack export-song: --seed-runs: {e}", file=sys.stderr)
        return 2
    out = out_dir(args)
    path = out / f"{args.name}.onnx"
    rows, label = {}, None
    if args.previous:  # opened (into memory) first: it may be the file this export replaces
        try:
            before = SongModel(args.previous)
        except ModelError as e:
            print(f"emotrack export-song: --previous: {e}", file=sys.stderr)
            return 2
        label = before.label
        rows[f"{label}, shipped before"] = before
    try:
        path, parity = export_song_onnx(run, path, args.name, args.model_version,
                                        {"trained_on": sorted(report["data"])})
    except ExportParityError as e:
        print(f"emotrack export-song: {e}", file=sys.stderr)
        return 1
    test = evaluate_song_onnx({SHIPPED_SONG: SongModel(path), **rows}, run_clips(report))
    onnx_test = {ds: {SHIPPED_SONG: m.pop(SHIPPED_SONG)} for ds, m in test.items()}  # what stays: the earlier model
    card = {"name": args.name, "version": args.model_version, "kind": "song", "onnx": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "run": str(run), "parity": parity, "report": report, "onnx_test": onnx_test,
            "previous_model": label, "previous_test": test if rows else {}}
    if cv:
        card["cross_validation"] = cv
    if seeds:
        card["seed_runs"] = seeds
    (out / f"{args.name}.card.json").write_text(json.dumps(card, indent=1) + "\n")
    write_markdown(out)
    print(f"wrote {path} and {out}/{args.name}.card.json / MODEL_CARD.md")
    return 0


def export_accurate_run(args, run: Path) -> int:
    report = json.loads((run / "report.json").read_text())
    out = out_dir(args)
    name = args.name if args.name != "emotrack-song" else "emotrack-song-accurate"
    version = args.model_version if args.name != "emotrack-song" else "1"  # the default song model's numbering is its own
    path = out / f"{name}.onnx"
    try:
        path, parity = export_accurate_song(run, path, name, version, {"trained_on": sorted(report["data"])})
    except ExportParityError as e:
        print(f"emotrack export-song: {e}", file=sys.stderr)
        return 1
    onnx_test, end_to_end = evaluate_accurate_onnx(path, run_clips(report))
    if not end_to_end["max_abs_difference"] <= 1e-3:
        print(f"emotrack export-song: the runtime's own front end does not reproduce the training features "
              f"({end_to_end})", file=sys.stderr)
        return 1
    teachers = out / TEACHERS_MODEL
    card = {"name": name, "version": version, "kind": "song-accurate", "onnx": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "teachers_onnx": teachers.name, "teachers_sha256": hashlib.sha256(teachers.read_bytes()).hexdigest(),
            "run": str(run), "parity": parity, "report": report, "onnx_test": onnx_test, "end_to_end": end_to_end}
    (out / f"{name}.card.json").write_text(json.dumps(card, indent=1) + "\n")
    write_markdown(out)
    print(f"wrote {path}, {teachers} and {out}/{name}.card.json / MODEL_CARD.md")
    return 0
