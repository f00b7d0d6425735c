"""A candidate release beside the shipped one, before anything is exported: the card's goals
goal by goal from both summaries (`emotrack evaluate --student-runs ... --format json`), the
goals the candidate would lose or gain, and what selects a recipe: the best validation mean r
of each seed's stage 2 (`head.history` in the seeds' report.json), mean ± sd over the seeds
(np.std, as the cards give every sd over seeds).
The rules a ship was decided by (e.g. docs/model/experiments/clip-labels/DECISION-RULE.md)
read these numbers.

    python scripts/compare_release.py docs/model/student-summary.json runs-v6/student-summary.json
    python scripts/compare_release.py OLD NEW --json      # the same as one JSON object

A summary's seed runs are looked up as written, then from the checkout's root (the kept
reports under docs/model/experiments/ are written relative to it). Speed goals need the
benchmark and are not compared here (scripts/ship-student.sh measures them).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from emotrack.export.card import goal_rows

ROOT = Path(__file__).resolve().parents[1]
# numbers no goal names but a release is watched on (they fell in a probe before)
WATCH = [("left-out Panda valence r", ("lodo", "panda4q", "student", "panda4q valence r")),
         ("left-out Emotify valence r", ("lodo", "emotify", "student", "emotify valence r")),
         ("VGMIDI valence r", ("student", "vgmidi valence r")),
         ("VGMIDI arousal r", ("student", "vgmidi arousal r")),
         ("EMOPIA quadrant accuracy", ("student", "emopia quadrant accuracy"))]


def _report(run: str) -> dict:
    for p in (Path(run), ROOT / run):
        if (p / "report.json").is_file():
            return json.loads((p / "report.json").read_text())
    raise FileNotFoundError(f"{run}/report.json not found (as written, nor under {ROOT}): the summary's seed runs "
                            "must be at hand, e.g. kept under docs/model/experiments/")


def validation(summary: dict) -> list[float]:
    """Each seed run's best validation mean r of stage 2, the number a run's head is chosen by."""
    out = []
    for run in summary.get("seed_runs") or []:
        hist = _report(run).get("head", {}).get("history") or []
        vals = [h["val_mean_r"] for h in hist if h.get("val_mean_r") is not None]
        if not vals:
            raise ValueError(f"{run}: no val_mean_r in head.history (not a `train --teachers` run?)")
        finite = [v for v in vals if math.isfinite(v)]  # r is undefined on a split of one clip
        out.append(max(finite) if finite else float("nan"))
    return out


def _dig(d: dict, path: tuple[str, ...]):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d[0] if isinstance(d, list | tuple) else d


def compare(old: dict, new: dict) -> dict:
    rows_old = {r["what"]: r for r in goal_rows({"summary": old})}
    rows_new = {r["what"]: r for r in goal_rows({"summary": new})}
    goals = []
    for what in list(rows_old) + [w for w in rows_new if w not in rows_old]:
        a, b = rows_old.get(what, {}), rows_new.get(what, {})
        goals.append({"goal": what, "old": a.get("value"), "new": b.get("value"), "old_met": a.get("met"),
                      "new_met": b.get("met"), "old_sd": a.get("sd"), "new_sd": b.get("sd")})
    va, vb = validation(old), validation(new)

    def ms(v):  # sd as on the cards: np.std over the seeds
        return {"runs": v, "mean": float(np.mean(v)) if v else None,
                "sd": float(np.std(v)) if len(v) > 1 else None}

    return {"goals": goals,
            "lost": [g["goal"] for g in goals if g["old_met"] is True and g["new_met"] is False],
            "gained": [g["goal"] for g in goals if g["old_met"] is False and g["new_met"] is True],
            "validation": {"old": ms(va), "new": ms(vb)},
            "watch": [{"what": w, "old": _dig(old, p), "new": _dig(new, p)} for w, p in WATCH]}


def _f(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def _met(v) -> str:
    return "—" if v is None else "yes" if v else "no"


def format_comparison(c: dict, old_name: str, new_name: str) -> str:
    lines = [f"| goal | {old_name} | met | {new_name} | met |", "|---|---|---|---|---|"]
    for g in c["goals"]:
        old, new = (_f(g[k]) + (f" ± {g[k + '_sd']:.3f}" if g.get(k + "_sd") else "") for k in ("old", "new"))
        lines.append(f"| {g['goal']} | {old} | {_met(g['old_met'])} | {new} | {_met(g['new_met'])} |")
    lines += ["", "Goals lost: " + ("; ".join(c["lost"]) or "none"),
              "Goals gained: " + ("; ".join(c["gained"]) or "none"), ""]
    for side, name in (("old", old_name), ("new", new_name)):
        v = c["validation"][side]
        sd = f" ± {v['sd']:.4f}" if v["sd"] is not None else ""
        runs = ", ".join(f"{x:.4f}" for x in v["runs"])
        mean = "—" if v["mean"] is None else f"{v['mean']:.4f}"
        lines.append(f"validation mean r (best epoch of stage 2), {name}: {mean}{sd} ({runs})")
    lines += ["", "| also watched | " + old_name + " | " + new_name + " |", "|---|---|---|"]
    lines += [f"| {w['what']} | {_f(w['old'])} | {_f(w['new'])} |" for w in c["watch"]]
    return "\n".join(lines)


def _summary(path: str) -> dict:
    """A summary file as `emotrack evaluate --format json` writes it, or a ValueError that
    says which file is not one."""
    try:
        s = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e}): give the file `emotrack evaluate --format json` wrote") from e
    if not isinstance(s, dict) or "student" not in s:
        raise ValueError(f"{path} has no \"student\" rows: give the file `emotrack evaluate --format json` wrote")
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="the shipped model's summary (docs/model/student-summary.json)")
    ap.add_argument("new", help="the candidate's summary (RUNS/student-summary.json)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the tables")
    args = ap.parse_args(argv)
    try:
        old, new = (_summary(p) for p in (args.old, args.new))
        c = compare(old, new)
    except (OSError, ValueError) as e:
        print(f"compare_release: {e}", file=sys.stderr)
        return 2
    print(json.dumps(c, indent=1) if args.json else format_comparison(c, "shipped", "candidate"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
