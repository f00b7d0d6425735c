"""Probe: does the accurate pseudo-label teacher (``accurate.pseudo_teacher``, the LSTM on the
teachers' outputs whose answers the student learns from) gain from MSD_vgg's outputs given
in a smaller form than all 562 of them?

    python scripts/probe_pseudo_teacher_inputs.py --seed 0 --out probe-s0.jsonl base vgg logits stack
    python scripts/probe_pseudo_teacher_inputs.py --leave-out soundtracks --out probe-lodo.jsonl base vgg logits stack

Variants (its own pseudo-labels, the ridge head's, are with MSD_vgg for every variant but ``base``):

- ``base``: the shipped recipe's: the musicnn teachers' 500 outputs, the ridge head without MSD_vgg;
- ``vgg``: ``head_vgg`` as in ``StudentConfig``: the 500 and MSD_vgg's 562 (1,062 inputs);
- ``logits``: the 500 and MSD_vgg's 50 tag logits (550);
- ``stack``: the 500 and the ridge head's own causal, smoothed answer with MSD_vgg (502): the
  ridge head's gain handed over as two numbers.

One line per variant goes to ``--out`` (appended; a variant already there is skipped): the
head's best validation mean r (what ``pseudo_source = "accurate"`` keeps its epoch by), and
its valence and arousal r (clip means) per set on validation and test. The same variant and
seed scored the same to 1e-4 here as inside ``sweep_head.py``'s runs; another seed (the
head's initialisation and batch order) moved a variant's score by up to 0.009, so a variant
counts as better only if it is higher with every seed. 2-5 minutes a variant on one core;
needs the teacher pass and the VGG pass (``emotrack teacher-pass [--vgg]``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from emotrack.models import accurate, distill, teacher_head
from emotrack.models.cli import add_script_arguments, script_clips
from emotrack.models.evaluate import evaluate_predictions
from emotrack.models.seqs import build_seqs, log

VARIANTS = ("base", "vgg", "logits", "stack")


@contextmanager
def inputs(variant: str, ridge: dict[int, np.ndarray]):
    """While inside, ``teacher_head.teacher_features(clip, n, vgg=True)`` (what the accurate head
    reads with ``head_vgg``) gives the variant's columns; ``ridge``: {id(clip): (T, 2)}."""
    whole = teacher_head.teacher_features

    def features(clip, n_frames, vgg=False, tonal=None):
        x = whole(clip, n_frames, vgg, tonal)
        if not vgg or variant == "vgg":
            return x
        if variant == "logits":
            return x[:, :550]  # the teachers' 500, then MSD_vgg's logits (teacher_pass.VGG_KEYS' first)
        return np.concatenate([x[:, :500], ridge[id(clip)]], 1)

    teacher_head.teacher_features = features
    try:
        yield
    finally:
        teacher_head.teacher_features = whole


def r_table(seqs, preds) -> dict:
    res = evaluate_predictions([s for s in seqs if s.key in preds], preds)
    return {ds: {d: round(m[d]["r"]["mean"], 4) for d in ("valence", "arousal")} for ds, m in res.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--leave-out", metavar="DATASET", help="as `emotrack train --leave-out`")
    add_script_arguments(ap)
    ap.add_argument("--quick", action="store_true", help="two epochs a head (proves the path)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("variants", nargs="+", choices=VARIANTS)
    args = ap.parse_args()
    done = {json.loads(line)["variant"] for line in args.out.read_text().splitlines()} if args.out.exists() else set()
    torch.set_num_threads(1)
    clips = script_clips(args)
    base = replace(distill.StudentConfig.quick() if args.quick else distill.StudentConfig(), seed=args.seed, threads=1)
    if args.leave_out:
        clips, base = distill.leave_out(clips, base, args.leave_out)
    seqs = build_seqs(clips, jobs=1)
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val", "test")}
    scaler = distill.TeacherScaler(split["train"])
    th_vgg, with_vgg = distill.head_and_targets(seqs, split, base.head_sets, scaler, vgg=True)
    _, without = distill.head_and_targets(seqs, split, base.head_sets, scaler)
    ridge = {id(s.clip): teacher_head.predict(th_vgg, s.clip, len(s.mel)) for s in seqs
             if teacher_head.has_features(s.clip, True)}
    for v in args.variants:
        if v in done:
            log(f"{v}: done")
            continue
        t0 = time.time()
        with inputs(v, ridge):
            _, rep, preds = accurate.pseudo_teacher(seqs, split, scaler, without if v == "base" else with_vgg,
                                                    replace(base, head_vgg=v != "base"))
        p = {k: np.concatenate([x, np.full_like(x, np.nan)], 1) for k, x in preds.items()}
        row = {"variant": v, "seed": args.seed, "leave_out": args.leave_out, "best_val_mean_r": rep["best_val_mean_r"],
               "epochs": rep["epochs"], "seconds": round(time.time() - t0),
               "val": r_table(split["val"], p), "test": r_table(split["test"], p)}
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        log(f"{v}: val mean r {rep['best_val_mean_r']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
