"""200 WebSocket clients at 10 predictions a second for a minute, on loopback, with the real
model: 180 read everything, 10 never read, 10 reset their connection again and again."""

from __future__ import annotations


def test_200_clients_for_a_minute(model):
    from emotrack.realtime.bench.load import describe, run_load

    r = run_load(model, clients=200, stuck=10, abrupt=10, seconds=60.0, hop=0.1)
    print(describe(r))
    assert r["finished"] and r["frames"] == 596  # frame ends 0.5, 0.6, ..., 60.0
    # every healthy client got every frame, in order
    assert r["healthy_errors"] == [] and r["healthy_complete"] == r["healthy"] == 180, r["worst_healthy"]
    # the bad clients really were bad, and the stuck ones were dropped
    assert r["stuck_connected"] == 10 and r["stuck_dropped"] == 10
    assert r["abrupt_cycles"] > 100 and r["sink_errors"] == 0
    # the worker kept within its budget: a prediction handed over well before the next is due
    assert r["worker"]["p99_ms"] < 0.5 * r["hop"] * 1000, r["worker"]
    # memory is bounded: no growth with time beyond allocator noise
    assert r["rss_growth_mb"] < 10, r["rss_every_5s_mb"]
