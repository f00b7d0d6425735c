"""How well the student generalises, from the reports of its training runs (offline, main
thread; torch-free: it reads ``report.json`` files and runs ONNX models).

- ``seed runs``: the same training with seeds 0, 1, 2: every test metric as mean ± sd over
  the seeds, so that a difference can be told from noise;
- ``leave-one-dataset-out runs`` (``train --teachers --leave-out SET``): the left-out set's
  test split, by a student that never heard that dataset, and by the teacher head fit
  without it (several runs of one left-out set, seeds apart: mean ± sd, as for the seeds);
- the teacher upper bound: the teacher head (ridge on the teachers' outputs, run offline)
  on the same songs, and the student's distance from it; where the run's pseudo-labels came
  from the accurate head (the teachers' outputs with the student's kind of LSTM head), that
  head too (``accurate_head``);
- the previous shipped model and the ridge baseline on mel statistics, on the same songs;
- levels: each set's bias (mean prediction - mean label over its test songs), and the
  movement within songs (sd of the trajectory over a song's frames after the warm-up,
  next to the labels' own sd for the sets with time-varying labels).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .seqs import WARMUP

REAL = ("soundtracks", "panda4q", "emotify")  # the real-recording sets


def levels(seqs, preds: dict[str, np.ndarray]) -> dict:
    """Per dataset: bias (mean prediction - mean label, over songs) for continuous labels, the
    mean prediction for quadrant sets, and the within-song sd of predictions (and labels)."""
    by: dict[str, list] = {}
    for s in seqs:
        if s.key in preds and s.clip.kind != "unlabelled":
            by.setdefault(s.clip.dataset, []).append(s)
    out = {}
    for ds, items in sorted(by.items()):
        kind = items[0].clip.kind
        m: dict = {}
        for d, key in ((0, "valence"), (1, "arousal")):
            means, labels, sd_p, sd_l = [], [], [], []
            for s in items:
                p = preds[s.key][:, d]
                body = p[WARMUP:] if len(p) > 2 * WARMUP else p
                means.append(float(p.mean()))
                sd_p.append(float(body.std()))
                if kind == "static":
                    labels.append(s.clip.valence if d == 0 else s.clip.arousal)
                elif kind == "dynamic":
                    y = (s.v if d == 0 else s.a)[: len(p)]
                    ok = np.isfinite(y)
                    if ok.sum() > 1:
                        labels.append(float(y[ok].mean()))
                        sd_l.append(float(y[ok].std()))
            m[key] = {"mean_prediction": float(np.mean(means)), "within_song_sd": float(np.mean(sd_p))}
            if labels:
                m[key]["mean_label"] = float(np.mean(labels))
                m[key]["bias"] = float(np.mean(means) - np.mean(labels))
            if sd_l:
                m[key]["label_within_song_sd"] = float(np.mean(sd_l))
        out[ds] = {"kind": kind, **m}
    return out


def headline(metrics: dict) -> dict[str, float]:
    """The numbers the goals are stated in, flat: '<set> valence r', '<set> quadrant acc.', ..."""
    out = {}
    for ds, m in metrics.items():
        if m["kind"] == "quadrant":
            out[f"{ds} quadrant accuracy"] = m["quadrant_accuracy"]
            for d in ("valence", "arousal"):
                out[f"{ds} {d} sign accuracy"] = m[d]["sign_accuracy"]
                out[f"{ds} {d} r"] = m[d]["r"]["mean"]
        else:
            for d in ("valence", "arousal"):
                out[f"{ds} {d} r"] = m[d]["r"]["mean"]
                out[f"{ds} {d} CCC"] = m[d]["ccc"]["mean"]
            if "within_1std" in m:
                out[f"{ds} within ±1σ"] = m["within_1std"]
    return out


def over_seeds(reports: list[dict], model: str = "student") -> dict[str, tuple[float, float, int]]:
    """{metric: (mean, sd, runs)} over the seed runs' test metrics."""
    rows: dict[str, list[float]] = {}
    for r in reports:
        for k, v in headline(r["test"][model]).items():
            if v is not None and math.isfinite(v):
                rows.setdefault(k, []).append(v)
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in rows.items()}


def train_seconds(report: dict) -> float:
    """Training time of a run from its epochs' own times (a run stopped and resumed counts
    every epoch once), stage 1 + stage 2."""
    eps = report.get("frames", {}).get("history", []) + report.get("head", {}).get("history", [])
    return float(sum(e.get("seconds", 0.0) for e in eps)) or float(report.get("train_seconds", 0.0))


def load_reports(runs: list[str | Path]) -> list[dict]:
    return [json.loads((Path(r) / "report.json").read_text()) for r in runs]


def summary(seed_runs: list[str | Path], lodo_runs: list[str | Path], baselines: dict | None = None) -> dict:
    """Everything the model card's evaluation section needs, from the runs' reports (and the
    previous model's and the ridge baseline's metrics, computed by ``baselines``)."""
    seeds = load_reports(seed_runs)
    out = {"seed_runs": [str(r) for r in seed_runs], "student": over_seeds(seeds, "student"),
           "teacher_head": over_seeds(seeds, "teacher head"),
           "accurate_head": over_seeds([r for r in seeds if "accurate head" in r["test"]], "accurate head"),
           "levels": [r.get("levels", {}) for r in seeds], "descriptors": _descriptors(seeds),
           "train_minutes": [round(train_seconds(r) / 60, 1) for r in seeds]}
    by_set: dict[str, list[tuple[dict, str]]] = {}
    for rep, path in zip(load_reports(lodo_runs), lodo_runs, strict=True):
        by_set.setdefault(rep["sources"]["leave_out"], []).append((rep, str(path)))
    out["lodo"] = {ds: lodo_entry(ds, runs) for ds, runs in by_set.items()}
    if baselines:
        out["baselines"] = {name: headline(m) for name, m in baselines.items()}
    return out


