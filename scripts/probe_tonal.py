"""Stage 2 with tonal features in places the recipe does not (yet) put them: ``scripts/sweep_head.py``
with its clips' pitch-class profiles (the chroma cache) turned into ``nets.TonalFeatures``'
22 raw numbers, of the frame and (``--feats both``) of a causal exponential average of the
profile (time constant ``--tau`` seconds): 22 or 44 numbers a frame, standardised on the
training clips.

``--where head``: the pseudo-labels' teachers (the ridge head and the accurate head trained in
the sweep) see them beside the teachers' outputs; ``student``: the student's LSTM sees them
beside its code; ``both``; ``none``: the sweep as it is (the baseline, same process). Stage 1
is the run's, untouched. Every other argument is ``sweep_head.py``'s, e.g.

    python scripts/probe_tonal.py --where both --feats both --run runs/lodo-soundtracks-s1 \\
        --seed 1 --leave-out soundtracks --out tonal-both.jsonl '{}'

``"tonal": true`` in a setting (the recipe's own tonal head: the frame's profile only, in the
student only) needs no probe: ``sweep_head.py`` takes it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from emotrack.models import distill
from emotrack.models import teacher_head as th
from emotrack.models.cache import chroma_path, ensure_features, load_chroma
from emotrack.models.nets import TonalFeatures

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sweep_head  # noqa: E402

TONAL = TonalFeatures()
_cache: dict = {}


def tonal_of(clip, n: int, tau: float, both: bool) -> np.ndarray:
    """(n, 22 or 44) raw tonal numbers of a clip's first n frames."""
    key = (clip.key, n)
    if key not in _cache:
        if not chroma_path(clip).exists():  # computed where the chroma cache lacks the clip
            ensure_features([clip], jobs=1, chroma=True, progress=False)
        c = load_chroma(clip).astype(np.float64)[:n]
        if len(c) < n:  # (the profile and the log-mel come from the same frames: never, but be safe)
            c = np.concatenate([c, np.full((n - len(c), 12), 1 / 12)])
        parts = [c]
        if both:
            a, e, avg = 1 - math.exp(-0.5 / tau), c[0], np.empty_like(c)
            for i, row in enumerate(c):
                e = e + a * (row - e)
                avg[i] = e
            parts.append(avg / avg.sum(1, keepdims=True))
        with torch.no_grad():
            _cache[key] = np.concatenate([TONAL.raw(torch.from_numpy(p.astype(np.float32))).numpy() for p in parts], 1)
    return _cache[key]


def main() -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--where", choices=("none", "head", "student", "both"), required=True)
    ap.add_argument("--feats", choices=("frame", "both"), default="both")
    ap.add_argument("--tau", type=float, default=10.0)
    mine, rest = ap.parse_known_args()
    both, k = mine.feats == "both", 44 if mine.feats == "both" else 22
    sys.argv = [sys.argv[0], *rest]
    if mine.where in ("head", "both"):
        orig = th.teacher_features
        th.teacher_features = lambda clip, n, vgg=False, tonal=None: np.concatenate(
            [orig(clip, n, vgg, tonal), tonal_of(clip, n, mine.tau, both)], 1)
    if mine.where in ("student", "both"):
        orig_cached = distill.cached_codes

        def cached(vae, seqs, path):
            out = orig_cached(vae, seqs, path)
            train = np.concatenate([tonal_of(s.clip, len(s.mel), mine.tau, both) for s in seqs if s.clip.split == "train"])
            mu, sd = train.mean(0), train.std(0) + 1e-6
            for s in seqs:
                c = s.codes["student"]
                x = ((tonal_of(s.clip, len(s.mel), mine.tau, both) - mu) / sd).astype(c.dtype)
                s.codes["student"] = np.concatenate([c, np.broadcast_to(x, (c.shape[0], *x.shape))], 2)
            return out

        distill.cached_codes = cached
        orig_init = distill.StudentHead.__init__

        def init(self, net, datasets):
            orig_init(self, net, datasets)
            if net.latent_dim < 500:  # the student's head; the accurate head (teachers' outputs in) is not widened
                self.lstm = torch.nn.LSTM(net.latent_dim + k, net.lstm_hidden, net.lstm_layers, batch_first=True)

        distill.StudentHead.__init__ = init
    return sweep_head.main()


if __name__ == "__main__":
    sys.exit(main())
