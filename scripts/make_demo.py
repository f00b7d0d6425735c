"""Build the bundled demo (assets/demo.opus + assets/DEMO_AUDIO.txt) from Debian's free music.

    python scripts/make_demo.py [--debian-root DIR] [--model assets/emotrack-vae-lstm.onnx]

Only tracks of the ``debian`` test split (never trained on) whose copyright file gives them
one clear licence (``LICENCES``) are candidates.
Every candidate is run through the model; for each of the four quadrants (calm-positive,
energetic, tense, sad) the 20 s stretch whose mean trajectory lies deepest in it (each from
another track) is kept, and the four are joined with 1.5 s crossfades in the order calm →
energetic → tense → sad, about 75 s in all. Deterministic for a given model and scan.
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
from emotrack.models.cache import cache_dir
from emotrack.models.data import split_of
from emotrack.models.debian import holder_of, scan
from emotrack.realtime.core.audio import read_blocks
from emotrack.realtime.core.model import load_model
from emotrack.realtime.core.tracker import stream_file

ROOT = Path(__file__).resolve().parents[1]
# GPL version 2 or later, or 3 or later: every part, and so the file as a whole, can be
# distributed under GPL-3+ (GPL-2-only and CC-BY-SA-3.0 parts could not be combined with them)
LICENCES = {"GPL-2+", "GPL-2+ (data/music)", "GPL-3+"}
SR = 48000
SEG, FADE = 20.0, 1.5
# quadrant: (sign of valence, sign of arousal), its name
ORDER = [("Q4", (1, -1), "calm"), ("Q1", (1, 1), "energetic"), ("Q2", (-1, 1), "tense"), ("Q3", (-1, -1), "sad")]


def candidates(root: Path) -> list[dict]:
    return [it for it in scan(root) if it["licence"] in LICENCES and split_of("debian", it["path"]) == "test"
            and it["seconds"] >= 40]


def windows(model, path: Path) -> list[tuple[float, float, float]]:
    """(start, mean valence, mean arousal) of every 20 s stretch on a 5 s grid, after a 4 s warm-up."""
    p = list(stream_file(model, path))
    t = np.array([x.t for x in p])
    v, a = np.array([x.valence for x in p]), np.array([x.arousal for x in p])
    out = []
    for start in np.arange(5.0, t[-1] - SEG, 5.0):
        m = (t > start + 4) & (t <= start + SEG)
        out.append((float(start), float(v[m].mean()), float(a[m].mean())))
    return out


def choose(model, root: Path) -> list[dict]:
    scored = []
    for it in candidates(root):
        for start, v, a in windows(model, root / it["path"]):
            scored.append({**it, "start": start, "v": v, "a": a})
    picked, used = [], set()
    for q, (sv, sa), name in ORDER:
        best = max((s for s in scored if s["path"] not in used), key=lambda s: min(sv * s["v"], sa * s["a"]))
        used.add(best["path"])
        picked.append({**best, "quadrant": q, "mood": name})
    return picked


def render(root: Path, picked: list[dict], out: Path) -> float:
    parts = []
    for p in picked:
        sr, _, blocks = read_blocks(root / p["path"])
        y = np.concatenate(list(blocks)).astype(np.float32)
        y = y if y.ndim == 2 else np.stack([y, y], 1)
        seg = y[int(p["start"] * sr): int((p["start"] + SEG) * sr)]
        if sr != SR:
            from scipy.signal import resample_poly
            seg = resample_poly(seg, SR, sr, axis=0).astype(np.float32)
        seg = seg / max(1e-6, float(np.sqrt(np.mean(seg ** 2)))) * 0.1  # the same loudness (RMS -20 dBFS)
        parts.append(np.clip(seg, -1, 1))
    n = int(FADE * SR)
    ramp = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    mix = parts[0]
    for seg in parts[1:]:
        mix = np.concatenate([mix[:-n], mix[-n:] * (1 - ramp) + seg[:n] * ramp, seg[n:]])
    edge = int(0.1 * SR)
    mix[:edge] *= np.linspace(0, 1, edge)[:, None]
    mix[-edge:] *= np.linspace(1, 0, edge)[:, None]
    _encode_opus(mix, out)
    return len(mix) / SR


def _encode_opus(mix: np.ndarray, out: Path) -> None:
    """Ogg Opus at 64 kbit/s through PyAV's FFmpeg (libopus), 20 ms frames with their sample
    positions set: without them the granule positions are guessed and libsndfile then decodes
    the first read differently depending on how much is asked for."""
    import av

    with av.open(str(out), "w", format="ogg") as dst:
        stream = dst.add_stream("libopus", rate=SR, layout="stereo")
        stream.bit_rate = 64000
        stream.time_base = Fraction(1, SR)
        n = SR // 50
        for i in range(0, len(mix), n):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mix[i:i + n].T), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = SR, i, Fraction(1, SR)
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--debian-root", default=str(cache_dir() / "debian-music"))
    ap.add_argument("--model", default=str(ROOT / "assets" / "emotrack-vae-lstm.onnx"))
    ap.add_argument("--out", default=str(ROOT / "assets"))
    a = ap.parse_args()
    root, out = Path(a.debian_root), Path(a.out)
    model = load_model(a.model)
    picked = choose(model, root)
    seconds = render(root, picked, out / "demo.opus")
    lines = [f"demo.opus: {seconds:.1f} s, four 20 s stretches of free game music joined with {FADE} s crossfades,",
             "chosen by scripts/make_demo.py from Debian's music packages (tracks of the test split only,",
             "never used in training) so that the trajectory visits four moods. Each part's licence is given",
             "below as its package's copyright file (/usr/share/doc/<package>/copyright) states it: the GNU",
             "General Public License version 2 or later (GPL-2+) or version 3 or later (GPL-3+), so the file",
             "as a whole is distributed under the GPL version 3 or later. Loudness matched",
             "(RMS -20 dBFS), 48 kHz stereo Ogg Opus at 64 kbit/s.", ""]
    t = 0.0
    for p in picked:
        lines.append(f"{t:5.1f}-{t + SEG:5.1f} s  {p['mood']}: {Path(p['path']).name}, {p['start']:.0f}-{p['start'] + SEG:.0f} s "
                     f"of the file, (c) {holder_of(root, p) or 'see the copyright file'}")
        lines.append(f"    Debian package {p['package']} {p['version']}, licence {p['licence']},")
        lines.append(f"    installed as /{p['path'].split('/', 2)[2]}")
        t += SEG - FADE
    (out / "DEMO_AUDIO.txt").write_text("\n".join(lines) + "\n")
    print(json.dumps([{k: p[k] for k in ("mood", "path", "start", "v", "a", "package", "licence")} for p in picked],
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
