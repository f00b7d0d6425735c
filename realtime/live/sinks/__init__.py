"""Where predictions go: the window (gui), stdout (printer), a file (recorder), OSC, LSL,
and the WebSocket server (``emotrack.realtime.net.server``), all with one interface.

Every method of a sink is called on the worker thread and must return at once: each
sink has its own backpressure policy (window: latest only; stdout: drop and count; file:
never drop, report lag; OSC: drop the datagram; WebSocket: skip, then drop, a slow
client) and does anything slow on a thread of its own.
"""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    def frame(self, msg: dict, text: str) -> None:
        """A prediction: the ``frame`` message and its JSON text (encoded once for all sinks)."""

    def status(self, msg: dict, text: str) -> None:
        """A ``status`` event (device lost or resumed, end of input, an error)."""

    def close(self) -> None:
        """The run is over: flush, join the sink's own thread, release its resources."""
