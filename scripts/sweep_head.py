"""Compare stage-2 settings of the student on the validation split, from a finished run's
stage-1 encoder (``RUN/frames.pt``), without retraining stage 1.

    python scripts/sweep_head.py --run runs/student-s0 --seed 0 --out sweep-s0.jsonl \
        '{}' '{"head_ema": 0.99}' '{"lambda_pseudo": 2.0}'
    python scripts/sweep_head.py --run runs/lodo-soundtracks --leave-out soundtracks --out lodo.jsonl \
        '{"pseudo_source": "ridge"}'

Each argument is a JSON object of ``StudentConfig`` fields that differ from the defaults
(``head_sets`` refits the ridge teacher head on those sets, ``head_rff`` with random features; ``pseudo_source`` "ridge" takes
its smoothed answers as pseudo-labels, "accurate" trains the accurate head in the sweep and
takes its; ``joint_epochs`` adds stage 3; ``"tonal": true`` feeds the head each frame's
pitch-class profile beside its code, from the chroma cache, computed first where missing,
``"tonal_avg": 10`` their causal 10 s average too, ``"head_tonal": true`` refits the
pseudo-labels' teachers with the tonal numbers; stage 1 is the run's either way). One line per setting goes to ``--out`` (appended;
a setting already there is skipped, so a stopped sweep resumes): the validation metrics the
choice is made on, the test metrics for the record, and how far the test predictions move
when the audio is 6 dB quieter or louder (``level_shift``). The codes of every clip are
cached next to the run (``RUN/codes.npz``, ``distill.cached_codes``, which ``emotrack train``
reads too); each setting's head is saved beside ``--out``.

``--merge`` scores instead the heads already saved for the settings given (same ``--out``,
``--run`` and ``--finetune``), merged into one (``distill.merge_heads``: the mean of their
outputs before the non-linearities, as ``head_ensemble`` does in training), for example
three stage-2 seeds of one encoder:

    python scripts/sweep_head.py --run runs/student-s0 --out sweep-s0.jsonl '{}' '{"seed": 100}' '{"seed": 200}'
    python scripts/sweep_head.py --run runs/student-s0 --out sweep-s0.jsonl --merge '{}' '{"seed": 100}' '{"seed": 200}'

A member may also be the JSON string ``"student.pt"``: the run's own head (``RUN/student.pt``,
whose encoder must be ``frames.pt``'s), so that a finished run's head and two more draws merge
(tonal heads too: the merged head reads the same profiles):

    python scripts/sweep_head.py --run runs/student-s0 --out sweep-s0.jsonl --merge '"student.pt"' \
        '{"tonal": true, "tonal_avg": 10, "head_tonal": true, "seed": 100}' '{"tonal": true, "tonal_avg": 10, "head_tonal": true, "seed": 200}'

With ``--write-run DIR`` the merged head becomes a run folder of its own, which ``emotrack
export --run DIR`` and ``emotrack evaluate --student-runs DIR`` take like any run's:
``DIR/student.pt`` (the run's, with the merged head) and ``DIR/report.json`` (the run's, its
student rows, the test metrics, levels, calibration, descriptor agreement and head, those of
the merged head; the teacher heads' rows the run's own; ``merged_from`` names the members,
their validation scores, and ``train_seconds`` adds the extra draws' time).

With ``--export OUT.onnx`` the run's student (``RUN/student.pt``, whose encoder made the
cached codes) with the merged head in place of its own is written as the runtime's graph
(``OUT.pt`` beside it, exported through the same parity gate as ``emotrack export``), so
that ``emotrack bench --model OUT.onnx`` times it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from emotrack.models import distill, student
from emotrack.models.cli import add_script_arguments, script_clips
from emotrack.models.evaluate import evaluate_predictions
from emotrack.models.nets import NetConfig
from emotrack.models.seqs import GAINS_DB, build_seqs, log
from emotrack.models.train import json_default
from emotrack.models.train_cli import with_settings

OWN = "student.pt"  # a --merge member: the run's own head


def summary(res: dict) -> dict:
    out = {}
    for ds, m in res.items():
        if "quadrant_accuracy" in m:
            out[ds] = {"quadrant": m["quadrant_accuracy"], "v_sign": m["valence"]["sign_accuracy"],
                       "v_r": m["valence"]["r"]["mean"], "a_r": m["arousal"]["r"]["mean"]}
        else:
            out[ds] = {"v_r": m["valence"]["r"]["mean"], "a_r": m["arousal"]["r"]["mean"]}
    return out


def level_shift(head, seqs) -> dict:
    """How far the test predictions move when the audio is 6 dB quieter or louder: the mean
    over clips of the mean change (from 3 s on) of valence and arousal, against 0 dB."""
    base = distill.predict_head(head, seqs)
    t0 = int(distill.MIN_T / 0.5)  # the first frame whose window is all music
    out = {}
    for g in (-6.0, 6.0):
        p = distill.predict_head(head, seqs, gain_db=g)
        out[f"{g:+g} dB"] = {d: float(np.mean([np.mean(p[k][t0:, i] - base[k][t0:, i]) for k in base if len(base[k]) > t0]))
                             for i, d in ((0, "valence"), (1, "arousal"))}
    return out


def head_tag(setting: dict) -> str:
    """The saved head's file-name part for a setting."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", "_".join(f"{k}={v}" for k, v in sorted(setting.items()))) or "defaults"


