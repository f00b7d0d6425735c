"""``emotrack live`` (main thread).

``live`` runs in three steps:
1. validate: the options alone (no file, socket or thread is made), e.g. ``--fast`` with a
   device, ``--http`` without ``--ws``, an address off loopback without a token;
2. build: the model, the source (a device, a file, or, with neither given, the default
   input device and the bundled demo when there is none), the servers and the sinks, each
   pushed on one ``ExitStack`` so that whatever fails closes everything made before it.
   The recording file is made last, so a run that cannot start leaves none behind;
3. run: start the worker, wait for Ctrl-C, SIGTERM, the window closing or the end of the
   input, and shut everything down: no thread or socket is left behind.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from ..assets import demo_path
from ..console import say
from ..core.audio import AudioDecodeError
from ..core.config import FEATURES
from ..core.model import EmotionModel, ModelError, load_model
from ..core.tracker import check_hop
from ..exitcodes import ExitCode
from ..library.service import LibraryService
from ..library.store import LibraryError
from ..net.access import exposed, exposure
from ..net.address import ServerError, parse_hostport
from ..net.server import WebSocketServer
from .engine import LiveEngine
from .sinks.gui import GuiSink, run_window
from .sinks.lsl import LslError, LslSink
from .sinks.osc import OscSink
from .sinks.printer import LinePrinter
from .sinks.recorder import Recorder, RecorderError
from .sources import DeviceError, DeviceSource, FileSource, Source
from .status import status_parts

HELP = "track a microphone, line input or file live: window + WebSocket"
DESCRIPTION = ("Listens to an input device (or plays a file as if live), draws the trajectory in a window and "
               "broadcasts it over WebSocket (and optionally OSC, LSL, a dashboard). With neither --device nor "
               "--input it listens to the default input device, or plays the bundled demo when there is none.")


def add_arguments(lv: argparse.ArgumentParser) -> None:
    src = lv.add_mutually_exclusive_group()
    src.add_argument("--device", help="input device: index or a part of its name (see `emotrack devices`)")
    src.add_argument("--input", metavar="FILE", help="play an audio file as if it were live input")
    lv.add_argument("--fast", action="store_true", help="with --input: as fast as possible instead of real time")
    lv.add_argument("--loop", action="store_true", help="with --input: start again at the end")
    lv.add_argument("--no-gui", action="store_true", help="no window (installations, servers): JSON lines on stdout")
    lv.add_argument("--ws", default="127.0.0.1:8765", metavar="HOST:PORT",
                    help="WebSocket server address (default 127.0.0.1:8765; 'off' disables it)")
    lv.add_argument("--http", metavar="HOST:PORT",
                    help="serve the browser dashboard here (e.g. 127.0.0.1:8080; same host rules as --ws)")
    lv.add_argument("--db", metavar="PATH", help="a music library (from `emotrack index`): clients and the dashboard "
                    "can search it, and the best matches for the last --like-now seconds are broadcast")
    lv.add_argument("--like-now", type=float, default=20.0, metavar="SECONDS",
                    help="with --db: match the last SECONDS of the live trajectory every 5 s (default 20; 0: off)")
    lv.add_argument("--token", help="clients must present this token (ws://HOST:PORT/?token=...); required off loopback")
    lv.add_argument("--insecure", action="store_true", help="allow listening off loopback without a token")
    lv.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                    help="a browser origin allowed to connect besides this machine's pages (repeatable; '*' for any)")
    lv.add_argument("--osc", metavar="HOST:PORT", help="also send each prediction as OSC over UDP (e.g. 127.0.0.1:9000)")
    lv.add_argument("--osc-prefix", default="/emotrack", help="OSC address prefix (default /emotrack)")
    lv.add_argument("--lsl", nargs="?", const="emotrack", metavar="NAME",
                    help="also publish a Lab Streaming Layer stream (default name emotrack; needs emotrack[lsl])")
    lv.add_argument("--osc-bundle", action="store_true", help="send each prediction as one time-tagged OSC bundle")
    lv.add_argument("--record", metavar="PATH", help="write every prediction to PATH (.jsonl or .csv)")
    lv.add_argument("--overwrite", action="store_true", help="let --record replace an existing file")
    lv.add_argument("--hop", type=float, default=None, help="seconds between outputs: 0.5 (default) down to 0.1")
    lv.add_argument("--model", help="an exported .onnx model (default: the shipped one)")
    lv.add_argument("--duration", type=float, help="stop after this many seconds of audio")
    lv.add_argument("--samplerate", type=int, help="device sample rate (default: the device's own)")
    lv.add_argument("--channels", type=int, help="device channels to capture (default: up to 2, averaged)")
    lv.add_argument("--blocksize", type=int, help="device block in samples (default: 10 ms)")
    lv.add_argument("--ring-seconds", type=float, default=10.0, help="audio buffer between capture and worker")
    lv.add_argument("--trail", type=float, default=10.0, help="seconds of trail in the window")
    lv.add_argument("--quiet", action="store_true", help="headless: no JSON lines or status lines")
    lv.add_argument("--status-every", type=float, default=10.0,
                    help="headless: seconds between status lines on stderr (0: none)")


@dataclass(frozen=True)
class LiveOptions:
    """Everything ``emotrack live`` was asked for (the command line, or a program)."""

    device: str | None = None
    input: str | None = None
    fast: bool = False
    loop: bool = False
    gui: bool = True
    ws: str = "127.0.0.1:8765"
    http: str | None = None
    db: str | None = None
    like_now: float = 20.0
    token: str | None = None
    insecure: bool = False
    allow_origin: list[str] = field(default_factory=list)
    osc: str | None = None
    osc_prefix: str = "/emotrack"
    osc_bundle: bool = False
    lsl: str | None = None
    record: str | None = None
    overwrite: bool = False
    hop: float | None = None
    model: str | None = None
    duration: float | None = None
    samplerate: int | None = None
    channels: int | None = None
    blocksize: int | None = None
    ring_seconds: float = 10.0
    trail: float = 10.0
    quiet: bool = False
    status_every: float = 10.0

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> LiveOptions:
        names = set(cls.__dataclass_fields__) - {"gui"}
        return cls(gui=not a.no_gui, **{k: getattr(a, k.replace("-", "_")) for k in names})

    @property
    def auto(self) -> bool:
        """Neither a device nor a file: the default device, or the demo."""
        return self.input is None and self.device is None


class _Refused(Exception):
    """live cannot start: the message, and the exit code."""

    def __init__(self, message: str, code: ExitCode):
        super().__init__(message)
        self.code = code


def _err(msg: str) -> None:
    say("live", msg)


def run(args: argparse.Namespace) -> int:
    return live(LiveOptions.from_args(args))


def live(o: LiveOptions) -> int:
    """Run ``emotrack live`` with these options until the input ends or it is stopped."""
    try:
        addresses = validate(o)
    except _Refused as e:
        _err(str(e))
        return e.code
    with ExitStack() as stack:
        try:
            model, source, engine, server, library, lsl = build(o, addresses, stack)
        except _Refused as e:
            _err(str(e))
            return e.code
        return run_engine(o, model, source, engine, server, library, lsl, stack)


def validate(o: LiveOptions) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """Check the options alone; returns the (WebSocket, dashboard) addresses to bind."""
    try:
        if o.fast and o.device is not None:
            raise _Refused("--fast only applies to --input FILE (a device delivers audio at its own pace)",
                           ExitCode.USAGE)
        http = parse_hostport(o.http, 8080, "--http") if o.http else None
        if http and o.ws == "off":
            raise _Refused("--http serves a dashboard that reads the WebSocket stream: it needs --ws (not off)",
                           ExitCode.USAGE)
        if o.db and o.ws == "off":
            raise _Refused("--db answers library queries and sends \"more like now\" over the WebSocket: it needs "
                           "--ws (not off)", ExitCode.USAGE)
        if o.db and not 0 <= o.like_now <= 600:
            raise _Refused(f"--like-now {o.like_now:g}: give 0 (off) up to 600 seconds", ExitCode.USAGE)
        ws = parse_hostport(o.ws) if o.ws != "off" else None
        refusal, warning = exposure(ws, http, o.token, o.insecure, o.ws, o.http)
        if refusal:
            raise _Refused(refusal, ExitCode.USAGE)
        if warning:
            _err(warning)
        check_hop(o.hop, FEATURES)
    except ValueError as e:  # an unreadable HOST:PORT, a --hop that does not divide 0.5 s
        raise _Refused(str(e), ExitCode.USAGE) from e
    return ws, http


def demo_source(o: LiveOptions, why: Exception) -> FileSource:
    """The bundled demo, when no input device can be used; tells the user why."""
    _err(f"{why}\nemotrack live: playing the bundled demo instead ({demo_path().name}, 60 s)")
    return FileSource(demo_path(), fast=o.fast, loop=o.loop, ring_seconds=o.ring_seconds)


def make_source(o: LiveOptions) -> Source:
    """The source the options ask for (with neither a device nor a file: the default
    device, or the demo when there is none)."""
    if o.input:
        return FileSource(o.input, fast=o.fast, loop=o.loop, ring_seconds=o.ring_seconds)
    try:
        return DeviceSource(o.device, sample_rate=o.samplerate, channels=o.channels, blocksize=o.blocksize,
                            ring_seconds=o.ring_seconds)
    except DeviceError as e:
        if not o.auto:
            raise
        return demo_source(o, e)


def build(o: LiveOptions, addresses, stack: ExitStack):
    """The model, source, engine, servers and sinks; everything that needs closing is on
    ``stack``, and the recording file is made last."""
    ws, http = addresses
    try:
        model = load_model(o.model)
    except ModelError as e:
        raise _Refused(str(e), ExitCode.USAGE) from e
    try:
        source = make_source(o)
    except DeviceError as e:
        raise _Refused(str(e), ExitCode.DEVICE) from e
    except AudioDecodeError as e:
        raise _Refused(str(e), ExitCode.DECODE) from e
    server = library = lsl = None
    sinks = []
    try:
        engine = LiveEngine(model, source, hop=o.hop, duration=o.duration)
        if ws is not None:
            if o.db:
                library = LibraryService(o.db, like_seconds=o.like_now)
                stack.callback(library.close)
                library.open()
            server = WebSocketServer(*ws, token=o.token, allow_origins=o.allow_origin, http=http, library=library)
            engine.serve(server)
            server.start()
            stack.callback(server.close)
            reachable = exposed(server.bound_addresses())
            if reachable and not o.token and not o.insecure:  # checked again on what was really bound
                raise _Refused(f"listening on {', '.join(reachable)} would let other machines read the stream "
                               "without a token; give --token SECRET (or --insecure if the network is yours)",
                               ExitCode.USAGE)
        if o.osc:
            osc = OscSink(o.osc, prefix=o.osc_prefix, bundle=o.osc_bundle)
            stack.callback(osc.close)
            sinks.append(osc)
            engine.counters["osc_dropped"] = lambda: osc.dropped
        if o.lsl:
            lsl = LslSink(o.lsl, engine.hop, engine.hello())
            stack.callback(lsl.close)
            sinks.append(lsl)
        recorder = Recorder(o.record, overwrite=o.overwrite) if o.record else None
    except ServerError as e:
        if isinstance(e, ValueError):  # a HOST:PORT that cannot be used is a usage error
            raise _Refused(str(e), ExitCode.USAGE) from e
        raise _Refused(str(e), ExitCode.PORT) from e
    except (ValueError, RecorderError, LslError, LibraryError) as e:
        raise _Refused(str(e), ExitCode.USAGE) from e
    engine.sinks = [recorder, *sinks, server]
    return model, source, engine, server, library, lsl


def _window_sink(o: LiveOptions):
    """The window's sink, or None (headless): with no display Qt cannot draw."""
    if not o.gui:
        return None
    if not display_available():
        _err("no display found (DISPLAY/WAYLAND_DISPLAY unset): running headless as with --no-gui. "
             "Watch the stream with `emotrack live --http 127.0.0.1:8080` (a dashboard in the browser), "
             "`emotrack listen` or any WebSocket client; set QT_QPA_PLATFORM=offscreen to render the window "
             "without a screen")
        return None
    if not window_available():
        _err("the window needs PySide6 and pyqtgraph, which this installation left out: "
             "pip install 'emotrack[gui]'. Running headless as with --no-gui; "
             "`emotrack live --http 127.0.0.1:8080` shows the stream in a browser instead")
        return None
    return GuiSink(trail_seconds=o.trail)


