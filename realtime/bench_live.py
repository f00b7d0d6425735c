"""``emotrack bench --live / --memory / --startup``: the live tracker measured from outside,
as a user's program sees it (main thread; it starts ``emotrack live`` as a child process).

- live: ``emotrack live --no-gui --input demo --loop`` paced at real time in 10 ms blocks
  (what a sound card delivers), a loopback WebSocket client in this process, and a
  busy-loop process keeping the other core busy. End-to-end latency per prediction = time
  from the frame's last sample entering the ring buffer to the client receiving the
  message: the worker's own ``latency_ms`` plus (client receive wall time - message wall
  time), both clocks being this machine's.
- memory: an hour of audio (the demo looped, 44.1 kHz stereo FLAC) through
  ``emotrack live --no-gui --fast`` with a WebSocket client and ``--record``; the child's
  resident memory (VmRSS) sampled every 0.25 s.
- startup: ``emotrack --help`` wall time (median of 5 runs); the first prediction's latency
  is in the live result (``first_latency_ms``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .live import demo_path

EMOTRACK = [sys.executable, "-m", "emotrack.realtime.cli"]


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class _Client(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.e2e, self.worker, self.frames, self.first = url, [], [], 0, None
        self.connected = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        from websockets.sync.client import connect

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                with connect(self.url, compression=None, open_timeout=2) as ws:
                    self.connected.set()
                    while not self.stop.is_set():
                        try:
                            raw = ws.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        now = time.time()
                        m = json.loads(raw)
                        if m.get("type") != "frame":
                            continue
                        self.frames += 1
                        e2e = m["latency_ms"] + (now - m["wall"]) * 1000
                        if m["seq"] == 0:
                            self.first = {"worker_ms": m["latency_ms"], "e2e_ms": e2e}
                        self.e2e.append(e2e)
                        self.worker.append(m["latency_ms"])
                return
            except (OSError, TimeoutError):
                time.sleep(0.1)
            except Exception:
                return


def _stats(x) -> dict:
    a = np.asarray(x, dtype=np.float64)
    if len(a) == 0:
        return {"n": 0}
    return {"n": int(len(a)), "median_ms": round(float(np.median(a)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3)}


def bench_live(seconds: float, hop: float, busy: bool = True) -> dict:
    port = _free_port()
    burner = None
    if busy:  # keep the second core busy, as a DAW or a visual app next to us would
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    proc = subprocess.Popen(EMOTRACK + ["live", "--no-gui", "--quiet", "--input", str(demo_path()), "--loop",
                                        "--hop", str(hop), "--ws", f"127.0.0.1:{port}",
                                        "--duration", str(seconds + 3)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = _Client(f"ws://127.0.0.1:{port}")
    client.start()
    try:
        proc.wait(seconds + 60)
    finally:
        client.stop.set()
        client.join(5)
        proc.kill()
        if burner:
            burner.kill()
            burner.wait()
    err = proc.stderr.read() if proc.stderr else ""
    if client.frames == 0:
        raise RuntimeError(f"no frames received; emotrack live said: {err[-2000:]}")
    return {"seconds": seconds, "hop": hop, "busy_second_core": busy, "frames": client.frames,
            "end_to_end": _stats(client.e2e), "worker": _stats(client.worker),
            "first_prediction": client.first}


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def bench_memory(audio_seconds: float) -> dict:
    from .bench import write_looped_demo

    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "hour.flac"
        write_looped_demo(path, audio_seconds)
        port = _free_port()
        rec = Path(td) / "rec.jsonl"
        t0 = time.perf_counter()
        proc = subprocess.Popen(EMOTRACK + ["live", "--no-gui", "--quiet", "--input", str(path), "--fast",
                                            "--ws", f"127.0.0.1:{port}", "--record", str(rec)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        client = _Client(f"ws://127.0.0.1:{port}")
        client.start()
        samples = []
        while proc.poll() is None:
            r = _rss_kb(proc.pid)
            if r:
                samples.append((time.perf_counter() - t0, r))
            time.sleep(0.25)
        wall = time.perf_counter() - t0
        client.stop.set()
        client.join(5)
        rows = sum(1 for _ in open(rec))
    if proc.returncode != 0:
        raise RuntimeError(f"emotrack live failed: {proc.stderr.read()[-2000:]}")
    rss = np.array([s[1] for s in samples], dtype=np.float64) / 1024
    k = len(rss)
    # growth: the last tenth against the second tenth (after start-up allocations)
    early = float(np.median(rss[k // 10: 2 * k // 10])) if k >= 10 else float(rss[0])
    late = float(np.median(rss[-max(1, k // 10):]))
    return {"audio_seconds": audio_seconds, "wall_seconds": round(wall, 1), "predictions_recorded": rows,
            "frames_received": client.frames, "rss_max_mb": round(float(rss.max()), 1),
            "rss_early_mb": round(early, 1), "rss_late_mb": round(late, 1),
            "growth_mb": round(late - early, 1), "samples": k}


def bench_startup(runs: int = 5) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "emotrack"), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return {"help_seconds_median": round(float(np.median(times)), 3), "runs": runs}


def run_live_bench(args, res: dict) -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args.startup:
        res["startup"] = bench_startup()
        if not args.json:
            print(f"emotrack --help: {res['startup']['help_seconds_median'] * 1000:.0f} ms (median of 5)", flush=True)
    if args.live:
        for hop in (0.5, 0.1):
            r = bench_live(args.live_seconds, hop, busy=not args.idle)
            res.setdefault("live", []).append(r)
            if not args.json:
                e, w, f = r["end_to_end"], r["worker"], r["first_prediction"] or {}
                print(f"live, hop {hop} s, {r['frames']} frames, second core "
                      f"{'busy' if r['busy_second_core'] else 'idle'}: end-to-end median {e['median_ms']:.2f} ms, "
                      f"p99 {e['p99_ms']:.2f} ms (worker alone: median {w['median_ms']:.2f}, p99 {w['p99_ms']:.2f}); "
                      f"first prediction {f.get('e2e_ms', float('nan')):.1f} ms after its frame", flush=True)
    if args.memory:
        m = bench_memory(args.memory_seconds)
        res["memory"] = m
        if not args.json:
            print(f"memory: {m['audio_seconds'] / 3600:.2f} h of audio through live --no-gui --fast in "
                  f"{m['wall_seconds']:.0f} s ({m['predictions_recorded']} predictions recorded, "
                  f"{m['frames_received']} received): RSS max {m['rss_max_mb']:.0f} MB, "
                  f"{m['rss_early_mb']:.0f} MB early vs {m['rss_late_mb']:.0f} MB late "
                  f"(growth {m['growth_mb']:+.1f} MB)", flush=True)
