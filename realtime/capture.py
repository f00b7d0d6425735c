"""Audio sources for ``emotrack live``: a sound-card input and a file played as if live.

Threads: the PortAudio callback (``DeviceSource``) or the file player thread
(``FileSource``) only writes into a :class:`BlockRing`; the worker thread reads it. A
``DeviceSource`` also runs a small supervisor thread that notices a lost device and opens
it again when it comes back.

The ring is bounded: when it is full the newest block is dropped and counted, and the gap
is recorded so the worker keeps stream time true across it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AudioDecodeError, read_blocks


class DeviceError(Exception):
    """No usable input device: missing, busy, unsupported settings, no PortAudio."""


@dataclass
class Chunk:
    """Audio read from the ring: ``data`` (frames, channels) made of blocks whose cumulative
    ends (in samples) are ``ends`` and whose arrival times (perf_counter seconds, when the
    block reached the ring) are ``times``; ``gap`` samples are missing before it, and
    ``reset`` says the source changed (a device came back) so recurrent state is stale."""

    data: np.ndarray
    ends: np.ndarray
    times: np.ndarray
    gap: int = 0
    reset: bool = False

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

    def __init__(self, seconds: float, sample_rate: int, channels: int, block_frames: int = 1024):
        self.block_frames = int(block_frames)
        self.slots = max(4, int(np.ceil(seconds * sample_rate / self.block_frames)))
        self.channels = int(channels)
        self._data = np.zeros((self.slots, self.block_frames, self.channels), dtype=np.float32)
        self._len = np.zeros(self.slots, dtype=np.int64)
        self._time = np.zeros(self.slots, dtype=np.float64)
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

    def write(self, block: np.ndarray, arrival: float) -> None:
        """Producer side: copy ``block`` (frames, channels) in, or count what does not fit."""
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
        first = (0, False)

        def flush() -> None:
            data = np.concatenate(parts)
            ends = np.cumsum([len(x) for x in parts])
            chunks.append(Chunk(data, ends, np.asarray(times), first[0], first[1]))

        for k in range(self._r, self._r + n):
            i = k % self.slots
            if parts and (self._gap[i] or self._reset[i]):
                flush()
                parts, times = [], []
            if not parts:
                first = (int(self._gap[i]), bool(self._reset[i]))
            parts.append(self._data[i, : self._len[i]].copy())
            times.append(float(self._time[i]))
        if parts:
            flush()
        self._r += n
        return chunks


# --------------------------------------------------------------------------- devices


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as e:  # the wheel has no PortAudio on Linux
        raise DeviceError(
            f"PortAudio is not available ({e}). On Debian/Ubuntu: apt-get install libportaudio2; "
            "or play a file with --input FILE"
        ) from e
    return sd


def list_input_devices() -> list[dict]:
    """Input devices as PortAudio sees them: index, name, channels, default rate, host API."""
    sd = _sounddevice()
    apis = sd.query_hostapis()
    out = []
    try:
        default_in = sd.default.device[0]
    except Exception:
        default_in = -1
    for d in sd.query_devices():
        if d["max_input_channels"] > 0:
            out.append({
                "index": d["index"], "name": d["name"], "channels": d["max_input_channels"],
                "sample_rate": d["default_samplerate"], "hostapi": apis[d["hostapi"]]["name"],
                "default": d["index"] == default_in,
            })
    return out


def describe_devices(devs: list[dict]) -> str:
    if not devs:
        return "no input devices"
    return ", ".join(f"{d['index']} {d['name']!r}" for d in devs)


def resolve_device(spec: str | int | None) -> dict:
    """``--device``: an index, or a case-insensitive substring of a name; None = default."""
    devs = list_input_devices()
    if not devs:
        raise DeviceError(
            "no audio input device found. Connect a microphone or line input (on Linux check "
            "that PulseAudio/PipeWire runs: pactl info), or play a file with --input FILE"
        )
    if spec is None:
        for d in devs:
            if d["default"]:
                return d
        return devs[0]
    s = str(spec).strip()
    if s.lstrip("-").isdigit():
        for d in devs:
            if d["index"] == int(s):
                return d
        raise DeviceError(f"input device {s} not found; available input devices: "
                          f"{describe_devices(devs)}. Use --device INDEX or a part of the name "
                          "(emotrack devices lists them)")
    exact = [d for d in devs if d["name"].lower() == s.lower()]
    if exact:
        return exact[0]
    hits = [d for d in devs if s.lower() in d["name"].lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise DeviceError(f"no input device matches {s!r}; available input devices: "
                          f"{describe_devices(devs)}. Use --device INDEX or a part of the name")
    raise DeviceError(f"{s!r} matches several input devices: {describe_devices(hits)}; "
                      "give the index or a longer part of the name")


def _explain_portaudio(e: Exception, dev: dict, sample_rate: int) -> str:
    msg = str(e)
    code = msg.split("[PaErrorCode ")[-1].split("]")[0] if "PaErrorCode" in msg else ""
    what = f"input device {dev['index']} {dev['name']!r}"
    if code == "-9985" or "busy" in msg.lower() or "unavailable" in msg.lower():
        return (f"{what} is busy (another program holds it): close that program, or pick "
                "another device with --device (emotrack devices lists them)")
    if code in ("-9997", "-9996") or "sample rate" in msg.lower():
        return (f"{what} does not accept {sample_rate} Hz: pass --samplerate with one it "
                f"supports (its default is {dev['sample_rate']:.0f} Hz)")
    if code == "-9998" or "channels" in msg.lower():
        return f"{what} does not offer that many channels (it has {dev['channels']}): pass --channels 1"
    return f"cannot open {what}: {msg}. Check that it is connected, or pick another with --device"


class Source:
    """What the worker needs from any source."""

    kind = "source"
    ring: BlockRing
    sample_rate: int
    channels: int
    name: str

    def __init__(self) -> None:
        self.events: list[dict] = []  # status events (appended by source threads, popped by the worker)
        self._events_lock = threading.Lock()
        self.finished = threading.Event()  # no more audio will come (end of a file)
        self._state = "stopped"

    def _event(self, event: str, message: str) -> None:
        with self._events_lock:
            self.events.append({"event": event, "message": message})
        self.ring.wake.set()

    def pop_events(self) -> list[dict]:
        with self._events_lock:
            ev, self.events = self.events, []
        return ev

    @property
    def state(self) -> str:
        return self._state

    def _finish(self, state: str) -> None:
        """No more audio: tell the worker (it drains the ring, then ends)."""
        self._state = state
        self.finished.set()
        self.ring.wake.set()

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name, "sample_rate": self.sample_rate,
                "channels": self.channels}

    def start(self) -> None: ...

    def stop(self) -> None: ...


class DeviceSource(Source):
    """A sound-card input through a sounddevice ``InputStream``.

    The callback copies into the ring and nothing else. A supervisor thread watches the
    stream: when PortAudio ends it (device unplugged, server gone) or no audio arrives for
    ``stall_seconds``, it reports ``device_lost``, then tries to open the same device again
    every ``retry_seconds`` and reports ``device_resumed`` when audio flows again. Stream
    time counts the outage as a gap.
    """

    kind = "device"

    def __init__(self, device: str | int | None = None, sample_rate: int | None = None,
                 channels: int | None = None, blocksize: int | None = None,
                 ring_seconds: float = 10.0, retry_seconds: float = 1.0,
                 stall_seconds: float = 3.0):
        super().__init__()
        self.dev = resolve_device(device)
        self.name = self.dev["name"]
        self.sample_rate = int(sample_rate or self.dev["sample_rate"])
        self.channels = int(channels or min(2, self.dev["channels"]))
        self.blocksize = int(blocksize or max(64, round(self.sample_rate * 0.01)))  # 10 ms
        self.ring = BlockRing(ring_seconds, self.sample_rate, self.channels, self.blocksize)
        self.retry_seconds, self.stall_seconds = retry_seconds, stall_seconds
        self._stream = None
        self._ended = threading.Event()  # PortAudio finished the stream by itself
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.losses = 0
        self._last_callback = 0.0

    def _callback(self, indata, frames, time_info, status) -> None:
        self._last_callback = time.perf_counter()
        self.ring.write(indata, self._last_callback)

    def _open(self) -> None:
        sd = _sounddevice()
        self._ended.clear()
        try:
            stream = sd.InputStream(
                device=self.dev["index"], samplerate=self.sample_rate, channels=self.channels,
                blocksize=self.blocksize, dtype="float32", callback=self._callback,
                finished_callback=self._ended.set,
            )
            stream.start()
        except sd.PortAudioError as e:
            raise DeviceError(_explain_portaudio(e, self.dev, self.sample_rate)) from e
        self._stream = stream
        self._opened_at = time.perf_counter()
        self._last_callback = 0.0

    def _close(self) -> None:
        s, self._stream = self._stream, None
        if s is not None:
            try:
                s.abort(ignore_errors=True)
                s.close(ignore_errors=True)
            except Exception:
                pass

    def start(self) -> None:
        self._open()
        self._state = "running"
        self._supervisor = threading.Thread(target=self._supervise, name="emotrack-device", daemon=True)
        self._supervisor.start()

    def _stalled(self) -> bool:
        last = self._last_callback or self._opened_at
        # the first callback of a stream can take ~1.5 s; allow more before the first one
        limit = self.stall_seconds if self._last_callback else self.stall_seconds + 2.0
        return time.perf_counter() - last > limit

    def _supervise(self) -> None:
        while not self._stop.wait(0.1):
            if self._state == "running" and (self._ended.is_set() or self._stalled()):
                lost_at = gap_from = time.perf_counter()
                self.losses += 1
                self._state = "lost"
                self._close()
                self._event("device_lost", f"input device {self.name!r} stopped delivering audio "
                            f"(unplugged or its server went away); retrying every {self.retry_seconds:g} s")
            if self._state == "lost" and self._stop.wait(self.retry_seconds) is False:
                # the outage so far is a gap; marked while no stream writes to the ring
                now = time.perf_counter()
                self.ring.mark_gap(round((now - gap_from) * self.sample_rate), reset=True)
                gap_from = now
                try:
                    self._refresh()
                    self._open()
                except DeviceError:
                    continue
                self._state = "running"
                self._event("device_resumed", f"input device {self.name!r} is back; "
                            f"{now - lost_at:.1f} s of audio were missed")

    def _refresh(self) -> None:
        """Re-scan PortAudio's device list (it is read once at initialisation), so a device
        that came back under another index is found by the name it had."""
        sd = _sounddevice()
        try:  # only while our stream is closed: it is, during an outage
            sd._terminate()
            sd._initialize()
        except Exception:
            pass
        devs = [d for d in list_input_devices() if d["name"] == self.dev["name"]]
        if not devs:
            raise DeviceError(f"input device {self.name!r} is not there")
        self.dev = devs[0]

    def stop(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        self._close()
        self._finish("stopped")


class FileSource(Source):
    """Plays an audio file into the ring as if it were a sound card.

    Blocks of ``block_seconds`` arrive at real time (``fast=False``, an absolute schedule
    so there is no drift; a slow worker then overflows the ring like a real device would) or
    as fast as the worker takes them (``fast=True``: the player waits for free space and
    nothing is dropped). ``loop`` starts again at the end (the stream time goes on).
    """

    kind = "file"

    def __init__(self, path: str | Path, fast: bool = False, loop: bool = False,
                 block_seconds: float = 0.01, ring_seconds: float = 10.0):
        super().__init__()
        self.path = Path(path)
        sr, ch, blocks = read_blocks(self.path, blocksize=1)  # opens and validates the file
        blocks.close()
        self.name = str(self.path)
        self.sample_rate, self.channels = sr, ch
        self.fast, self.loop = fast, loop
        self.blocksize = max(1, round(sr * block_seconds))
        self.ring = BlockRing(ring_seconds, sr, ch, self.blocksize)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None

    def start(self) -> None:
        self._state = "running"
        self._thread = threading.Thread(target=self._play, name="emotrack-file", daemon=True)
        self._thread.start()

    def _play(self) -> None:
        t0 = time.perf_counter()
        played = 0
        try:
            while not self._stop.is_set():
                _, _, blocks = read_blocks(self.path, blocksize=self.blocksize)
                for block in blocks:
                    if self._stop.is_set():
                        return
                    if self.fast:
                        while self.ring.free_slots() < 1 and not self._stop.is_set():
                            time.sleep(0.0005)
                    else:
                        due = t0 + (played + len(block)) / self.sample_rate
                        delay = due - time.perf_counter()
                        if delay > 0 and self._stop.wait(delay):
                            return
                    self.ring.write(block, time.perf_counter())
                    played += len(block)
                if not self.loop:
                    break
        except AudioDecodeError as e:
            self.error = e
            self._event("source_error", str(e))
        finally:
            self._finish("ended")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._finish("stopped")