def net_fields(frames: dict) -> dict:
    """The encoder's and the LSTM's shape the run was trained with (from its stage-1 checkpoint's
    key), so that ``frames.pt`` loads and the heads are as wide as the run's."""
    made = json.loads(frames["key"])[0]
    out = {k: tuple(made[k]) if isinstance(made[k], list) else made[k]
           for k in ("front", "channels", "enc_hidden", "lstm_hidden") if k in made}
    return {"front": None, **out}  # keys from before the musicnn front: the conv encoder


def config_of(base: distill.StudentConfig, setting: dict) -> distill.StudentConfig:
    """``base`` with a setting's fields, checked as ``emotrack train --set`` checks them."""
    return with_settings(base, [f"{k}={json.dumps(v)}" for k, v in setting.items()])


def scores(head, split: dict) -> dict:
    """The validation and test summaries of a row, and ``level_shift`` where the test clips
    have codes at every gain."""
    row = {"val": summary(evaluate_predictions(split["val"], distill.predict_head(head, split["val"]))),
           "test": summary(evaluate_predictions(split["test"], distill.predict_head(head, split["test"])))}
    if all(len(s.codes["student"]) == len(GAINS_DB) for s in split["test"]):
        row["level_shift"] = level_shift(head, split["test"])
    return row


def merge_saved(args, frames: dict, settings: list, base: distill.StudentConfig, datasets: list[str],
                seqs: list, split: dict, done: set, ft: dict) -> int:
    """``--merge``: one row for the saved heads of ``settings`` merged."""
    scored = json.dumps({"merged": settings}, sort_keys=True) in done
    if scored and not (args.export or args.write_run):
        log(f"merged {settings}: done")
        return 0
    files = [args.run / OWN if st == OWN else args.out.with_name(f"{args.out.stem}.{head_tag(st)}.pt")
             for st in settings]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        print(f"sweep_head: no saved head {', '.join(missing)}: run those settings first (without --merge) "
              "with the same --out", file=sys.stderr)
        return 2
    heads = []
    for st, f in zip(settings, files, strict=True):
        if st == OWN:
            try:
                heads.append(own_head(args.run, frames["model"], datasets))
            except ValueError as e:
                print(f"sweep_head: {e}", file=sys.stderr)
                return 2
            continue
        h = distill.StudentHead(distill.student_net(config_of(base, st)), datasets)
        h.load_state_dict(torch.load(f, map_location="cpu"))
        heads.append(h.eval())
    try:
        head = distill.merge_heads(heads)
    except ValueError as e:
        print(f"sweep_head: {e} (give settings of the run's own shape)", file=sys.stderr)
        return 2
    # the merged std calibrated again on the validation clips, as a trained head is (the members' differ)
    head.std_scale.fill_(1.0)
    calibration = distill.calibrate(head, split["val"])
    if args.export:
        try:
            export_merged(args.run, frames["model"], head, datasets, args.export)
        except ValueError as e:
            print(f"sweep_head: {e}", file=sys.stderr)
            return 2
    val_r = distill._val_score(head, split["val"], base.select_sets)
    if args.write_run:
        try:
            write_run(args, frames["model"], head, settings, datasets, seqs, split, base, calibration, val_r, ft)
        except ValueError as e:
            print(f"sweep_head: {e}", file=sys.stderr)
            return 2
    if scored:
        return 0
    row = {"setting": {"merged": settings}, "finetune": ft, "seed": args.seed, "best_val_mean_r": val_r,
           **scores(head, split), "calibration": calibration}
    with args.out.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    log(f"merged {settings}: val mean r {val_r:.4f}")
    return 0


