"""The model card's section on the accurate dynamic model (``--model accurate``), from its
card JSON (written by ``emotrack export --run`` of a ``train --accurate`` run)."""

from __future__ import annotations

import numpy as np
from emotrack.models.evaluate import format_table

# (dataset, label, path into a dataset's metrics)
KEY_METRICS = (("soundtracks", "Soundtracks valence r", ("valence", "r", "mean")),
               ("soundtracks", "Soundtracks arousal r", ("arousal", "r", "mean")),
               ("panda4q", "Panda quadrant acc.", ("quadrant_accuracy",)),
               ("panda4q", "Panda valence sign acc.", ("valence", "sign_accuracy")),
               ("emotify", "Emotify valence r", ("valence", "r", "mean")),
               ("emotify", "Emotify arousal r", ("arousal", "r", "mean")))


def test_metric(test: dict, ds: str, path: tuple[str, ...]) -> float | None:
    """One number of a dataset's test metrics (``path`` into them), None where it is missing."""
    m = test.get(ds)
    for k in path:
        if not isinstance(m, dict) or k not in m:
            return None
        m = m[k]
    return float(m)


def _num(v: float | None) -> str:
    return f"{v:.3f}" if v is not None and np.isfinite(v) else "—"


def _runs_section(card: dict) -> list[str]:
    """Seeds (mean ± sd) and leave-one-dataset-out runs, from the runs' reports."""
    runs = {card["run"]: card["report"], **card.get("other_runs", {})}
    seeds = {k: r for k, r in runs.items() if not (r.get("config") or {}).get("leave_out")}
    lodo = {k: r for k, r in runs.items() if (r.get("config") or {}).get("leave_out")}
    lines = ["## Seeds and leave-one-dataset-out", "",
             f"Test splits, the head in torch on the cached teacher outputs (equal to the runtime within the parity "
             f"above). {len(seeds)} training seed(s), mean ± sd over seeds; each seed chose its setting on "
             "validation. The ridge teacher head (fit on Soundtracks and Panda training clips, 3 s exponential "
             "smoothing) on the same frames is the row to beat.", "",
             "| metric | accurate (seeds) | ridge teacher head |", "|---|---|---|"]
    for ds, label, path in KEY_METRICS:
        vals = [v for r in seeds.values() if (v := test_metric(r["test"]["accurate"], ds, path)) is not None]
        th = [v for r in seeds.values() if (v := test_metric(r["test"]["teacher head"], ds, path)) is not None]
        if vals:
            sd = f" ± {np.std(vals):.3f}" if len(vals) > 1 else ""
            lines.append(f"| {label} | {np.mean(vals):.3f}{sd} | {_num(np.mean(th)) if th else '—'} |")
    if lodo:
        lines += ["", "Leave-one-dataset-out: trained without a dataset's training and validation songs (their audio "
                  "too), tested on its test split; where a set was left out with several seeds, mean ± sd over them.",
                  "", "| left out | metric | accurate | ridge teacher head | runs |", "|---|---|---|---|---|"]
        by_set: dict[str, list[dict]] = {}
        for r in lodo.values():
            by_set.setdefault(r["config"]["leave_out"], []).append(r)
        for out, reps in by_set.items():
            for ds, label, path in KEY_METRICS:
                vals = [v for r in reps if (v := test_metric(r["test"]["accurate"], ds, path)) is not None]
                if ds != out or not vals:
                    continue
                th = [v for r in reps if (v := test_metric(r["test"]["teacher head"], ds, path)) is not None]
                sd = f" ± {np.std(vals):.3f}" if len(vals) > 1 else ""
                seeds = ", ".join(str(r["config"].get("seed", "?")) for r in reps)
                lines.append(f"| {out} | {label} | {np.mean(vals):.3f}{sd} | {_num(np.mean(th)) if th else '—'} | "
                             f"{len(reps)} (seed {seeds}) |")
    return lines


def _levels_section(card: dict) -> list[str]:
    lev = card["report"]["levels"]["accurate"]
    lines = ["## Levels and movement", "",
             "Bias: mean prediction minus mean label over a test split (continuous labels). Per-set offsets are "
             "learned in training and dropped at run time, as for the default model. Movement: the sd of the "
             "trajectory within a song after the warm-up (labels' own sd where they vary in time).", "",
             "| dataset | valence bias | arousal bias | valence movement | arousal movement |", "|---|---|---|---|---|"]
    for ds, m in sorted(lev.items()):
        row = [f"{m[d]['bias']:+.3f}" if "bias" in m[d] else f"(mean {m[d]['mean_prediction']:+.3f})"
               for d in ("valence", "arousal")]
        row += [f"{m[d]['within_song_sd']:.3f}" for d in ("valence", "arousal")]
        lines.append(f"| {ds} | " + " | ".join(row) + " |")
    cal = card["report"]["calibration"]
    lines += ["", f"Calibration: the predicted std is multiplied by {cal['std_scale'][0]:.2f} (valence) and "
              f"{cal['std_scale'][1]:.2f} (arousal), chosen on validation so that 68.3 % of labelled frames fall "
              "within ±1σ; the test splits' shares are the table's last column above."]
    return lines


