"""What clients may send (subscribe, status, ping) and what the server does with anything
else: malformed, oversized, flooding and random input never crash it or slow the others."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..conftest import WsClient, schema_validator, start_engine, wait_for


def _exchange(ws, msg, timeout=5.0) -> dict:
    """Send one client message; return the server's answer (frames and events skipped)."""
    ws.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))
    end = time.monotonic() + timeout
    while True:
        m = json.loads(ws.recv(timeout=max(0.01, end - time.monotonic())))
        if _answers(m):
            return m


def _answers(m) -> bool:
    return m["type"] not in ("frame", "hello") and not (m["type"] == "status" and m["event"] != "report")


def _ask(client: WsClient, msg: dict) -> dict:
    """The same as :func:`_exchange`, for a :class:`WsClient` (which reads on its own thread)."""
    n = len(client.messages)
    client.ws.send(json.dumps(msg))
    wait_for(lambda: any(_answers(m) for m in client.messages[n:]), 5, f"the answer to {msg}")
    return next(m for m in client.messages[n:] if _answers(m))


def test_subscribe_decimates_and_picks_fields_status_on_request(model, demo_path):
    from emotrack.realtime.live.sources import FileSource

    engine, server = start_engine(model, FileSource(demo_path, fast=True), [], hop=0.1, duration=10.0)
    full, slow, thin = WsClient(server.url), WsClient(server.url), WsClient(server.url)
    v = schema_validator()
    try:
        # answers, validated; a bad request changes nothing
        a = _ask(slow, {"type": "subscribe", "rate": 2})
        assert a == {"type": "subscribed", "every": 5, "rate": 2.0, "fields": None}
        a = _ask(thin, {"type": "subscribe", "fields": ["valence", "arousal"]})
        assert a == {"type": "subscribed", "every": 1, "rate": 10.0, "fields": ["type", "seq", "t", "valence", "arousal"]}
        bad = _ask(thin, {"type": "subscribe", "fields": ["valence", "/etc/passwd"]})
        assert bad["type"] == "error" and bad["error"] == "bad_subscribe" and "known:" in bad["message"]
        for req, why in [({"every": 0}, "every must be"), ({"rate": -1}, "rate must be"), ({"every": 2, "rate": 1}, "not both"),
                         ({"model": "x.onnx"}, "unknown: model"), ({"every": True}, "every must be")]:
            e = _ask(thin, {"type": "subscribe", **req})
            assert e["error"] == "bad_subscribe" and why in e["message"], (req, e)
            assert not list(v.iter_errors(e))
        report = _ask(full, {"type": "status"})
        assert report["event"] == "report" and report["state"] == "stopped" and report["frames"] == 0
        assert not list(v.iter_errors(report))
        engine.start()
        assert engine.wait(30)
        wait_for(lambda: len(full.frames()) == engine.seq, 5, "every frame at the full client")
        report = _ask(full, {"type": "status"})
    finally:
        engine.stop()
        for c in (full, slow, thin):
            c.close()
    n = engine.seq
    assert n == 96  # 10 s at hop 0.1: frame ends 0.5 ... 10.0
    assert [f["seq"] for f in full.frames()] == list(range(n))
    assert [f["seq"] for f in slow.frames()] == list(range(0, n, 5))
    assert [f["t"] for f in slow.frames()] == [full.frames()[i]["t"] for i in range(0, n, 5)]
    assert [f["seq"] for f in thin.frames()] == list(range(n))
    for f, g in zip(thin.frames(), full.frames(), strict=True):
        assert f == {k: g[k] for k in ("type", "seq", "t", "valence", "arousal")}
        assert not list(v.iter_errors(f))
    assert report["frames"] == n and report["last_seq"] == n - 1 and report["latency_ms"]["median_ms"] > 0
    assert report["counters"]["clients"] == 3


class Feeder:
    """Stands in for the worker: puts a frame every ``period`` seconds into the server."""

    def __init__(self, server, period=0.02):
        self.server, self.period, self.seq = server, period, 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.wait(self.period):
            msg = {"type": "frame", "seq": self.seq, "t": round(0.5 + self.seq * 0.5, 4), "wall": time.time(),
                   "valence": 0.1, "arousal": -0.2, "valence_std": 0.3, "arousal_std": 0.3, "latency_ms": 1.0,
                   "counters": {"overflows": 0, "dropped_seconds": 0.0, "device_losses": 0}}
            self.server.frame(msg, json.dumps(msg, separators=(",", ":")))
            self.seq += 1

    def close(self):
        self.stop.set()
        self.t.join()