def write_run(args, frames_model: dict, head, settings: list, datasets: list[str], seqs, split: dict,
              base: distill.StudentConfig, calibration: dict, val_r: float, ft: dict) -> None:
    """``--write-run DIR``: the merged head as a run folder (student.pt, report.json) that the
    export and ``emotrack evaluate`` take; the student's rows of the run's report replaced."""
    from emotrack.models.student import descriptor_agreement
    from emotrack.models.student_eval import levels

    out = args.write_run
    if out.resolve() == args.run.resolve():
        raise ValueError(f"--write-run {out}: give a new folder, not the run's own")
    ck = own_checkpoint(args.run, frames_model, datasets)
    rep = json.loads((args.run / "report.json").read_text())
    rows = {json.dumps(r["setting"], sort_keys=True): r for r in (json.loads(line) for line in
            args.out.read_text().splitlines()) if r.get("finetune", {}) == ft} if args.out.exists() else {}
    members = []
    for st in settings:
        if st == OWN:
            members.append({"setting": OWN, "best_val_mean_r": rep["head"]["best_val_mean_r"], "seconds": 0})
            continue
        row = rows.get(json.dumps(st, sort_keys=True))
        if row is None:
            raise ValueError(f"--write-run: no row for {st} in {args.out} (its time and validation score go "
                             "into the report): train it with the same --out")
        members.append({"setting": st, "best_val_mean_r": row["best_val_mean_r"], "seconds": row["seconds"]})
    preds = distill.predict_head(head, split["test"])
    scaler = distill.TeacherScaler(split["train"])
    _, targets = distill.head_and_targets(seqs, split, base.head_sets, scaler)  # the teachers' tags
    rep["net_config"] = head.cfg.to_dict()
    rep["head"] = {"best_val_mean_r": val_r, "offsets": {d: head.offsets[i].tolist()
                                                          for i, d in enumerate(head.offset_sets)}}
    rep["calibration"] = calibration
    rep["test"]["student"] = evaluate_predictions(split["test"], preds)
    rep["levels"]["student"] = levels(split["test"], preds)
    rep["descriptor_agreement"] = descriptor_agreement(head, split["test"], targets, scaler)
    rep["merged_from"] = {"run": str(args.run), "members": members, "lstm_hidden": head.cfg.lstm_hidden}
    rep["train_seconds"] = rep.get("train_seconds", 0.0) + sum(m["seconds"] for m in members)
    ck["head"], ck["net_config"] = head.state_dict(), head.cfg.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(ck, out / "student.pt")
    (out / "report.json").write_text(json.dumps(rep, indent=1, default=json_default))
    log(f"merged head as a run -> {out} (val mean r {val_r:.4f})")


def own_checkpoint(run: Path, frames: dict, datasets: list[str]) -> dict:
    """RUN/student.pt, checked to go with the codes of ``frames.pt``'s encoder and these clips."""
    ck = torch.load(run / OWN, map_location="cpu", weights_only=False)
    if ck["datasets"] != datasets:
        raise ValueError(f"{run / OWN} was trained on {ck['datasets']}, the heads on "
                         f"{datasets}: give the run's own clip options")
    if not all(torch.equal(frames[f"vae.{k}"], v) for k, v in ck["vae"].items()):
        raise ValueError(f"the encoder in {run / OWN} is not {run / 'frames.pt'}'s (stage 1b "
                         "or 3 ran after it), so the heads, trained on frames.pt's codes, cannot go with it")
    return ck


