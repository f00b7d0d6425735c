"""The tables of docs/training.md "Three stage-2 heads merged, on the key-and-mode recipe": the
validation score of each encoder's own head, its two extra stage-2 draws and the three merged,
and the test numbers of the recipe's own heads against the merged ones.

    python scripts/table_merged.py docs/model/experiments/merged-tonal docs/model/experiments/tonal-runs

ROWS holds ``RUN.merge.jsonl`` for each run (``scripts/sweep_head.py --merge '"student.pt"' ...``
with the two draws' rows in the same file, as written there); REPORTS holds each run's
``report.json`` (its own head's numbers). The sd is over the runs (population sd, as the card's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SEEDS = ["student-s0", "student-s1", "student-s2"]
FILM_OUT = ["lodo-soundtracks", "lodo-soundtracks-s1", "lodo-soundtracks-s2"]
KEYS = [("soundtracks", "v_r", "Soundtracks valence r"), ("soundtracks", "a_r", "Soundtracks arousal r"),
        ("panda4q", "quadrant", "Panda quadrant accuracy"), ("panda4q", "v_sign", "Panda valence sign accuracy"),
        ("panda4q", "v_r", "Panda valence r"), ("emotify", "v_r", "Emotify valence r"),
        ("emotify", "a_r", "Emotify arousal r"), ("vgmidi", "v_r", "VGMIDI valence r over time"),
        ("vgmidi", "a_r", "VGMIDI arousal r over time"), ("emopia", "a_r", "EMOPIA arousal r")]


def own(reports: Path, run: str) -> tuple[float, dict]:
    rep = json.loads((reports / run / "report.json").read_text())
    out = {}
    for ds, m in rep["test"]["student"].items():
        out[ds] = {"v_r": m["valence"]["r"]["mean"], "a_r": m["arousal"]["r"]["mean"]}
        if "quadrant_accuracy" in m:
            out[ds].update(quadrant=m["quadrant_accuracy"], v_sign=m["valence"]["sign_accuracy"])
    return rep["head"]["best_val_mean_r"], out


def merged(rows: Path, run: str) -> tuple[dict, dict]:
    lines = [json.loads(line) for line in (rows / f"{run}.merge.jsonl").read_text().splitlines()]
    last = [x for x in lines if "merged" in x["setting"]][-1]
    return last, {x["setting"]["seed"]: x for x in lines if "merged" not in x["setting"]}


def mean_sd(xs) -> str:
    return f"{np.mean(xs):.3f} ± {np.std(xs):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows", type=Path)
    ap.add_argument("reports", type=Path)
    a = ap.parse_args()
    print("| run | validation mean r: own head / seed 100 / seed 200 | three merged |\n|---|---|---|")
    for run in [*SEEDS, *FILM_OUT, "lodo-panda4q", "lodo-emotify"]:
        m, draws = merged(a.rows, run)
        print(f"| {run} | {own(a.reports, run)[0]:.4f} / {draws[100]['best_val_mean_r']:.4f} / "
              f"{draws[200]['best_val_mean_r']:.4f} | {m['best_val_mean_r']:.4f} |")
    print("\n| test | the recipe's own heads | nine heads alone, mean | three merged | merged, per run |\n"
          "|---|---|---|---|---|")
    for runs, where, keys in ((SEEDS, "", KEYS), (FILM_OUT, "film music left out: ", KEYS[:4])):
        for ds, k, name in keys:
            o = [own(a.reports, r)[1][ds][k] for r in runs]
            ms = [merged(a.rows, r) for r in runs]
            alone = o + [m[1][s]["test"][ds][k] for m in ms for s in (100, 200)]
            b = [m[0]["test"][ds][k] for m in ms]
            print(f"| {where}{name} | {mean_sd(o)} | {np.mean(alone):.3f} | {mean_sd(b)} | "
                  f"{' / '.join(f'{v:.3f}' for v in b)} |")
    for run, ds, ks in (("lodo-panda4q", "panda4q", ("quadrant", "v_sign", "v_r", "a_r")),
                        ("lodo-emotify", "emotify", ("v_r", "a_r"))):
        m, _ = merged(a.rows, run)
        before = " / ".join(f"{own(a.reports, run)[1][ds][k]:.3f}" for k in ks)
        after = " / ".join(f"{m['test'][ds][k]:.3f}" for k in ks)
        print(f"| {ds} left out: {' / '.join(ks)} | {before} | | {after} | |")


if __name__ == "__main__":
    main()
