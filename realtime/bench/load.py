"""``emotrack bench --load``: the WebSocket server under many clients, some of them bad.
Main thread, plus a memory sampler thread; the swarm is a child process with its own loop.

The live tracker runs in this process (the real model, the demo paced in real time and
looped, ``--hop 0.1`` = 10 predictions a second); a client swarm runs in a child process
(``python -m emotrack.realtime.bench.load --swarm URL ...``) so that it does not share this
process's interpreter lock:

- healthy clients read everything and record each frame's ``seq`` and delivery delay
  (receive wall time - the message's ``wall``, one machine, one clock);
- stuck clients finish the handshake with a 4 KiB receive buffer and never read again;
- abrupt clients connect, read a few messages, reset the connection without a close
  frame, and do it again, all the time.

All healthy and stuck clients are connected before the first prediction, so each healthy
client must get every frame, in order. The server uses small send buffers
(``max_buffer``) so that stuck clients fill up, and are dropped, within the run.
Reported: frames per healthy client and whether any missed or reordered one, the
worker's per-frame latency, delivery delays, the server's resident memory over the run,
and how many stuck clients it dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import numpy as np
from websockets.asyncio.client import connect

from ..assets import demo_path
from ..core.timing import timing_summary
from ..live.engine import LiveEngine
from ..live.sources import FileSource
from ..net.server import WebSocketServer
from .live import rss_kb


# ---------------------------------------------------------------------- the swarm (child)
async def _healthy(url: str, out: dict, ready: asyncio.Event, deadline: float) -> None:
    seqs, delays = out["seqs"], out["delays"]
    try:
        async with connect(url, compression=None, max_size=None, open_timeout=30, ping_interval=None) as ws:
            out["connected"] = True
            ready.set()
            async for raw in ws:
                now = time.time()
                m = json.loads(raw)
                if m["type"] == "frame":
                    seqs.append(m["seq"])
                    delays.append((now - m["wall"]) * 1000)
                if time.monotonic() > deadline:
                    break
    except Exception as e:  # reported, not raised: the parent judges
        out["error"] = f"{type(e).__name__}: {e}"


async def _stuck(host: str, port: int, out: dict) -> socket.socket | None:
    """A client that completes the handshake and never reads again."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(s, (host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(s, (f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                    "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(s, 1)
        out["connected"] = b" 101 " in head.split(b"\r\n")[0]
        return s
    except OSError as e:
        out["error"] = str(e)
        s.close()
        return None


async def _abrupt(url: str, out: dict, deadline: float, rng: random.Random) -> None:
    while time.monotonic() < deadline:
        try:
            ws = await connect(url, compression=None, open_timeout=10, ping_interval=None)
            for _ in range(rng.randint(1, 20)):
                await asyncio.wait_for(ws.recv(), 5)
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            ws.transport.abort()  # a reset, no close frame: a crashed or unplugged client
            out["cycles"] += 1
        except Exception as e:
            if time.monotonic() < deadline - 60:  # not the server shutting down at the end
                out["errors"] += 1
                out["last_error"] = f"{type(e).__name__}: {e}"
        await asyncio.sleep(rng.uniform(0.0, 0.5))


async def swarm(url: str, healthy: int, stuck: int, abrupt: int, seconds: float) -> dict:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    deadline = time.monotonic() + seconds
    h_out = [{"seqs": [], "delays": [], "connected": False} for _ in range(healthy)]
    s_out = [{"connected": False} for _ in range(stuck)]
    a_out = [{"cycles": 0, "errors": 0} for _ in range(abrupt)]
    readies = [asyncio.Event() for _ in range(healthy)]
    tasks = [asyncio.create_task(_healthy(url, o, r, deadline)) for o, r in zip(h_out, readies, strict=True)]
    socks = [await _stuck(u.hostname, u.port, o) for o in s_out]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    print("ready", flush=True)  # the parent starts the tracker now
    rng = random.Random(1)
    abrupts = [asyncio.create_task(_abrupt(url, o, deadline, rng)) for o in a_out]
    await asyncio.gather(*tasks)  # they end when the server closes, or at the deadline
    for t in abrupts:
        t.cancel()
    await asyncio.gather(*abrupts, return_exceptions=True)
    for s in socks:
        if s is not None:
            s.close()
    delays = [d for o in h_out for d in o["delays"]]
    return {"healthy": [{"seqs": o["seqs"], "error": o.get("error")} for o in h_out],
            "stuck_connected": sum(o["connected"] for o in s_out),
            "abrupt_cycles": sum(o["cycles"] for o in a_out), "abrupt_errors": sum(o["errors"] for o in a_out),
            "delivery": timing_summary(delays)}


