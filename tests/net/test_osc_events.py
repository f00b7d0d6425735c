"""OSC that professionals can rely on: status events at documented addresses, broadcast
addresses (SO_BROADCAST), stream time as a 64-bit float, dropped datagrams counted."""

from __future__ import annotations

import threading

from emotrack.realtime.live.engine import LiveEngine
from emotrack.realtime.live.sinks.osc import OscSink
from emotrack.realtime.live.sources import FileSource
from emotrack.realtime.live.status import status_parts
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer

from ..conftest import wait_for


def _server(host="127.0.0.1"):
    got: dict[str, list] = {}
    disp = Dispatcher()
    disp.set_default_handler(lambda addr, *a: got.setdefault(addr, []).append(a))
    osc = ThreadingOSCUDPServer((host, 0), disp)
    threading.Thread(target=osc.serve_forever, daemon=True).start()
    return osc, got


def test_status_events_and_double_time_over_broadcast(model, demo_path):
    osc, got = _server("0.0.0.0")  # a broadcast reaches sockets bound to every interface
    sink = OscSink(f"127.255.255.255:{osc.server_address[1]}")  # the loopback network's broadcast address
    engine = LiveEngine(model, FileSource(demo_path, fast=True), sinks=[sink], duration=3.0)
    try:
        engine.start()
        assert engine.wait(30)
        engine.stop()
        wait_for(lambda: "/emotrack/event/stopped" in got or "/emotrack/event/end_of_input" in got, 5,
                 "the status events")
    finally:
        osc.shutdown()
    assert [a[0] for a in got["/emotrack/seq"]] == list(range(6))
    assert got["/emotrack/event/end_of_input"] == [("--duration 3 s reached",)]
    assert ("end_of_input", "--duration 3 s reached") in got["/emotrack/status"]
    ts = [a[0] for a in got["/emotrack/t"]]
    assert ts == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0] and all(isinstance(t, float) for t in ts)
    assert sink.dropped == 0 and sink.sent > 0


def test_a_week_of_stream_time_keeps_its_precision():
    osc, got = _server()
    sink = OscSink(f"127.0.0.1:{osc.server_address[1]}")
    t = 7 * 24 * 3600 + 0.5  # float32 resolves only 0.06 s here; a double keeps the half second
    try:
        sink.frame({"seq": 1, "t": t, "wall": 0.0, "valence": 0.1, "arousal": 0.2, "valence_std": 0.3,
                    "arousal_std": 0.3}, "")
        wait_for(lambda: "/emotrack/t" in got, 5, "/emotrack/t")
    finally:
        osc.shutdown()
        sink.close()
    assert got["/emotrack/t"][0][0] == t  # exact: a double carries this value unchanged


class _FullSocket:
    """A socket whose send buffer is always full (sendto raises EAGAIN), as on a saturated link."""

    def sendto(self, data, addr):
        raise BlockingIOError(11, "Resource temporarily unavailable")

    def close(self):
        pass


def test_dropped_datagrams_are_counted_and_shown(model, demo_path):
    sink = OscSink("127.0.0.1:9")
    sink._sock.close()
    sink._sock = _FullSocket()
    engine = LiveEngine(model, FileSource(demo_path, fast=True), sinks=[sink], duration=3.0)
    engine.counters["osc_dropped"] = lambda: sink.dropped
    engine.start()
    assert engine.wait(30)
    parts = status_parts(engine)
    engine.stop()
    assert sink.dropped >= 6 * 6 and sink.sent == 0
    assert engine.last["counters"]["osc_dropped"] > 0 and any(p.startswith("OSC dropped") for p in parts)
