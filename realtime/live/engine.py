"""The live worker: ring buffer -> Tracker (resample, frame, log-mel, model) -> sinks.

Threads: one thread (``emotrack-worker``) does all the computing. It hands every
prediction to the sinks as a ready dict and its JSON text; each sink applies its own
backpressure policy (see ``sinks``), so no sink can stall it, and it never prints: a
failing sink becomes a ``sink_error`` status event (the printer sink writes those to
stderr on its own thread). ``start``/``stop`` run on the main thread; ``report`` and
``hello`` are read from the WebSocket loop's thread, and only read values the worker
replaces whole.

For every prediction the worker measures the latency from the moment the frame's last
sample reached the ring buffer to the moment the prediction is handed over, and about
once a second it publishes a summary of the recent latencies (``latency_summary``), which
the window and the status lines read instead of computing it themselves.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np
from emotrack import __version__

from .. import protocol
from ..core.model import EmotionModel
from ..core.timing import timing_summary
from ..core.tracker import Prediction, Tracker
from .sinks import Sink
from .sources import Source

SUMMARY_EVERY = 1.0  # seconds of wall time between latency summaries
SINK_ERRORS_REPORTED = 5  # the first failures of sinks become status events; the rest are counted


class LatencyStats:
    """The last ``n`` latencies (seconds) in a fixed array: bounded however long it runs.
    Written by the worker only."""

    def __init__(self, n: int = 65536):
        self._a = np.zeros(n, dtype=np.float64)
        self.count = 0
        self.first: float | None = None

    def add(self, x: float) -> None:
        if self.first is None:
            self.first = x
        self._a[self.count % len(self._a)] = x
        self.count += 1

    def values(self) -> np.ndarray:
        return self._a[: min(self.count, len(self._a))].copy()

    def summary(self) -> dict:
        """The recent latencies summarised (:func:`timing_summary`), with the total count
        and the first prediction's latency."""
        if self.count == 0:
            return {"count": 0}
        return {"count": self.count, **timing_summary(self.values() * 1000), "first_ms": round(self.first * 1000, 3)}


