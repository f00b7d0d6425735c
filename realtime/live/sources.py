"""Audio sources for ``emotrack live``: a sound-card input and a file played as if live.

Threads:
- ``DeviceSource``: the PortAudio callback (PortAudio's own thread) checks its status
  flags and copies each block into the :class:`~.ring.BlockRing`; nothing else. A
  supervisor thread (``emotrack-device``) notices a lost device, reopens it when it comes
  back, and is the only one that may block (on PortAudio's open and close).
- ``FileSource``: a player thread (``emotrack-file``) decodes and writes into the ring at
  real time (it sleeps between blocks) or as fast as the worker takes them.
- The worker reads the ring and the sources' status events; ``start``/``stop`` run on the
  main thread.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ..core.audio import AudioDecodeError, read_blocks, to_mono
from .ring import BlockRing


class DeviceError(Exception):
    """No usable input device: missing, busy, unsupported settings, no PortAudio."""


# --------------------------------------------------------------------------- devices


def _sounddevice():
    try:
        import sounddevice as sd  # deferred: it lists PortAudio's devices at import, and fails without libportaudio2
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


def explain_portaudio(e: Exception, dev: dict, sample_rate: int) -> str:
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
        now = self._last_callback = time.perf_counter()
        if status.input_overflow:  # PortAudio lost input before it reached us: an overflow too
            self.ring.note_overrun()
        # PortAudio's timing: how long ago the converter captured the block's first sample
        adc, current = (time_info.inputBufferAdcTime, time_info.currentTime) if time_info is not None else (0, 0)
        first = now - (current - adc) if adc > 0 and current >= adc else float("nan")
        self.ring.write(indata, now, first, self.sample_rate)

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
            raise DeviceError(explain_portaudio(e, self.dev, self.sample_rate)) from e
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
        # the player downmixes before the ring (the worker would anyway): a file with hundreds
        # of channels costs no more memory than a mono one
        self.ring = BlockRing(ring_seconds, sr, 1, self.blocksize)
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
                    mono = to_mono(block)[:, None]
                    if self.fast:
                        # a slot at a time: FFmpeg's decoder hands over blocks longer than a slot
                        # (an AAC frame is 1,024 samples), and one written into a single free
                        # slot overflowed the ring with a busy worker
                        step = self.ring.block_frames
                        for off in range(0, len(mono), step):
                            while self.ring.free_slots() < 1 and not self._stop.is_set():
                                time.sleep(0.0005)
                            if self._stop.is_set():
                                return
                            self.ring.write(mono[off:off + step], time.perf_counter())
                    else:
                        due = t0 + (played + len(block)) / self.sample_rate
                        delay = due - time.perf_counter()
                        if delay > 0 and self._stop.wait(delay):
                            return
                        self.ring.write(mono, time.perf_counter())
                    played += len(block)
                if not self.loop:
                    break
        except AudioDecodeError as e:
            self.error = e
            self._event("source_error", str(e))
        finally:
            self._finish("stopped" if self._stop.is_set() else "ended")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._finish("stopped")