def _speed_section(card: dict) -> list[str]:
    b = card.get("bench")
    if not b:
        return ["## Speed", "", "Not measured for this export (`emotrack bench --model accurate --format json`, "
                "then `emotrack export --bench FILE`)."]
    s, a = b["step_ms"], b["analyze"]
    return ["## Speed", "",
            f"`emotrack bench --model accurate --audio-seconds {a['audio_seconds']:g}` on {b['machine']}: one 0.5 s "
            f"step (the teachers' 3 s window, both taggers, the LSTM) takes median {s['median_ms']:.1f} ms, p99 "
            f"{s['p99_ms']:.1f} ms on one thread; `analyze` runs {a['x_realtime']:.0f}x real time (FLAC 44.1 kHz "
            f"stereo, decoding included). Live, that is {s['median_ms'] / 5:.0f} % of one core (a step every 500 ms); "
            "the default VAE-LSTM's step takes under 1 ms in the same benchmark (docs/benchmarks.md)."]


def render_accurate_markdown(card: dict) -> str:
    r = card["report"]
    cfg = r["config"]
    tried = "; ".join(f"{t['setting']} {t['val_mean_r']:.3f}" for t in r["settings"])
    e2e = card["end_to_end"]
    p = card["parity"]
    rows = {"accurate (ONNX, runtime)": card["onnx_test"], "ridge teacher head (offline)": r["test"]["teacher head"]}
    if card.get("default_test"):
        rows["default VAE-LSTM (ONNX, runtime)"] = card["default_test"]
    lines = [f"# Accurate dynamic model (opt-in): {card['name']} {card['version']}", "",
             "`emotrack live --model accurate`, `emotrack analyze --model accurate`, `emotrack.load_model(\"accurate\")`. "
             "Every 0.5 s the two musicnn taggers (MSD_musicnn and MTT_musicnn, musicnn 0.1.0, ISC licence) hear the "
             "causal 3 s window that ends at the frame; a stateful LSTM of "
             f"{r['net_config']['lstm_hidden']} units on their 500 outputs (standardised on the training frames) gives "
             "valence, arousal and their std. The descriptors are the taggers' own tag probabilities. Torch- and "
             f"TensorFlow-free: `{card['teachers_onnx']}` (sha256 `{card['teachers_sha256'][:16]}…`) and "
             f"`{card['onnx']}` (sha256 `{card['sha256'][:16]}…`). The VAE-LSTM stays the default: a step of this "
             "model costs about fifty of its steps (see Speed).", "",
             "## Training", "",
             "The training splits of "
             + ", ".join(f"{ds} ({d['train'][0]} train / {d['val'][0]} val / {d['test'][0]} test songs)"
                         for ds, d in sorted(r["data"].items()))
             + ". The head is the default model's stage 2 (label loss with per-set offsets, a pseudo-label loss "
             "against the ridge teacher head, selection by the mean r of the real recordings' validation clips, std "
             "calibration; `emotrack.models.accurate`). Settings compared on validation (mean r): " + tried
             + f". Kept: LSTM {cfg['lstm_hidden']}, input dropout {cfg['head_dropout']}, λ_pseudo "
             f"{cfg['lambda_pseudo']}. Trained in {r['train_seconds'] / 60:.1f} min on {cfg['threads']} threads "
             "(after the teacher pass).", "",
             "## Held-out results", "",
             "Test split, per song (clip mean for the static and quadrant sets, ± bootstrap std over songs).",
             format_table(rows), "",
             f"From the audio file through the whole runtime path (decoding, resampling, the numpy front end, the "
             f"teachers' graph, the head) on {len(e2e['clips'])} test clips, every output differs from the one on "
             f"the cached training features by at most {e2e['max_abs_difference']:.1e} (the cache holds float16). "
             f"Parity of the export (torch vs ONNX, whole vs step by step): {p['torch_vs_onnx']:.1e} / "
             f"{p['whole_vs_steps']:.1e}.", ""]
    lines += _runs_section(card) + [""] + _levels_section(card) + [""] + _speed_section(card)
    clips = sum(sum(d[k][0] for k in ("train", "val", "test")) for d in r["data"].values())
    hours = sum(sum(d[k][1] for k in ("train", "val", "test")) for d in r["data"].values())
    lines += ["", "## Limits", "",
              f"- Trained on {', '.join(sorted(r['data']))} only ({clips:,} clips, {hours:.1f} h in all splits); the "
              "continuous test sets are small (read the bootstrap spreads).",
              "- The taggers know Western popular music best (Million Song Dataset, MagnaTagATune).",
              "- The teachers' front end is not level-invariant and the head saw no gain augmentation: a very quiet "
              "input reads quieter than the music is.", "",
              "## Reproduce", "", "```",
              "emotrack teacher-pass --datasets soundtracks panda4q emotify --jobs 2",
              (r.get("sources") or {}).get("command") or "emotrack train --accurate",
              f"emotrack export --run {card['run']}" + (" --accurate-runs ..." if card.get("other_runs") else ""),
              "```"]
    return "\n".join(lines) + "\n"
