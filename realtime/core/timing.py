"""The one summary of timings (latencies, benchmark runs): count, median, p95, p99, max and
mean in milliseconds. No thread of its own (the live worker publishes one about once a
second; the benchmarks call it at the end).
"""

from __future__ import annotations

import numpy as np


def timing_summary(ms) -> dict:
    """Summary of timings given in milliseconds; ``{"n": 0}`` when there are none."""
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(a, (50, 95, 99))
    return {"n": int(a.size), "median_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3),
            "p99_ms": round(float(p99), 3), "max_ms": round(float(a.max()), 3), "mean_ms": round(float(a.mean()), 3)}