@pytest.fixture(scope="module")
def fed_server():
    from emotrack.realtime.net.server import WebSocketServer

    server = WebSocketServer("127.0.0.1", 0, hello={"type": "hello", "protocol": 1, "hop": 0.5})
    server.start()
    healthy = WsClient(server.url)
    feeder = Feeder(server)
    wait_for(lambda: len(healthy.frames()) > 5, 10, "frames at the healthy client")
    yield server, healthy
    feeder.close()
    healthy.close()
    server.close()


def _assert_healthy(server, healthy):
    """The healthy client got every frame since it connected, in order, and the server answers."""
    seqs = [f["seq"] for f in healthy.frames()]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert healthy.closed_reason is None
    from websockets.sync.client import connect

    with connect(server.url, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        assert _exchange(ws, {"type": "ping", "id": "still-there"})["id"] == "still-there"


def test_oversized_message_closes_only_that_connection(fed_server):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    server, healthy = fed_server
    with connect(server.url, open_timeout=5, max_size=None) as ws:
        ws.send(json.dumps({"type": "ping", "id": "x" * 5000}))
        with pytest.raises(ConnectionClosed) as e:
            while True:
                ws.recv(timeout=5)
    assert e.value.rcvd.code == 1009  # message too big
    _assert_healthy(server, healthy)


def test_flooding_client_is_limited_then_closed(fed_server):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    server, healthy = fed_server
    got = []
    with connect(server.url, open_timeout=5, max_queue=None) as ws:  # keep every reply until read
        try:
            for i in range(2000):
                ws.send(json.dumps({"type": "ping", "id": i}))
        except ConnectionClosed:  # a slow sender: the server closed before we were done
            pass
        try:  # what arrived before the close is still there to read
            while True:
                got.append(json.loads(ws.recv(timeout=5)))
        except ConnectionClosed as e:
            closed = e.rcvd
    pongs = [m for m in got if m["type"] == "pong"]
    limited = [m for m in got if m["type"] == "error"]
    assert 50 <= len(pongs) < 2000 and limited and limited[0]["error"] == "rate_limited"
    assert closed.code == 1008 and closed.reason == "too many messages"
    _assert_healthy(server, healthy)


# ---------------------------------------------------------------------- property-based
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10), c, max_size=5),
                           max_leaves=20)
client_types = st.sampled_from(["ping", "status", "subscribe", "hello", "frame", "error", "load", "", "PING"])
plausible = st.fixed_dictionaries({"type": client_types}, optional={
    "id": json_values, "every": json_values | st.integers(-5, 20000), "rate": json_values | st.floats(-1, 100),
    "fields": json_values | st.lists(st.sampled_from(["valence", "arousal", "t", "seq", "wall", "x", "counters"])),
    "model": st.text(max_size=20), "path": st.just("/etc/passwd")})
nested = st.integers(1, 4000).map(lambda n: "[" * n + "]" * n) | st.integers(1, 2000).map(lambda n: '{"a":' * n + "1" + "}" * n)
messages = (plausible.map(json.dumps) | json_values.map(json.dumps) | st.text(max_size=300) | st.binary(max_size=300)
            | nested | st.binary(min_size=4097, max_size=6000))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(messages, min_size=1, max_size=4))
def test_random_client_messages_get_an_answer_or_a_close(fed_server, batch):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    server, healthy = fed_server
    v = schema_validator()
    with connect(server.url, open_timeout=5, max_size=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        for msg in batch:
            try:
                answer = _exchange(ws, msg)
            except ConnectionClosed as e:
                size = len(msg.encode() if isinstance(msg, str) else msg)
                assert e.rcvd.code == 1009 and size > 4096, (msg[:80], e.rcvd)
                break
            assert answer["type"] in ("pong", "status", "subscribed", "error"), answer
            assert not list(v.iter_errors(answer)), answer
            assert len(json.dumps(answer)) < 1000
    _assert_healthy(server, healthy)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(min_size=1, max_size=2000), handshake=st.booleans())
def test_random_bytes_on_the_socket(fed_server, junk, handshake):
    """Bytes that are not WebSocket at all, before or after a valid handshake."""
    server, healthy = fed_server
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        if handshake:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        s.sendall(junk)
    except OSError:
        pass  # the server may already have closed on us: fine
    finally:
        s.close()
    _assert_healthy(server, healthy)
