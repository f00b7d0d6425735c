"""One place that keeps numpy's BLAS off the second core (every onnxruntime session here is
already pinned to one thread). With both cores busy, a multithreaded BLAS turns 0.2 ms mel
frames into 8 ms stalls (measured; see docs/ARCHITECTURE.md). No thread of its own.
"""

from __future__ import annotations

import os

ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_thread_blas() -> None:
    """Limit BLAS to one thread: through the environment for libraries not loaded yet, and
    through threadpoolctl for those already loaded (numpy's OpenBLAS reads its variable
    only once, when numpy is imported). A caller who set any of the variables keeps them."""
    if any(k in os.environ for k in ENV):
        for k in ENV:
            os.environ.setdefault(k, os.environ.get("OPENBLAS_NUM_THREADS", "1"))
        return
    for k in ENV:
        os.environ[k] = "1"
    # deferred: only when a command runs (emotrack --help stays instant)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