def run_engine(o: LiveOptions, model: EmotionModel, source: Source, engine: LiveEngine, server, library, lsl,
               stack: ExitStack) -> int:
    gui_sink = _window_sink(o)
    engine.sinks = [s for s in [gui_sink or LinePrinter(frames=not o.quiet), *engine.sinks] if s is not None]
    recorder = next((s for s in engine.sinks if isinstance(s, Recorder)), None)
    try:
        engine.start()
    except DeviceError as e:
        if not o.auto:
            _err(str(e))
            engine.stop()
            return ExitCode.DEVICE
        source = demo_source(o, e)
        engine = LiveEngine(model, source, hop=o.hop, sinks=engine.sinks, duration=o.duration)
        if server:
            engine.serve(server)
        engine.start()
    stack.callback(engine.stop)  # closes the sinks too; runs before the servers are closed

    where = f"; WebSocket {server.url}" if server else ""
    where += f"; dashboard {server.http_url}" if server and server.http_url else ""
    where += f"; OSC to {o.osc}{o.osc_prefix}/..." if o.osc else ""
    where += f"; LSL stream {o.lsl!r} ({lsl.source_id})" if lsl else ""
    where += f"; library {o.db} ({library.songs} songs)" if library else ""
    rec = f"; recording to {o.record}" if o.record else ""
    _err(f"listening to {source.kind} {source.name!r} at {source.sample_rate} Hz, "
         f"a prediction every {engine.hop:g} s{where}{rec}. Ctrl-C stops.")
    interrupted = False
    try:
        if gui_sink is not None:
            run_window(engine, gui_sink, server=server, title_source=source.name)
        else:
            interrupted = _wait_headless(engine, o.status_every, o.quiet, server)
    finally:
        engine.stop()
    for note in engine.close_errors:
        _err(note)
    lat = engine.latency_summary
    if lat.get("count"):
        _err(f"stopped after {engine.seq} predictions; latency median {lat['median_ms']:.2f} ms, "
             f"p99 {lat['p99_ms']:.2f} ms; overflows {source.ring.overflows}"
             + (f"; {o.record}: {recorder.written} predictions" if recorder else ""))
    if engine.error is not None and not interrupted:
        _err(f"the worker failed: {engine.error}")
        return ExitCode.FAILED
    if recorder is not None and recorder.error is not None:
        _err(f"the recording stopped early ({recorder.error.strerror or recorder.error}): {o.record} holds the "
             f"first {recorder.written} predictions, each a whole line")
        return ExitCode.FAILED
    if isinstance(source, FileSource) and source.error is not None:
        return ExitCode.DECODE
    return ExitCode.OK


def window_available() -> bool:
    """Are the window's packages (the gui extra) installed?"""
    return all(importlib.util.find_spec(m) is not None for m in ("PySide6", "pyqtgraph"))


def display_available() -> bool:
    """Can Qt open a window here? (QT_QPA_PLATFORM=offscreen counts: it renders off screen.)"""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _wait_headless(engine: LiveEngine, status_every: float, quiet: bool, server) -> bool:
    """Block until the input ends, Ctrl-C or SIGTERM; print a status line now and then."""
    stop = threading.Event()

    def on_term(signum, frame):
        stop.set()

    old = signal.signal(signal.SIGTERM, on_term) if threading.current_thread() is threading.main_thread() else None
    next_status = time.monotonic() + status_every
    try:
        while not stop.is_set() and not engine.wait(0.2):
            if status_every > 0 and time.monotonic() >= next_status and not quiet:
                next_status += status_every
                _err(" | ".join(status_parts(engine, server)))
        return stop.is_set()
    except KeyboardInterrupt:
        return True
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