# ---------------------------------------------------------------------- the server (parent)
def run_load(model, clients: int = 200, stuck: int = 10, abrupt: int = 10, seconds: float = 60.0,
             hop: float = 0.1, max_buffer: int = 8192, stuck_seconds: float = 5.0) -> dict:
    healthy = clients - stuck - abrupt
    server = WebSocketServer("127.0.0.1", 0, max_buffer=max_buffer, sndbuf=max_buffer,
                             stuck_seconds=stuck_seconds, max_clients=clients + 50)
    engine = LiveEngine(model, FileSource(demo_path(), loop=True), hop=hop, sinks=[server], duration=seconds)
    engine.serve(server)
    server.start()
    proc = subprocess.Popen([sys.executable, "-m", "emotrack.realtime.bench.load", "--swarm", server.url,
                             "--healthy", str(healthy), "--stuck", str(stuck), "--abrupt", str(abrupt),
                             "--seconds", str(seconds + 60)], stdout=subprocess.PIPE, text=True)
    rss: list[tuple[float, int]] = []
    stop = threading.Event()
    try:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the client swarm did not start (it said {line!r})")
        connected = server.client_count

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(1.0):
                rss.append((time.monotonic() - t0, rss_kb(os.getpid()) or 0))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        engine.start()
        finished = engine.wait(seconds + 60)
        time.sleep(1.0)  # the last frames are on their way
        dropped, skipped = server.dropped_clients, server.skipped_messages
        engine.stop()  # closes the server: the healthy clients end
        stop.set()
        out, _ = proc.communicate(timeout=60)
    finally:
        stop.set()
        proc.kill()
        engine.stop()
    res = json.loads(out)
    frames = engine.seq
    complete = sum(1 for h in res["healthy"] if h["seqs"] == list(range(frames)))
    r = np.array([k for _, k in rss], dtype=np.float64) / 1024
    n = len(r)
    early = float(np.median(r[n // 10: 2 * n // 10])) if n >= 10 else float(r[0]) if n else 0.0
    late = float(np.median(r[-max(1, n // 10):])) if n else 0.0
    return {"clients": clients, "healthy": healthy, "stuck": stuck, "abrupt": abrupt, "seconds": seconds, "hop": hop,
            "finished": finished, "connected_at_start": connected, "frames": frames,
            "healthy_complete": complete, "healthy_errors": [h["error"] for h in res["healthy"] if h["error"]],
            "worst_healthy": min((len(h["seqs"]) for h in res["healthy"]), default=0),
            "stuck_connected": res["stuck_connected"], "stuck_dropped": dropped, "skipped_messages": skipped,
            "abrupt_cycles": res["abrupt_cycles"], "abrupt_errors": res["abrupt_errors"],
            "worker": engine.latency.summary(), "delivery": res["delivery"], "sink_errors": engine.sink_errors,
            "rss_max_mb": round(float(r.max()), 1) if n else None, "rss_early_mb": round(early, 1),
            "rss_late_mb": round(late, 1), "rss_growth_mb": round(late - early, 1),
            "rss_every_5s_mb": [round(float(x), 1) for x in r[::5]]}


def describe(r: dict) -> str:
    w, d = r["worker"], r["delivery"]
    return (f"load: {r['clients']} clients ({r['healthy']} healthy, {r['stuck']} never reading, {r['abrupt']} "
            f"resetting all the time: {r['abrupt_cycles']} resets), hop {r['hop']} s for {r['seconds']:.0f} s, "
            f"{r['frames']} frames: {r['healthy_complete']}/{r['healthy']} healthy clients got every frame in order; "
            f"worker latency median {w['median_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms, max {w['max_ms']:.2f} ms; "
            f"delivery median {d['median_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms; stuck clients dropped "
            f"{r['stuck_dropped']}/{r['stuck']}; RSS {r['rss_early_mb']:.0f} MB early, {r['rss_late_mb']:.0f} MB "
            f"late, max {r['rss_max_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the client swarm of emotrack bench --load")
    ap.add_argument("--swarm", required=True, metavar="URL")
    ap.add_argument("--healthy", type=int, default=180)
    ap.add_argument("--stuck", type=int, default=10)
    ap.add_argument("--abrupt", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=120.0)
    a = ap.parse_args(argv)
    res = asyncio.run(swarm(a.swarm, a.healthy, a.stuck, a.abrupt, a.seconds))
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
