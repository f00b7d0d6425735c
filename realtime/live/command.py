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
from .options import DESCRIPTION, HELP, LiveOptions, add_arguments  # noqa: F401  (re-exported)
from .sinks.gui import GuiSink, run_window
from .sinks.lsl import LslError, LslSink
from .sinks.osc import OscSink
from .sinks.printer import LinePrinter
from .sinks.recorder import Recorder, RecorderError
from .sources import DeviceError, DeviceSource, FileSource, Source
from .status import status_parts


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
    _err(f"{why}\nemotrack live: playing the bundled demo instead ({demo_path().name}, 75 s)")
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

    # Ctrl-C too sets the event instead of raising KeyboardInterrupt wherever the main thread
    # happens to be: raised inside a lock's wait it could leave the engine unable to stop
    main = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    next_status = time.monotonic() + status_every
    try:
        while not stop.is_set() and not engine.wait(0.2):
            if status_every > 0 and time.monotonic() >= next_status and not quiet:
                next_status += status_every
                _err(" | ".join(status_parts(engine, server)))
        return stop.is_set()
    except KeyboardInterrupt:  # a Ctrl-C before the handler was in place
        return True
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
