"""The tables of docs/training.md "Whole-clip labels": each run's own head (its report.json)
against one stage-2 draw of another setting on the same encoder (the last row of ROWS/RUN.jsonl,
as ``scripts/sweep_head.py`` writes it): validation, and the test splits as mean ± sd over runs.

    python scripts/table_stage2.py docs/model/experiments/clip-labels docs/model/experiments/tonal-runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from table_merged import FILM_OUT, KEYS, SEEDS, mean_sd, own


def last_row(rows: Path, run: str) -> dict:
    return [json.loads(line) for line in (rows / f"{run}.jsonl").read_text().splitlines()][-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows", type=Path)
    ap.add_argument("reports", type=Path)
    a = ap.parse_args()
    runs = [r for r in [*SEEDS, *FILM_OUT, "lodo-panda4q", "lodo-emotify"] if (a.rows / f"{r}.jsonl").exists()]
    print("| run | validation mean r, the run's own head → the draw |\n|---|---|")
    for r in runs:
        print(f"| {r} | {own(a.reports, r)[0]:.4f} → {last_row(a.rows, r)['best_val_mean_r']:.4f} |")
    print("\n| test (three runs) | the run's own heads | the draws | per run |\n|---|---|---|---|")
    for group, where, keys in ((SEEDS, "", KEYS), (FILM_OUT, "film music left out: ", KEYS[:4])):
        for ds, k, name in keys:
            before = [own(a.reports, r)[1][ds][k] for r in group]
            after = [last_row(a.rows, r)["test"][ds][k] for r in group]
            print(f"| {where}{name} | {mean_sd(before)} | {mean_sd(after)} | {' / '.join(f'{v:.3f}' for v in after)} |")
    for run, ds, ks in (("lodo-panda4q", "panda4q", ("quadrant", "v_sign", "v_r", "a_r")),
                        ("lodo-emotify", "emotify", ("v_r", "a_r"))):
        if run in runs:
            before = " / ".join(f"{own(a.reports, run)[1][ds][k]:.3f}" for k in ks)
            after = " / ".join(f"{last_row(a.rows, run)['test'][ds][k]:.3f}" for k in ks)
            print(f"| {ds} left out (one run): {' / '.join(ks)} | {before} | {after} | |")


if __name__ == "__main__":
    main()
