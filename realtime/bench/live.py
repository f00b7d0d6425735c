"""``emotrack bench --live / --memory / --startup``: the live tracker measured from outside,
as a user's program sees it (main thread, plus one client thread; it starts ``emotrack
live`` as a child process).

- live: ``emotrack live --no-gui --input demo --loop`` paced at real time in 10 ms blocks
  (what a sound card delivers), a loopback WebSocket client in this process, and a
  busy-loop process keeping the other core busy. End-to-end latency per prediction = time
  from the frame's last sample entering the ring buffer to the client receiving the
  message: the worker's own ``latency_ms`` plus (client receive wall time - message wall
  time), both clocks being this machine's.
- memory: an hour of audio (the demo looped, 44.1 kHz stereo FLAC) through
  ``emotrack live --no-gui --fast`` with a WebSocket client and ``--record``; the child's
  resident memory (VmRSS) sampled every 0.25 s.
- startup: ``emotrack --help`` wall time (median of 5 runs) and its imports measured with
  ``python -X importtime``; the first prediction's latency is in the live result.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from websockets.sync.client import connect

from ..assets import demo_path
from ..core.timing import timing_summary
from .model import write_looped_demo

EMOTRACK = [sys.executable, "-m", "emotrack.realtime.cli"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class _Client(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.e2e, self.worker, self.frames, self.first = url, [], [], 0, None
        self.last_seq: int | None = None
        self.connected = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
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
                        self.last_seq = m["seq"]
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


def bench_live(seconds: float, hop: float, busy: bool = True) -> dict:
    port = free_port()
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
            "end_to_end": timing_summary(client.e2e), "worker": timing_summary(client.worker),
            "first_prediction": client.first}


def rss_kb(pid: int) -> int | None:
    """Resident memory of a process (its VmRSS), in KiB; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def bench_memory(audio_seconds: float, model: str | None = None) -> dict:
    """RSS of ``live --no-gui --fast`` (with ``--model model`` when given) over ``audio_seconds``
    of the looped demo, with a WebSocket client and ``--record``."""
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "hour.flac"
        write_looped_demo(path, audio_seconds)
        port = free_port()
        rec = Path(td) / "rec.jsonl"
        t0 = time.perf_counter()
        proc = subprocess.Popen(EMOTRACK + ["live", "--no-gui", "--quiet", "--input", str(path), "--fast",
                                            "--ws", f"127.0.0.1:{port}", "--record", str(rec),
                                            *(["--model", model] if model else [])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        client = _Client(f"ws://127.0.0.1:{port}")
        client.start()
        samples = []
        while proc.poll() is None:
            r = rss_kb(proc.pid)
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
    return {"model": model or "default", "audio_seconds": audio_seconds, "wall_seconds": round(wall, 1),
            "predictions_recorded": rows,
            "frames_received": client.frames, "last_seq_received": client.last_seq,
            "rss_max_mb": round(float(rss.max()), 1),
            "rss_early_mb": round(early, 1), "rss_late_mb": round(late, 1),
            "growth_mb": round(late - early, 1), "samples": k}


def bench_startup(runs: int = 5) -> dict:
    """``emotrack --help``: wall time (median of ``runs``), and what its imports cost, from
    ``python -X importtime`` (the cumulative time of the slowest top-level imports)."""
    times = []
    exe = str(Path(sys.executable).parent / "emotrack")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([exe, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "emotrack.realtime.cli", "--help"],
                       capture_output=True, text=True, check=True)
    top = []  # (cumulative us, name) of the imports made at the top level (one space before the name)
    for line in r.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and parts[2].startswith(" ") and parts[2][1:2] != " ":
            top.append((int(parts[1]), parts[2].strip()))
    top.sort(reverse=True)
    return {"help_seconds_median": round(float(np.median(times)), 3), "runs": runs,
            "imports_us": sum(t for t, _ in top), "slowest_imports_us": [[n, t] for t, n in top[:8]]}


def run_live_bench(res: dict, live: bool, memory: bool, startup: bool, live_seconds: float = 60.0,
                   idle: bool = False, memory_seconds: float = 3600.0, say=print, model: str | None = None) -> None:
    if startup:
        res["startup"] = st = bench_startup()
        say(f"emotrack --help: {st['help_seconds_median'] * 1000:.0f} ms (median of 5); its imports "
            f"{st['imports_us'] / 1000:.0f} ms (-X importtime), slowest: "
            + ", ".join(f"{n} {t / 1000:.0f} ms" for n, t in st["slowest_imports_us"][:4]))
    if live:
        for hop in (0.5, 0.1):
            r = bench_live(live_seconds, hop, busy=not idle)
            res.setdefault("live", []).append(r)
            e, w, f = r["end_to_end"], r["worker"], r["first_prediction"] or {}
            say(f"live, hop {hop} s, {r['frames']} frames, second core "
                f"{'busy' if r['busy_second_core'] else 'idle'}: end-to-end median {e['median_ms']:.2f} ms, "
                f"p99 {e['p99_ms']:.2f} ms (worker alone: median {w['median_ms']:.2f}, p99 {w['p99_ms']:.2f}); "
                f"first prediction {f.get('e2e_ms', float('nan')):.1f} ms after its frame")
    if memory:
        m = bench_memory(memory_seconds, model)
        res["memory"] = m
        say(f"memory: {m['audio_seconds'] / 3600:.2f} h of audio through live --no-gui --fast"
            + (f" --model {model}" if model else "") + " in "
            f"{m['wall_seconds']:.0f} s ({m['predictions_recorded']} predictions recorded, "
            f"{m['frames_received']} received): RSS max {m['rss_max_mb']:.0f} MB, "
            f"{m['rss_early_mb']:.0f} MB early vs {m['rss_late_mb']:.0f} MB late "
            f"(growth {m['growth_mb']:+.1f} MB)")
