"""Memory that one small input must not blow up, on a real server on 127.0.0.1: a client that
floods pings and never reads, and a ``find`` whose profile spans an impossible time."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from emotrack.realtime.bench.live import rss_kb
from emotrack.realtime.library.library import QueryError, profile_points
from emotrack.realtime.library.service import LibraryService
from emotrack.realtime.library.store import SongRecord, connect, store
from emotrack.realtime.net.server import WebSocketServer

from ..conftest import WsClient, wait_for


def _frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    return head + mask + body


def _raw_client(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head
    return s


def _feed(server, stop: threading.Event, period: float = 0.05) -> None:
    seq = 0
    while not stop.wait(period):
        msg = {"type": "frame", "seq": seq, "t": 0.5 * (seq + 1), "wall": time.time(), "valence": 0.1,
               "arousal": 0.2, "valence_std": 0.3, "arousal_std": 0.3, "latency_ms": 1.0, "counters": {}}
        server.frame(msg, json.dumps(msg))
        seq += 1


def test_a_ping_flood_from_a_client_that_never_reads_is_dropped():
    server = WebSocketServer("127.0.0.1", 0, hello={"type": "hello", "protocol": 1, "hop": 0.5}, stuck_seconds=2.0)
    server.start()
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(server, stop), daemon=True)
    feeder.start()
    healthy = WsClient(server.url)
    flood = _raw_client(server.port)
    flood.sendall(_frame(0x1, json.dumps({"type": "subscribe", "every": 10000}).encode()))
    ping = _frame(0x9, b"x" * 125)
    before = rss_kb(os.getpid())
    end = time.monotonic() + 8.0
    try:
        flood.settimeout(0.2)
        while time.monotonic() < end and not server.dropped_clients:
            try:
                flood.sendall(ping * 64)
            except (TimeoutError, OSError):
                pass
        grown_mb = (rss_kb(os.getpid()) - before) / 1024
        # it was skipped regardless of its subscription, and dropped once stuck for 2 s
        assert server.dropped_clients == 1
        assert grown_mb < 80, f"server memory grew {grown_mb:.0f} MB under the flood"  # it rose 38 MB/s before
        n = len(healthy.frames())
        wait_for(lambda: len(healthy.frames()) > n + 3, 10, "frames at the healthy client after the drop")
    finally:
        flood.close()
        stop.set()
        feeder.join()
        healthy.close()
        server.close()


@pytest.mark.parametrize("span", [1e8, 1e9, 1e300])
def test_an_impossible_profile_span_is_refused_before_anything_is_built(span):
    before = rss_kb(os.getpid())
    with pytest.raises(QueryError, match="span"):
        profile_points([[0, 0.1, 0.1], [span, 0.2, 0.2]])
    assert (rss_kb(os.getpid()) - before) / 1024 < 20


def test_too_many_profile_points_are_refused():
    rows = np.column_stack([np.arange(20001), np.zeros(20001), np.zeros(20001)]).tolist()
    with pytest.raises(QueryError, match="points"):
        profile_points(rows)


def test_find_over_the_websocket_with_a_huge_span_gets_an_error(tmp_path: Path):
    db = connect(tmp_path / "lib.sqlite")
    traj = np.zeros((240, 4), np.float32)
    store(db, SongRecord(str(tmp_path / "a.flac"), 1, 1, "m 1", 120.0, 0.5, traj))
    db.close()
    service = LibraryService(tmp_path / "lib.sqlite", like_seconds=0)
    service.open()
    server = WebSocketServer("127.0.0.1", 0, hello={"type": "hello", "protocol": 1, "hop": 0.5}, library=service)
    server.start()
    client = WsClient(server.url)
    try:
        before = rss_kb(os.getpid())
        client.ws.send(json.dumps({"type": "find", "profile": [[0, 0, 0], [1e8, 0.5, 0.5]], "match": "segment"}))
        wait_for(lambda: any(m["type"] == "error" for m in client.messages), 10, "the error answer")
        err = next(m for m in client.messages if m["type"] == "error")
        assert err["error"] == "bad_find" and "span" in err["message"]
        assert (rss_kb(os.getpid()) - before) / 1024 < 50
    finally:
        client.close()
        server.close()
        service.close()
