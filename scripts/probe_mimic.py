"""How closely a student run reproduces its pseudo-labels' teacher, and how each tracks the
ratings, on one dataset's clips, split by split:

    python scripts/probe_mimic.py --run runs/lodo-soundtracks

Per split and dimension, Pearson r across clips of the clip means (frames from 3 s on, where
the pseudo-labels exist): student against teacher, teacher against the ratings, student
against the ratings; and the within-clip r of student and teacher over frames, averaged over
clips. A student that follows its teacher closely on the clips it trained on but not on the
test clips generalises badly; one that does not follow it even on its training clips lacks
what the teacher hears (its code or its head cannot carry it).

The run's own clips, settings and leave-one-out (from its report.json) are rebuilt, and its
teacher (the ridge head, or the accurate head retrained as in the run: deterministic, about
a minute on 2 cores) gives the pseudo-labels; the ratings are the dataset's, also for clips
the run kept as unlabelled audio (``--keep-audio``). Torch runs on the run's own thread count,
so the accurate head retrained here is the run's own. Needs the teacher cache of the run.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from emotrack.export.student_export import load_student
from emotrack.models import distill, student
from emotrack.models.cli import load_clips
from emotrack.models.evaluate import pearson
from emotrack.models.seqs import build_seqs


def config_of(report: dict) -> distill.StudentConfig:
    names = {f.name for f in fields(distill.StudentConfig)}
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in report["student_config"].items() if k in names}
    return distill.StudentConfig(**cfg)


def run_clips(run: Path) -> tuple[list, list, distill.StudentConfig]:
    """A run's clips as its report names them, the ones it kept (its leave-one-out applied) and
    its settings (its own thread count too: the accurate head is then the run's, to the bit)."""
    report = json.loads((run / "report.json").read_text())
    src = report["sources"]
    clips = load_clips(src.get("data"), src.get("datasets"), src.get("roots") or {}, src.get("limit"))
    cfg = config_of(report)
    kept = clips
    if cfg.leave_out:
        kept, cfg = distill.leave_out(clips, cfg, cfg.leave_out, cfg.keep_audio)
    return clips, kept, cfg


def run_targets(kept: list, cfg: distill.StudentConfig, jobs: int) -> tuple[list, dict, dict]:
    """The kept clips' sequences, split by split, and their targets with the pseudo-labels of
    the run's teacher, retrained as in the run."""
    torch.set_num_threads(cfg.threads)
    seqs = build_seqs(kept, jobs=jobs)
    split = {k: [s for s in seqs if s.clip.split == k] for k in ("train", "val", "test")}
    torch.manual_seed(cfg.seed)
    _, targets, _, _ = student.student_targets(seqs, split, cfg, distill.TeacherScaler(split["train"]))
    return seqs, split, targets


def probe(run: Path, dataset: str, jobs: int = 2) -> list[dict]:
    clips, kept, cfg = run_clips(run)
    rated = {c.key: c for c in clips if c.dataset == dataset and c.valence is not None}
    if not rated:
        raise SystemExit(f"{dataset}: no clips with valence and arousal ratings in this run's data")
    seqs, _, targets = run_targets(kept, cfg, jobs)
    graph, _ = load_student(run / "student.pt")  # in eval mode; refused if its frame is not ours
    vae, head = graph.vae, graph.head
    mine = [s for s in seqs if s.key in rated]
    distill.encode_codes(vae, mine)
    pred = distill.predict_head(head, mine)
    rows = []
    for sp in ("train", "val", "test"):
        keys = [s.key for s in mine if s.clip.split == sp]
        row = {"split": sp, **agreement({k: targets[k].pseudo for k in keys}, pred,
                                        {k: (rated[k].valence, rated[k].arousal) for k in keys})}
        if row["clips"]:
            rows.append(row)
    return rows


def agreement(teacher: dict[str, np.ndarray], student: dict[str, np.ndarray],
              ratings: dict[str, tuple[float, float]]) -> dict:
    """For the clips in ``teacher`` ({key: (T, 2) valence, arousal; NaN where none}), against
    ``student`` ({key: (T, >=2)}) and ``ratings`` ({key: (valence, arousal)}): per dimension,
    r across clips of the clip means over the frames the teacher answered, and the within-clip
    r over those frames averaged over clips (NaN where a clip's answers do not vary)."""
    out: dict = {"clips": 0}
    for d, name in enumerate(("valence", "arousal")):
        t_mean, s_mean, lab, within = [], [], [], []
        for k, p in teacher.items():
            ok = np.isfinite(p[:, d])
            if ok.sum() < 2:
                continue
            q = student[k][ok, d]
            t_mean.append(p[ok, d].mean())
            s_mean.append(q.mean())
            lab.append(ratings[k][d])
            within.append(pearson(q, p[ok, d]))
        out["clips"] = len(lab)
        out[name] = {"student~teacher": pearson(s_mean, t_mean), "teacher~ratings": pearson(t_mean, lab),
                     "student~ratings": pearson(s_mean, lab),
                     "within-clip student~teacher": float(np.nanmean(within)) if np.isfinite(within).any()
                     else float("nan")}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, type=Path, help="a student run (report.json, student.pt)")
    ap.add_argument("--dataset", default="soundtracks", help="a dataset with valence and arousal ratings per clip")
    ap.add_argument("--jobs", type=int, default=2, help="processes reading the clips' features")
    ap.add_argument("--json", action="store_true", help="one JSON object per split instead of the table")
    args = ap.parse_args()
    rows = probe(args.run, args.dataset, args.jobs)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    cols = ("student~teacher", "teacher~ratings", "student~ratings", "within-clip student~teacher")
    print(f"{args.run.name}, {args.dataset}: Pearson r of clip means (within-clip: over frames, averaged)\n")
    print("| split | clips | dimension | " + " | ".join(cols) + " |\n|---|---|---|" + "---|" * len(cols))
    for r in rows:
        for d in ("valence", "arousal"):
            print(f"| {r['split']} | {r['clips']} | {d} | " + " | ".join(f"{r[d][c]:.3f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