class LiveEngine:
    """Runs ``source`` through ``model`` on a worker thread and feeds ``sinks``.

    ``start()`` starts the source and the worker; ``stop()`` stops both, closes every sink
    and joins every thread it started. ``done`` is set when the input ended (a file
    finished, ``duration`` reached) or the worker failed (``error``).
    """

    def __init__(self, model: EmotionModel, source: Source, hop: float | None = None,
                 sinks: Iterable[Sink] = (), duration: float | None = None,
                 counters: dict[str, Callable[[], int]] | None = None):
        self.model, self.source = model, source
        self.tracker = Tracker(model, source.sample_rate, hop=hop)  # validates hop early
        self.hop = self.tracker.hop_samples / model.features.sample_rate
        self.sinks = list(sinks)
        self.duration = duration
        self.counters = dict(counters or {})
        self.seq = 0
        self.run_id = os.urandom(6).hex()  # tells clients that reconnect whether seq started over
        self.latency = LatencyStats()
        self.latency_summary: dict = {"count": 0}  # published by the worker about once a second
        self._summary_due = 0.0
        self.last: dict | None = None
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.sink_errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._ended = False  # end_of_input (or --duration) was told

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.model.warm_up()  # the first onnxruntime run allocates; now, so that the first real frame is fast
        self.source.start()
        self._thread = threading.Thread(target=self._run, name="emotrack-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the source and the worker, close all sinks; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()  # first: the worker must not take the source's stopping for an end of input
        self.source.stop()
        self.source.ring.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if not self._ended and not self._thread.is_alive():  # the worker is gone: this thread may tell the sinks
                self._emit_status("stopped", "emotrack live was stopped")
        self.close_errors = []
        for s in self.sinks:
            try:
                s.close()
            except Exception as e:  # one sink failing to close must not keep the others open
                self.close_errors.append(f"closing {type(s).__name__} failed: {e}")
        self.latency_summary = self.latency.summary()
        self.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        ring, src = self.source.ring, self.source
        try:
            while not self._stop.is_set():
                ring.wake.clear()
                self._forward_events()
                chunks = ring.read()
                if not chunks:
                    if src.finished.is_set() and ring.free_slots() == ring.slots:
                        self._forward_events()
                        if src.state == "ended" and not self._stop.is_set():
                            self._ended = True
                            self._emit_status("end_of_input", f"{src.name}: end of input")
                        break
                    ring.wake.wait(0.1)
                    continue
                for ch in chunks:
                    if ch.gap or ch.reset:
                        self.tracker.skip(ch.gap, reset_state=ch.reset)
                    data = ch.data
                    if self.duration is not None:  # not one sample past --duration
                        left = round(self.duration * self.source.sample_rate) - self.tracker.input_samples
                        data = data[: max(0, left)]
                    start = self.tracker.input_samples
                    for p in self.tracker.push(data):
                        # the frame's last input sample, when it reached the ring and when it was captured
                        last = round(p.t * self.source.sample_rate) - 1 - start
                        self._emit(p, ch.arrival_of(last), ch.capture_of(last, self.source.sample_rate))
                    if self.duration is not None and self.tracker.stream_seconds >= self.duration:
                        self._ended = True
                        self._emit_status("end_of_input", f"--duration {self.duration:g} s reached")
                        self._stop.set()
                        break
        except BaseException as e:  # report, keep the sinks alive; stop() still cleans up
            self.error = e
            self._emit_status("error", f"worker failed: {type(e).__name__}: {e}")
        finally:
            self.done.set()

    def _forward_events(self) -> None:
        for ev in self.source.pop_events():
            self._emit_status(ev["event"], ev["message"])

    def counters_now(self) -> dict:
        ring = self.source.ring
        c = {"overflows": ring.overflows,
             "dropped_seconds": round(ring.dropped_samples / self.source.sample_rate, 3),
             "device_losses": getattr(self.source, "losses", 0)}
        for k, f in self.counters.items():
            try:
                c[k] = int(f())
            except Exception:
                pass
        return c

    def hello(self) -> dict:
        """The first message every WebSocket client gets: what it is listening to."""
        m = self.model
        return protocol.hello(self.run_id, f"emotrack {__version__}", m.name, m.version, self.hop, m.features.frame_seconds,
                              m.features.sample_rate, self.source.describe(),
                              dict(zip(m.descriptor_names, m.descriptor_typical.tolist(), strict=True)) or None)

    def serve(self, server) -> None:
        """Let a WebSocket ``server`` describe this engine: its hello, status reports on
        request and the client counts in the counters. (Add it to ``sinks`` as well.)"""
        server.hello = self.hello()
        server.report = self.report
        self.counters["clients"] = lambda: server.client_count
        self.counters["clients_dropped"] = lambda: server.dropped_clients

    def report(self) -> dict:
        """The answer to a client's ``{"type": "status"}`` (called from the server's thread:
        it only reads values the worker writes whole)."""
        src, last = self.source, self.last
        lat = self.latency_summary
        return {"message": f"{src.kind} {src.name!r}: {src.state}", "state": src.state,
                "t": round(self.tracker.stream_seconds, 4), "frames": self.seq,
                "last_seq": last["seq"] if last else None,
                "latency_ms": {k: lat[k] for k in ("median_ms", "p99_ms", "max_ms") if k in lat},
                "counters": self.counters_now()}

    def _emit(self, p: Prediction, arrival: float, capture: float = float("nan")) -> None:
        now = time.perf_counter()
        latency = now - arrival
        self.latency.add(latency)
        desc = dict(zip(self.model.descriptor_names, p.descriptors, strict=True)) if p.descriptors else None
        msg = protocol.frame(self.seq, p.t, p.valence, p.arousal, p.valence_std, p.arousal_std, latency * 1000,
                             self.counters_now(), desc,
                             adc_latency_ms=(now - capture) * 1000 if math.isfinite(capture) else None)
        self.seq += 1
        self.last = msg
        text = protocol.dumps(msg)
        failed = []
        for s in self.sinks:
            try:
                s.frame(msg, text)
            except Exception as e:  # a broken sink is reported, never allowed to stop the worker
                failed.append((s, e))
        if now >= self._summary_due:  # after the hand-over: the frame never waits for it
            self._summary_due = now + SUMMARY_EVERY
            self.latency_summary = self.latency.summary()
        for s, e in failed:
            self._sink_failed(s, e)

    def _emit_status(self, event: str, message: str) -> None:
        msg = protocol.status(event, message, self.tracker.stream_seconds, self.counters_now())
        text = protocol.dumps(msg)
        for s in self.sinks:
            try:
                s.status(msg, text)
            except Exception as e:
                self._sink_failed(s, e)

    def _sink_failed(self, sink, e: Exception) -> None:
        self.sink_errors += 1
        if self.sink_errors <= SINK_ERRORS_REPORTED:
            note = "" if self.sink_errors < SINK_ERRORS_REPORTED else "; further sink failures are only counted"
            self._emit_status("sink_error", f"{type(sink).__name__} failed: {type(e).__name__}: {e}{note}")