def own_head(run: Path, frames: dict, datasets: list[str]):
    """The run's own stage-2 head, as ``merge_heads`` takes it."""
    ck = own_checkpoint(run, frames, datasets)
    h = distill.StudentHead(NetConfig.from_dict(ck["net_config"]), ck["datasets"])
    h.load_state_dict(ck["head"])
    return h.eval()


def export_merged(run: Path, frames: dict, head, datasets: list[str], out: Path) -> None:
    """``--export``: RUN/student.pt with ``head`` in place of its own -> OUT.pt and OUT (ONNX)."""
    from emotrack.export.student_export import export_student

    ck = own_checkpoint(run, frames, datasets)
    ck["head"], ck["net_config"] = head.state_dict(), head.cfg.to_dict()
    torch.save(ck, out.with_suffix(".pt"))
    _, parity = export_student(out.with_suffix(".pt"), out)
    log(f"merged head exported -> {out} (parity {parity})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    add_script_arguments(ap)
    ap.add_argument("--leave-out", metavar="DATASET", help="as `emotrack train --leave-out`: for a leave-one-out run")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--finetune", help='JSON {"epochs": E, "lambda_frame": L}: more stage-1 epochs first')
    ap.add_argument("--merge", action="store_true",
                    help="score the saved heads of the settings given, merged into one (one row)")
    ap.add_argument("--export", type=Path, metavar="ONNX", help="with --merge: the run's student with the merged head")
    ap.add_argument("--write-run", type=Path, metavar="DIR",
                    help="with --merge: the merged head as a run folder (student.pt, report.json) for export and evaluate")
    ap.add_argument("settings", nargs="+")
    args = ap.parse_args()
    ft = json.loads(args.finetune) if args.finetune else {}
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    done = {json.dumps(r["setting"], sort_keys=True) for r in rows if r.get("finetune", {}) == ft}
    if (args.export or args.write_run) and (not args.merge or ft):
        ap.error("--export and --write-run go with --merge, without --finetune (the run's student.pt must hold "
                 "the codes' encoder)")
    if not (args.run / "frames.pt").exists():
        ap.error(f"{args.run / 'frames.pt'} not found: give a run folder of `emotrack train --teachers` (stage 1 done)")
    torch.set_num_threads(args.threads)
    frames = torch.load(args.run / "frames.pt", map_location="cpu", weights_only=False)  # stage 1's checkpoint
    base = replace(distill.StudentConfig(), seed=args.seed, threads=args.threads, **net_fields(frames))
    clips = script_clips(args)
    if args.leave_out:
        clips, base = distill.leave_out(clips, base, args.leave_out)
    settings = [json.loads(t) for t in args.settings]
    if any(st == OWN for st in settings) and not args.merge:
        ap.error(f'the member "{OWN}" (the run\'s own head) goes with --merge')
    if any(not isinstance(st, dict) and st != OWN for st in settings):
        ap.error(f'each setting is a JSON object of StudentConfig fields (or, with --merge, "{OWN}")')
    if OWN in settings:  # the run's own head reads what its net config says
        net = torch.load(args.run / OWN, map_location="cpu", weights_only=False)["net_config"]
        own = {"tonal": bool(net.get("tonal")), "tonal_avg": net.get("tonal_avg") or 0.0}
        settings_net = [own if st == OWN else st for st in settings]
    else:
        settings_net = settings
    # a head, or teachers, that read the frames' chroma
    tonal = any(st.get("tonal") or st.get("head_tonal") for st in settings_net)
    if tonal and ft:
        ap.error('"tonal" and "head_tonal" go without --finetune (the heads read codes and chroma side by side)')
    if args.merge and len({(bool(st.get("tonal")), float(st.get("tonal_avg") or 0.0)) for st in settings_net}) > 1:
        ap.error("--merge: the members must read the same inputs (one tonal and tonal_avg for all)")
    seqs = build_seqs(clips, jobs=1, chroma=tonal)
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val", "test")}
    cache = args.run / ("codes.npz" if not ft else f"codes-ft{ft['epochs']}-{ft['lambda_frame']}.npz")
    scaler, targets = distill.TeacherScaler(split["train"]), None
    if not args.merge or (ft and not cache.exists()):  # scoring saved heads needs no training targets
        _, targets, _, _ = student.student_targets(seqs, split, base, scaler)
    if ft and cache.exists():  # the fine-tuned encoder is not kept: its codes are known by the settings' name
        z = np.load(cache)
        for s in seqs:
            s.codes["student"] = z[s.key]
    else:
        fs = distill.FrameStudent(distill.student_net(base))
        fs.load_state_dict(frames["model"])
        if ft:  # stage 1 goes on from the saved encoder with these settings, then the codes
            ftc = replace(base, frame_epochs_2=ft["epochs"], lambda_frame_2=ft["lambda_frame"]).stage_1b()
            rep1 = distill.train_frames(fs, split["train"], split["val"], targets, ftc)
            log(f"finetune {ft}: {rep1['history'][-1]}")
        fs.eval()
        if ft:
            distill.encode_codes(fs.vae, seqs)
            np.savez(cache, **{s.key: s.codes["student"] for s in seqs})
        else:  # the cache `emotrack train` reads and writes too, checked against the encoder
            distill.cached_codes(fs.vae, seqs, cache)
    datasets = sorted({s.clip.dataset for s in seqs})
    if ft and any(json.loads(t).get("joint_epochs") for t in args.settings):
        ap.error("--finetune and joint_epochs together are not supported (stage 3 starts from RUN/frames.pt)")
    if args.merge:
        if settings_net[0].get("tonal"):  # the merged head reads the profiles beside the codes
            distill.with_chroma(seqs, float(settings_net[0].get("tonal_avg") or 0.0))
        return merge_saved(args, frames, settings, base, datasets, seqs, split, done, ft)
    for setting in settings:
        if json.dumps(setting, sort_keys=True) in done:
            log(f"{setting}: done")
            continue
        cfg = config_of(base, setting)
        if args.leave_out and "head_sets" in setting:  # the left-out set stays out of the teacher head
            cfg = replace(cfg, head_sets=tuple(d for d in cfg.head_sets if d != args.leave_out))
        tg = targets
        if (cfg.head_sets, cfg.pseudo_source, cfg.head_rff, cfg.head_vgg, cfg.head_tonal, cfg.label_pool) != (
                base.head_sets, base.pseudo_source, base.head_rff, base.head_vgg, base.head_tonal, base.label_pool):
            _, tg, _, _ = student.student_targets(seqs, split, cfg, scaler, distill.head_tonal_of(cfg))
        net = distill.student_net(cfg)
        plain = {s.key: s.codes["student"] for s in seqs}
        if cfg.tonal:
            distill.with_chroma(seqs, cfg.tonal_avg)
        torch.manual_seed(cfg.seed)
        t0 = time.time()
        head, rep = distill.train_heads(net, datasets, split["train"], split["val"], tg, cfg)
        if cfg.joint_epochs:  # stage 3 from the run's encoder and this head; the codes come back after
            fs = distill.FrameStudent(distill.student_net(base))
            fs.load_state_dict(frames["model"])
            rep = {**distill.train_joint(fs.vae, head, split["train"], split["val"], tg, cfg),
                   "stage2_val_mean_r": rep["best_val_mean_r"], "history": rep["history"]}
            distill.encode_codes(fs.vae, split["test"])
        row = {"setting": setting, "finetune": ft, "seed": args.seed, "best_val_mean_r": rep["best_val_mean_r"],
               "epochs": [len(r["history"]) for r in rep.get("members", [rep])], "seconds": round(time.time() - t0),
               **scores(head, split), "config": asdict(cfg)}
        for s in seqs:  # the next setting starts from the run's codes alone (stage 3 and tonal change them)
            s.codes["student"] = plain[s.key]
        torch.save(head.state_dict(), args.out.with_name(f"{args.out.stem}.{head_tag(setting)}.pt"))
        with args.out.open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        log(f"{setting}: val mean r {rep['best_val_mean_r']:.4f} | " + " | ".join(
            f"{ds} " + " ".join(f"{k} {x:.3f}" for k, x in m.items()) for ds, m in row["val"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
