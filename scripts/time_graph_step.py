"""Time one step of exported graphs alone (onnxruntime, one thread, one 0.5 s frame from the
state the previous step left), the graphs taking turns in blocks so that a drift of the
machine's speed falls on all of them alike; no audio decoding or features, unlike
``emotrack bench``.

    python scripts/time_graph_step.py assets/emotrack-vae-lstm.onnx merged.onnx

Run it pinned to one core (``taskset -c 1 ...``) with nothing else running.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("onnx", nargs="+")
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--steps", type=int, default=300, help="steps per block")
    args = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sessions = {p: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"]) for p in args.onnx}
    times: dict[str, list[float]] = {p: [] for p in args.onnx}
    rng = np.random.default_rng(0)
    for _ in range(args.blocks):
        for p, s in sessions.items():
            ins = {i.name: i.shape for i in s.get_inputs()}
            mel = rng.standard_normal((1, 1, *ins["mel"][2:])).astype(np.float32)
            h = np.zeros((ins["h"][0], 1, ins["h"][2]), np.float32)
            c = h.copy()
            # a graph that reads pitch-class profiles (the frame's, and their average) gets a
            # flat profile: the arithmetic is the same whatever the numbers
            tonal = {n: np.full((1, 1, 12), 1 / 12, np.float32) for n in ("chroma", "chroma_avg") if n in ins}
            for _ in range(args.steps):
                t = time.perf_counter()
                out = s.run(None, {"mel": mel, "h": h, "c": c, **tonal})
                times[p].append(time.perf_counter() - t)
                h, c = out[-2], out[-1]
    for p, ts in times.items():
        a = np.asarray(ts) * 1000
        print(f"{p}: median {np.median(a):.3f} ms, p95 {np.percentile(a, 95):.3f} ms ({len(a)} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