LODO_MODELS = ("student", "teacher head", "accurate head")


def lodo_entry(ds: str, runs: list[tuple[dict, str]]) -> dict:
    """The left-out set's test metrics from its leave-one-out runs (report, path). One run: the
    numbers themselves (``"run"``). Several (seeds apart): {metric: [mean, sd, runs]} per model as
    ``over_seeds`` gives for the seed runs, with ``"runs"``, their ``"seeds"`` and each run's own
    numbers (``"per_run"``), so that one run's luck is told from the recipe."""
    def own(rep: dict, model: str) -> dict[str, float]:
        return {k: v for k, v in headline(rep["test"][model]).items() if k.startswith(ds)}

    if len(runs) == 1:
        rep, path = runs[0]
        return {"run": path, **{m: own(rep, m) for m in LODO_MODELS if m in rep["test"]}}
    seeds = [rep.get("student_config", {}).get("seed") for rep, _ in runs]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"leave-one-out runs without {ds} share a seed ({seeds}: {[p for _, p in runs]}); "
                         "give each seed's run once")
    entry: dict = {"runs": [p for _, p in runs], "seeds": seeds,
                   "per_run": [{"run": p, "seed": sd, "student": own(rep, "student")}
                               for (rep, p), sd in zip(runs, seeds, strict=True)]}
    for m in LODO_MODELS:
        reps = [rep for rep, _ in runs if m in rep["test"]]
        if reps:
            entry[m] = {k: list(v) for k, v in over_seeds(reps, m).items() if k.startswith(ds)}
    return entry


def _descriptors(reports: list[dict]) -> dict[str, tuple[float, float]]:
    vals: dict[str, list[float]] = {}
    for r in reports:
        for k, v in (r.get("descriptor_agreement") or {}).items():
            vals.setdefault(k, []).append(v)
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in vals.items()}


def _mean_of(levels: list[dict], ds: str, dim: str, key: str) -> float | None:
    vals = [x[ds][dim][key] for x in levels if ds in x and key in x[ds][dim]]
    return float(np.mean(vals)) if vals else None


def _pm(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, list | tuple):
        m, sd = v[0], v[1]
        return f"{m:.3f} ± {sd:.3f}" if len(v) < 3 or v[2] > 1 else f"{m:.3f}"
    return f"{v:.3f}" if math.isfinite(v) else "—"


def format_summary(s: dict) -> str:
    """Markdown tables of a ``summary``: the goals' metrics per model, leave-one-dataset-out,
    levels, and the descriptors' agreement with the teachers."""
    base = s.get("baselines", {})
    heads = ["student", "teacher_head"] + (["accurate_head"] if s.get("accurate_head") else [])
    names = [*heads, *base]
    keys = sorted(s["student"])
    lines = [f"Test splits; {', '.join(h.replace('_', ' ') for h in heads)}: mean ± sd over {len(s['seed_runs'])} seeds.",
             "", "| metric | " + " | ".join(n.replace("_", " ") for n in names) + " | student − teacher |",
             "|---|" + "---|" * (len(names) + 1)]
    for k in keys:
        row = [_pm(s[h].get(k)) for h in heads] + [_pm(base[b].get(k)) for b in base]
        st, th = s["student"].get(k), s["teacher_head"].get(k)
        gap = f"{st[0] - th[0]:+.3f}" if st and th else "—"
        lines.append(f"| {k} | " + " | ".join(row) + f" | {gap} |")
    if s.get("lodo"):
        lines += ["", "Leave one dataset out (trained without that dataset's audio and labels; its test split; "
                  "mean ± sd where a set has runs with several seeds):", "",
                  "| left out | metric | student | teacher head | accurate head |", "|---|---|---|---|---|"]
        for ds, r in s["lodo"].items():
            for k in sorted(r["student"]):
                lines.append(f"| {ds} | {k[len(ds) + 1:]} | {_pm(r['student'][k])} | "
                             f"{_pm(r['teacher head'].get(k))} | {_pm(r.get('accurate head', {}).get(k))} |")
    lev = [x.get("student", {}) for x in s.get("levels", []) if x]
    if lev:
        lines += ["", "Levels (student, mean over seeds): bias = mean prediction − mean label over the test songs; "
                  "movement = sd of the trajectory within a song (after 2 s), the labels' own where they vary:", "",
                  "| dataset | valence bias | arousal bias | valence movement | arousal movement |", "|---|---|---|---|---|"]
        for ds in sorted(lev[0]):
            cells = []
            for dim in ("valence", "arousal"):
                b = _mean_of(lev, ds, dim, "bias")
                cells.append(f"{b:+.3f}" if b is not None else f"(mean {_mean_of(lev, ds, dim, 'mean_prediction'):+.3f})")
            for dim in ("valence", "arousal"):
                m, lab = _mean_of(lev, ds, dim, "within_song_sd"), _mean_of(lev, ds, dim, "label_within_song_sd")
                cells.append(f"{m:.3f}" + (f" (labels {lab:.3f})" if lab is not None else ""))
            lines.append(f"| {ds} | " + " | ".join(cells) + " |")
    if s.get("descriptors"):
        lines += ["", "Descriptors: Pearson r of the student's tag logits with the teachers' on held-out frames:", "",
                  ", ".join(f"{k} {v[0]:.2f}" for k, v in sorted(s["descriptors"].items(), key=lambda kv: -kv[1][0]))]
    return "\n".join(lines)
