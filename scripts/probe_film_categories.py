"""Where a student run's film-music arousal goes wrong: the Soundtracks test clips grouped by the
set's own target category (HAPPY, FEAR, LOW ENERGY, ...; ``ratings.csv``'s ``TARGET``), each
group's mean label, student and ridge-teacher-head clip mean as z-scores over the 47 clips, and
the Pearson r of the clip means with and without one category (``--drop``, HAPPY by default):

    python scripts/probe_film_categories.py runs/lodo-soundtracks runs/student-s0

Each RUN is a folder of `emotrack train --teachers` holding ``student.pt`` and ``codes.npz`` (its
encoder's codes of every clip, written by the run). The clip mean is taken after the 2 s warm-up,
so r differs from the report's by a few thousandths. Reads the teacher cache for the ridge head.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from emotrack.models import distill, teacher_head
from emotrack.models.cli import load_clips
from emotrack.models.data import default_data_root
from emotrack.models.evaluate import pearson as r
from emotrack.models.nets import NetConfig
from emotrack.models.seqs import WARMUP, build_seqs


def z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, help="the shared data folder (default: as `emotrack train`)")
    ap.add_argument("--drop", default="HAPPY", help="the category the last line leaves out")
    args = ap.parse_args()
    data = args.data or default_data_root()
    target = {row["number"]: row["TARGET"] for row in csv.DictReader(open(data / "soundtracks" / "ratings.csv"))}
    seqs = build_seqs([c for c in load_clips(data, ["soundtracks"], {}) if c.split == "test"], jobs=1)
    cats = np.array([target[Path(s.clip.audio).stem] for s in seqs])
    y = np.array([s.clip.arousal for s in seqs])
    for run in args.runs:
        ck = torch.load(run / "student.pt", map_location="cpu", weights_only=False)
        head = distill.StudentHead(NetConfig.from_dict(ck["net_config"]), ck["datasets"])
        head.load_state_dict(ck["head"])
        with np.load(run / "codes.npz") as codes:
            for s in seqs:
                s.codes["student"] = codes[s.key]
        st_pred = distill.predict_head(head, seqs)
        th_pred = teacher_head.predictions(ck["teacher_head"], seqs)
        st = np.array([st_pred[s.key][WARMUP:, 1].mean() for s in seqs])
        th = np.array([th_pred[s.key][WARMUP:, 1].mean() for s in seqs])
        print(f"{run}: arousal r student {r(st, y):.3f}, ridge teacher head {r(th, y):.3f} ({len(y)} clips)")
        print(f"  {'category':13s} clips  label z  student z  ridge z")
        for c in sorted(set(cats)):
            m = cats == c
            print(f"  {c:13s} {m.sum():5d}  {z(y)[m].mean():+7.2f}  {z(st)[m].mean():+9.2f}  {z(th)[m].mean():+7.2f}")
        m = cats != args.drop
        print(f"  without the {int((~m).sum())} {args.drop} clips: r student {r(st[m], y[m]):.3f}, "
              f"ridge teacher head {r(th[m], y[m]):.3f} ({int(m.sum())} clips)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
