"""``--record PATH``: every prediction to a JSONL or CSV file (by extension).

Threads: the worker calls :meth:`Recorder.frame`, which only enqueues; the ``emotrack-rec``
thread writes and flushes each line, so nothing already predicted is lost on Ctrl-C or a
crash of the process. Policy: never drop; if the queue grows (a slow disk) the writer
thread reports the lag on stderr once, and ``lag`` says how far behind it is.
"""

from __future__ import annotations

import csv
import errno
import io
import queue
import sys
import threading
from pathlib import Path

from ... import protocol

FIELDS = list(protocol.RECORD_FIELDS)
_STOP = object()


class RecorderError(Exception):
    """The record file cannot be created."""


class Recorder:
    def __init__(self, path: str | Path, overwrite: bool = False, lag_warning: int = 100):
        self.path = Path(path)
        self.format = "csv" if self.path.suffix.lower() == ".csv" else "jsonl"
        if self.path.exists() and not overwrite:
            raise RecorderError(f"{self.path} already exists; choose another file name or pass "
                                "--overwrite (a recording is never replaced silently)")
        if self.path.is_dir():
            raise RecorderError(f"{self.path} is a directory; give a file name such as {self.path / 'run.jsonl'}")
        if not self.path.parent.exists():
            raise RecorderError(f"folder {self.path.parent} does not exist; create it first")
        self._good = 0  # bytes of whole lines in the file
        try:
            self._f = open(self.path, "wb", buffering=0)  # noqa: SIM115  (one raw write per line)
            if self.format == "csv":
                self._write(self._csv_line(FIELDS))
        except OSError as e:
            raise RecorderError(f"cannot write {self.path}: {e.strerror or e}") from e
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self.written = 0
        self.lag_warning = lag_warning
        self.error: Exception | None = None
        self._warned = False
        self._closed = False
        self._thread = threading.Thread(target=self._write_loop, name="emotrack-rec", daemon=True)
        self._thread.start()

    @property
    def lag(self) -> int:
        """Predictions handed over but not yet written."""
        return self._q.qsize()

    def frame(self, msg: dict, text: str) -> None:
        if not self._closed:
            self._q.put(msg)

    def status(self, msg: dict, text: str) -> None:
        pass

    def _write_loop(self) -> None:
        while True:
            m = self._q.get()
            if m is _STOP:
                break
            if self.error is not None:
                continue
            if not self._warned and self._q.qsize() > self.lag_warning:
                self._warned = True
                print(f"emotrack: recorder is {self._q.qsize()} predictions behind writing "
                      f"{self.path} (slow disk?); nothing is dropped", file=sys.stderr)
            try:
                if self.format == "csv":
                    self._write(self._csv_line([m.get(k, "") for k in FIELDS]))
                else:
                    self._write((protocol.dumps(protocol.record(m)) + "\n").encode())
                self.written += 1
            except OSError as e:  # disk full, file system gone: say so once, keep the rest running
                self.error = e
                print(f"emotrack: recording to {self.path} stopped: {e.strerror or e}; it holds the "
                      f"{self.written} predictions written before, each a whole line", file=sys.stderr)

    @staticmethod
    def _csv_line(row) -> bytes:
        buf = io.StringIO()
        csv.writer(buf).writerow(row)
        return buf.getvalue().encode()

    def _write(self, data: bytes) -> None:
        """One whole line, or nothing: a write that fails part-way (a full disk) is cut off
        again, so the file always ends with the last complete line."""
        done = 0
        try:
            while done < len(data):
                n = self._f.write(memoryview(data)[done:])
                if not n:
                    raise OSError(errno.ENOSPC, "no space left on device")
                done += n
        except OSError:
            try:
                self._f.truncate(self._good)
                self._f.seek(self._good)
            except OSError:
                pass
            raise
        self._good += len(data)

    def close(self) -> None:
        """Write everything queued, then close the file (the thread is joined)."""
        if self._closed:
            return
        self._closed = True
        self._q.put(_STOP)
        self._thread.join(timeout=30)
        try:
            self._f.close()
        except OSError:
            pass
