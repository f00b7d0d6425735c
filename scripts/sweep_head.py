"""Compare stage-2 settings of the student on the validation split, from a finished run's
stage-1 encoder (``RUN/frames.pt``), without retraining stage 1.

    python scripts/sweep_head.py --run runs/student-s0 --seed 0 --out sweep-s0.jsonl \
        '{}' '{"head_ema": 0.99}' '{"lambda_pseudo": 2.0}'
    python scripts/sweep_head.py --run runs/lodo-soundtracks --leave-out soundtracks --out lodo.jsonl \
        '{"pseudo_source": "ridge"}'

Each argument is a JSON object of ``StudentConfig`` fields that differ from the defaults
(``head_sets`` refits the ridge teacher head on those sets, ``head_rff`` with random features; ``pseudo_source`` "ridge" takes
its smoothed answers as pseudo-labels, "accurate" trains the accurate head in the sweep and
takes its; ``joint_epochs`` adds stage 3). One line per setting goes to ``--out`` (appended;
a setting already there is skipped, so a stopped sweep resumes): the validation metrics the
choice is made on, the test metrics for the record, and how far the test predictions move
when the audio is 6 dB quieter or louder (``level_shift``). The codes of every clip are
cached next to the run (``RUN/codes.npz``).
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
from emotrack.models.seqs import GAINS_DB, build_seqs, log


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    add_script_arguments(ap)
    ap.add_argument("--leave-out", metavar="DATASET", help="as `emotrack train --leave-out`: for a leave-one-out run")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--finetune", help='JSON {"epochs": E, "lambda_frame": L}: more stage-1 epochs first')
    ap.add_argument("settings", nargs="+")
    args = ap.parse_args()
    ft = json.loads(args.finetune) if args.finetune else {}
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    done = {json.dumps(r["setting"], sort_keys=True) for r in rows if r.get("finetune", {}) == ft}
    torch.set_num_threads(args.threads)
    base = replace(distill.StudentConfig(), seed=args.seed, threads=args.threads)
    clips = script_clips(args)
    if args.leave_out:
        clips, base = distill.leave_out(clips, base, args.leave_out)
    seqs = build_seqs(clips, jobs=1)
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val", "test")}
    scaler = distill.TeacherScaler(split["train"])
    _, targets, _, _ = student.student_targets(seqs, split, base, scaler)
    cache = args.run / ("codes.npz" if not ft else f"codes-ft{ft['epochs']}-{ft['lambda_frame']}.npz")
    if cache.exists():
        z = np.load(cache)
        for s in seqs:
            s.codes["student"] = z[s.key]
    else:
        fs = distill.FrameStudent(distill.student_net(base))
        fs.load_state_dict(torch.load(args.run / "frames.pt", map_location="cpu", weights_only=False)["model"])
        if ft:  # stage 1 goes on from the saved encoder with these settings, then the codes
            ftc = replace(base, frame_epochs_2=ft["epochs"], lambda_frame_2=ft["lambda_frame"]).stage_1b()
            rep1 = distill.train_frames(fs, split["train"], split["val"], targets, ftc)
            log(f"finetune {ft}: {rep1['history'][-1]}")
        fs.eval()
        distill.encode_codes(fs.vae, seqs)
        np.savez(cache, **{s.key: s.codes["student"] for s in seqs})
    datasets = sorted({s.clip.dataset for s in seqs})
    if ft and any(json.loads(t).get("joint_epochs") for t in args.settings):
        ap.error("--finetune and joint_epochs together are not supported (stage 3 starts from RUN/frames.pt)")
    for text in args.settings:
        setting = json.loads(text)
        if json.dumps(setting, sort_keys=True) in done:
            log(f"{setting}: done")
            continue
        cfg = replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in setting.items()})
        if args.leave_out and "head_sets" in setting:  # the left-out set stays out of the teacher head
            cfg = replace(cfg, head_sets=tuple(d for d in cfg.head_sets if d != args.leave_out))
        tg = targets
        if (cfg.head_sets, cfg.pseudo_source, cfg.head_rff, cfg.head_vgg) != (base.head_sets, base.pseudo_source,
                                                                            base.head_rff, base.head_vgg):
            _, tg, _, _ = student.student_targets(seqs, split, cfg, scaler)
        net = distill.student_net(cfg)
        torch.manual_seed(cfg.seed)
        t0 = time.time()
        head, rep = distill.train_heads(net, datasets, split["train"], split["val"], tg, cfg)
        saved = None
        if cfg.joint_epochs:  # stage 3 from the run's encoder and this head; the codes come back after
            saved = {s.key: s.codes["student"] for s in seqs}
            fs = distill.FrameStudent(distill.student_net(base))
            fs.load_state_dict(torch.load(args.run / "frames.pt", map_location="cpu", weights_only=False)["model"])
            rep = {**distill.train_joint(fs.vae, head, split["train"], split["val"], tg, cfg),
                   "stage2_val_mean_r": rep["best_val_mean_r"], "history": rep["history"]}
            distill.encode_codes(fs.vae, split["test"])
        row = {"setting": setting, "finetune": ft, "seed": args.seed, "best_val_mean_r": rep["best_val_mean_r"],
               "epochs": [len(r["history"]) for r in rep.get("members", [rep])], "seconds": round(time.time() - t0),
               "val": summary(evaluate_predictions(split["val"], distill.predict_head(head, split["val"]))),
               "test": summary(evaluate_predictions(split["test"], distill.predict_head(head, split["test"]))),
               "config": asdict(cfg)}
        if all(len(s.codes["student"]) == len(GAINS_DB) for s in split["test"]):
            row["level_shift"] = level_shift(head, split["test"])
        if saved is not None:
            for s in seqs:
                s.codes["student"] = saved[s.key]
        tag = re.sub(r"[^A-Za-z0-9_.=+-]+", "-", "_".join(f"{k}={v}" for k, v in sorted(setting.items()))) or "defaults"
        torch.save(head.state_dict(), args.out.with_name(f"{args.out.stem}.{tag}.pt"))
        with args.out.open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        log(f"{setting}: val mean r {rep['best_val_mean_r']:.4f} | " + " | ".join(
            f"{ds} " + " ".join(f"{k} {x:.3f}" for k, x in m.items()) for ds, m in row["val"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
