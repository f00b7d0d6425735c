"""The accurate dynamic model's runs of an experiment beside emotrack-accurate 1's own (its
card's reports): test splits, mean ± sd over seeds (sd as on the cards: np.std), and the
validation mean r each run's kept setting was chosen by.

    python scripts/table_accurate.py docs/model/experiments/accurate-clip-labels

RUN folders (each with report.json) are grouped by name: ``<group>-s<N>`` and ``<group>`` (seed
0) are seeds of one group; ``lodo`` in the name, with the left-out set in the report, makes a
leave-one-dataset-out group scored on that set only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
from emotrack.export.accurate_card import test_metric

ROOT = Path(__file__).resolve().parents[1]
COLS = (("soundtracks", "film V r", ("valence", "r", "mean")), ("soundtracks", "film A r", ("arousal", "r", "mean")),
        ("panda4q", "Panda quadrant", ("quadrant_accuracy",)), ("panda4q", "Panda V sign", ("valence", "sign_accuracy")),
        ("panda4q", "Panda V r", ("valence", "r", "mean")), ("emotify", "Emotify V r", ("valence", "r", "mean")),
        ("emotify", "Emotify A r", ("arousal", "r", "mean")))


def _ms(v: list[float], digits: int = 3) -> str:
    if not v:
        return "—"
    return f"{np.mean(v):.{digits}f}" + (f" ± {np.std(v):.{digits}f}" if len(v) > 1 else "")


def groups(folder: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in sorted(folder.glob("*/report.json")):
        out.setdefault(re.sub(r"-s\d+$", "", p.parent.name), []).append(json.loads(p.read_text()))
    return out


def shipped() -> dict[str, list[dict]]:
    card = json.loads((ROOT / "assets" / "emotrack-accurate.card.json").read_text())
    out: dict[str, list[dict]] = {}
    for rep in [card["report"], *card.get("other_runs", {}).values()]:
        lo = rep["config"].get("leave_out")
        out.setdefault(f"emotrack-accurate 1{' lodo-' + lo if lo else ''}", []).append(rep)
    return out


def table(named: dict[str, list[dict]]) -> str:
    lines = ["| runs | n | validation mean r | " + " | ".join(c[1] for c in COLS) + " |",
             "|---|---|---|" + "---|" * len(COLS)]
    for name, reps in named.items():
        lo = reps[0]["config"].get("leave_out")
        cells = [_ms([v for r in reps if (v := test_metric(r["test"]["accurate"], ds, path)) is not None]) if lo in (None, ds) else ""
                 for ds, _, path in COLS]
        val = [r["head"]["best_val_mean_r"] for r in reps]
        lines.append(f"| {name} | {len(reps)} | {_ms(val, 4)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python scripts/table_accurate.py FOLDER   (run folders with report.json)", file=sys.stderr)
        return 2
    print(table({**shipped(), **groups(Path(argv[0]))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
