"""Headless sink: frames as JSON lines on stdout, status events on stderr.

Threads: the worker only enqueues (a bounded queue; when it is full the line is dropped
and counted); the ``emotrack-print`` thread writes, so a stdout that nobody reads cannot
stall the worker.
"""

from __future__ import annotations

import queue
import sys
import threading


class LinePrinter:
    """Headless sink: frames as JSON lines on stdout, status events on stderr.

    A bounded queue and its own thread: a stdout nobody reads cannot stall the worker;
    lines beyond ``maxsize`` are dropped and counted.
    """

    def __init__(self, frames: bool = True, maxsize: int = 1000):
        self.frames = frames
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name="emotrack-print", daemon=True)
        self._thread.start()

    def frame(self, msg: dict, text: str) -> None:
        if self.frames:
            try:
                self._q.put_nowait(("out", text))
            except queue.Full:
                self.dropped += 1

    def status(self, msg: dict, text: str) -> None:
        try:
            self._q.put_nowait(("err", f"emotrack live: [{msg['event']}] {msg['message']}"))
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            stream = sys.stdout if item[0] == "out" else sys.stderr
            try:
                print(item[1], file=stream, flush=True)
            except (BrokenPipeError, ValueError, OSError):  # reader went away: keep running
                self.frames = False

    def close(self) -> None:
        try:
            self._q.put(None, timeout=2)
        except queue.Full:
            pass
        self._thread.join(timeout=5)
