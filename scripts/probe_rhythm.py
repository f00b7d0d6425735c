"""Would a rhythm context help the student on music it has not heard? A linear probe:

    python scripts/probe_rhythm.py --run runs/lodo-soundtracks

The student hears one 0.5 s log-mel frame at a time; the teachers hear 3 s, enough for tempo
and the regularity of onsets, which carry arousal. This probe builds, for every frame, a
causal rhythm vector from the log-mel frames the runtime already has: the onset envelope
(positive log-mel differences between the 20 ms bins, averaged over all bands and over the
16 lowest) of the last 3 s, and its normalised autocorrelation at lags of 20 ms to 1.5 s,
plus the envelope's log mean and sd. Ridge maps (alpha 10 on standardised inputs, as in
``probe_context.py``) from four inputs to the run's pseudo-labels (its accurate head,
retrained as in the run) are fit on at most 200,000 training frames (seed 0) of the run's
own clips: the code of one frame, the codes of the last 6 frames (3 s), the rhythm vector,
the last 6 codes with the rhythm vector, and (for comparison) the teachers' own outputs on
their 3 s window (standardised tags and embeddings, the student's distillation targets). Each map is then scored like the student, on
every test split (clip means against the ratings), beside the run's own student head.

If the rhythm vector lifts the left-out set's arousal beyond what the stacked codes reach,
feeding it to the LSTM beside the code is a lever; if not, tempo is not what the code lacks.
Needs the teacher cache of the run; about 5 minutes on 2 cores for a leave-one-out run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from emotrack.export.student_export import load_student
from emotrack.models import distill
from emotrack.models.evaluate import evaluate_predictions
from emotrack.models.seqs import log
from numpy.lib.stride_tricks import sliding_window_view
from probe_context import ridge, stack
from probe_mimic import run_clips, run_targets

SLOT = 25  # 20 ms bins between two frame starts (0.5 s / 441 samples at 22,050 Hz)
LAGS = 75  # up to 1.5 s


def envelopes(mel: np.ndarray, low: int = 16) -> list[np.ndarray]:
    """(T, M, N) log-mel -> onset envelopes on the 20 ms grid, (T * SLOT,) each, and the mask of
    the bins that exist (a frame's N - 1 differences; the bins between frames stay empty)."""
    d = np.maximum(np.diff(mel.astype(np.float32), axis=2), 0)  # (T, M, N - 1)
    mask = np.zeros((len(mel), SLOT), np.float32)
    mask[:, 1:d.shape[2] + 1] = 1
    out = []
    for e in (d.mean(1), d[:, :low].mean(1)):
        g = np.zeros((len(mel), SLOT), np.float32)
        g[:, 1:d.shape[2] + 1] = e
        out.append(g.reshape(-1))
    return out + [mask.reshape(-1)]


def rhythm(mel: np.ndarray, frames: int = 6) -> np.ndarray:
    """(T, M, N) -> (T, 2 * (LAGS + 2)): per frame, over the envelopes of it and the frames
    before it (``frames`` in all; none before the clip's start): the masked autocorrelation at
    lags 1..LAGS bins normalised by the variance, the log mean and the log sd. Causal."""
    *envs, mask = envelopes(mel)
    pad = (frames - 1) * SLOT
    mk = sliding_window_view(np.concatenate([np.zeros(pad, np.float32), mask]), frames * SLOT)[::SLOT]
    n = mk.sum(1, keepdims=True)
    pairs = [np.maximum((mk[:, :-lag] * mk[:, lag:]).sum(1), 1) for lag in range(1, LAGS + 1)]  # the mask's only
    feats = []
    for e in envs:
        w = sliding_window_view(np.concatenate([np.zeros(pad, np.float32), e]), frames * SLOT)[::SLOT]
        mean = (w * mk).sum(1, keepdims=True) / n
        c = (w - mean) * mk
        var = (c * c).sum(1, keepdims=True) / n + 1e-8
        ac = np.empty((len(w), LAGS), np.float32)
        for lag in range(1, LAGS + 1):
            ac[:, lag - 1] = (c[:, :-lag] * c[:, lag:]).sum(1) / pairs[lag - 1] / var[:, 0]
        feats += [ac, np.log(mean + 1e-4), 0.5 * np.log(var)]
    return np.concatenate(feats, 1)[: len(mel)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, type=Path, help="a student run (report.json, student.pt)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the scores here")
    args = ap.parse_args()
    _, kept, cfg = run_clips(args.run)
    t0 = time.time()
    seqs, split, targets = run_targets(kept, cfg, args.jobs)
    log(f"targets: {time.time() - t0:.0f} s")
    graph, _ = load_student(args.run / "student.pt")  # in eval mode; refused if its frame is not ours
    vae, head = graph.vae, graph.head
    with torch.no_grad():
        distill.encode_codes(vae, seqs)
    g0 = distill.GAINS_DB.index(0.0)
    preds = {"student head": distill.predict_head(head, split["test"])}
    log(f"codes: {time.time() - t0:.0f} s")
    rh = {s.key: rhythm(s.mel) for s in seqs}
    log(f"rhythm: {time.time() - t0:.0f} s")
    inputs = {"code (0.5 s)": lambda s: s.codes["student"][g0],
              "codes, last 6 (3 s)": lambda s: stack(s.codes["student"][g0], 6),
              "rhythm (3 s)": lambda s: rh[s.key],
              "codes, last 6 + rhythm": lambda s: np.concatenate([stack(s.codes["student"][g0], 6), rh[s.key]], 1),
              "teachers' outputs (3 s)": lambda s: np.nan_to_num(np.concatenate([targets[s.key].emb, targets[s.key].tags], 1))}
    rng = np.random.default_rng(0)
    for name, feat in inputs.items():
        xs, ys = [], []
        for s in split["train"]:
            p = targets[s.key].pseudo
            ok = np.isfinite(p).all(1)
            if ok.any():
                xs.append(feat(s)[ok])
                ys.append(p[ok])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if len(x) > 200_000:
            sel = rng.choice(len(x), 200_000, replace=False)
            x, y = x[sel], y[sel]
        f = ridge(x, y)
        preds[name] = {}
        for s in split["test"]:
            p = f(feat(s))
            preds[name][s.key] = np.concatenate([np.clip(p, -1, 1), np.full_like(p, np.nan)], 1).astype(np.float32)
        log(f"{name}: {time.time() - t0:.0f} s")
    scores = {name: evaluate_predictions(split["test"], p) for name, p in preds.items()}
    cols = [("soundtracks", "valence", "r"), ("soundtracks", "arousal", "r"), ("panda4q", "quadrant_accuracy", None),
            ("panda4q", "valence", "r"), ("panda4q", "arousal", "r"), ("emotify", "arousal", "r")]
    print(f"{args.run.name} (left out: {cfg.leave_out}), test splits\n")
    print("| input | " + " | ".join(f"{d} {m}" for d, m, _ in cols) + " |\n|---|" + "---|" * len(cols))
    for name, sc in scores.items():
        vals = []
        for d, m, k in cols:
            v = sc.get(d, {}).get(m)
            v = v.get(k, v) if isinstance(v, dict) else v
            v = v.get("mean", v) if isinstance(v, dict) else v
            vals.append(f"{v:.3f}" if isinstance(v, float) else "—")
        print(f"| {name} | " + " | ".join(vals) + " |")
    if args.json:
        args.json.write_text(json.dumps(scores, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
