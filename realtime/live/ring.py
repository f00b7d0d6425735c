"""The bounded buffer between the audio thread and the worker.

Threads: the producer is the PortAudio callback (a device) or the file player thread (a
file); the consumer is the worker. ``write`` never allocates, blocks, locks or logs: when
the ring is full the block is dropped and counted, and the gap is recorded so that the
worker keeps stream time true across it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

MAX_BYTES = 64 * 1024 * 1024  # the most audio a ring holds, whatever the channel count


@dataclass
class Chunk:
    """Audio read from the ring: ``data`` (frames, channels) made of blocks whose cumulative
    ends (in samples) are ``ends`` and whose arrival times (perf_counter seconds, when the
    block reached the ring) are ``times``; ``gap`` samples are missing before it, and
    ``reset`` says the source changed (a device came back) so recurrent state is stale.
    ``captures``: when each block's last sample was captured by the converter (the same
    clock; NaN where the source does not say), from PortAudio's timing."""

    data: np.ndarray
    ends: np.ndarray
    times: np.ndarray
    gap: int = 0
    reset: bool = False
    captures: np.ndarray | None = None

    def capture_of(self, sample: int, sample_rate: int) -> float:
        """When sample ``sample`` (within this chunk) was captured; NaN if unknown."""
        if self.captures is None:
            return float("nan")
        i = min(int(np.searchsorted(self.ends, sample + 1, side="left")), len(self.ends) - 1)
        return float(self.captures[i] - (self.ends[i] - 1 - sample) / sample_rate)

    def arrival_of(self, sample: int) -> float:
        """When sample number ``sample`` (0-based, within this chunk) reached the ring."""
        i = int(np.searchsorted(self.ends, sample + 1, side="left"))
        return float(self.times[min(i, len(self.times) - 1)])


class BlockRing:
    """Single-producer, single-consumer ring of preallocated audio blocks.

    ``write`` (the audio thread) copies into a free slot and never allocates, blocks or
    logs; when no slot is free it drops the block and counts it (``overflows`` blocks,
    ``dropped_samples`` samples). ``read`` (the worker) returns what is there. Indices only
    grow, and each is written by one side only, so no lock is needed.
    """

    def __init__(self, seconds: float, sample_rate: int, channels: int, block_frames: int = 1024,
                 max_bytes: int = MAX_BYTES):
        self.block_frames = int(block_frames)
        self.channels = int(channels)
        # sized in seconds, capped in bytes: many channels shorten the buffer, never blow memory up
        slot_bytes = self.block_frames * self.channels * 4
        self.slots = max(4, min(int(np.ceil(seconds * sample_rate / self.block_frames)), max_bytes // slot_bytes))
        self._data = np.zeros((self.slots, self.block_frames, self.channels), dtype=np.float32)
        self._len = np.zeros(self.slots, dtype=np.int64)
        self._time = np.zeros(self.slots, dtype=np.float64)
        self._capture = np.full(self.slots, np.nan, dtype=np.float64)
        self._gap = np.zeros(self.slots, dtype=np.int64)
        self._reset = np.zeros(self.slots, dtype=bool)
        self._w = 0  # slots written: only the producer changes it
        self._r = 0  # slots read: only the consumer changes it
        self._pending_gap = 0
        self._pending_reset = False
        self.overflows = 0
        self.dropped_samples = 0
        self.written_samples = 0
        self.wake = threading.Event()

    def free_slots(self) -> int:
        return self.slots - (self._w - self._r)

    def mark_gap(self, samples: int, reset: bool = False) -> None:
        """Producer side, while no audio is being written: ``samples`` were never captured
        (e.g. the device was away)."""
        self._pending_gap += int(samples)
        self._pending_reset = self._pending_reset or reset

    def note_overrun(self) -> None:
        """Producer side: the driver reported lost input (an overrun) before this block."""
        self.overflows += 1

    def write(self, block: np.ndarray, arrival: float, first_capture: float = float("nan"),
              sample_rate: int = 0) -> None:
        """Producer side: copy ``block`` (frames, channels) in, or count what does not fit.
        ``first_capture``: when its first sample was captured (NaN: unknown)."""
        n = len(block)
        off = 0
        while off < n:
            if self._w - self._r >= self.slots:
                lost = n - off
                self.overflows += 1
                self.dropped_samples += lost
                self._pending_gap += lost
                break
            m = min(n - off, self.block_frames)
            i = self._w % self.slots
            self._data[i, :m] = block[off:off + m]
            self._len[i] = m
            self._time[i] = arrival
            self._capture[i] = first_capture + (off + m - 1) / sample_rate if sample_rate else np.nan
            self._gap[i] = self._pending_gap
            self._reset[i] = self._pending_reset
            self._pending_gap = 0
            self._pending_reset = False
            self._w += 1  # publish the slot after it is filled
            self.written_samples += m
            off += m
        self.wake.set()

    def read(self) -> list[Chunk]:
        """Consumer side: the blocks written so far, merged where no gap separates them."""
        n = self._w - self._r
        chunks: list[Chunk] = []
        parts: list[np.ndarray] = []
        times: list[float] = []
        caps: list[float] = []
        first = (0, False)

        def flush() -> None:
            data = np.concatenate(parts)
            ends = np.cumsum([len(x) for x in parts])
            c = np.asarray(caps)
            chunks.append(Chunk(data, ends, np.asarray(times), first[0], first[1], c if np.isfinite(c).any() else None))

        for k in range(self._r, self._r + n):
            i = k % self.slots
            if parts and (self._gap[i] or self._reset[i]):
                flush()
                parts, times, caps = [], [], []
            if not parts:
                first = (int(self._gap[i]), bool(self._reset[i]))
            parts.append(self._data[i, : self._len[i]].copy())
            times.append(float(self._time[i]))
            caps.append(float(self._capture[i]))
        if parts:
            flush()
        self._r += n
        return chunks
