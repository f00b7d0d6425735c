"""``emotrack live`` and ``emotrack devices`` (main thread).

Builds the source (a device, a file, or, with neither given, the default input device and
the bundled demo when there is none), the sinks (WebSocket, recorder, stdout or the Qt
window) and the worker; then waits for Ctrl-C, SIGTERM, the window closing or the end of
the input, and shuts everything down: no thread or socket is left behind.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
from importlib import resources
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_DECODE, EXIT_DEVICE, EXIT_PORT, EXIT_FAILED = 0, 2, 3, 4, 5, 1


def _err(msg: str) -> None:
    print(f"emotrack live: {msg}", file=sys.stderr, flush=True)


def demo_path() -> Path:
    return Path(str(resources.files("emotrack.assets").joinpath("demo.opus")))


def display_available() -> bool:
    """Can Qt open a window here? (QT_QPA_PLATFORM=offscreen counts: it renders off screen.)"""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


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

    def put(self, msg: dict, text: str) -> None:
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


def demo_source(args, why: Exception):
    """The bundled demo, when no input device can be used; tells the user why."""
    from .capture import FileSource

    _err(f"{why}\nemotrack live: playing the bundled demo instead ({demo_path().name}, 60 s)")
    return FileSource(demo_path(), fast=args.fast, loop=args.loop, ring_seconds=args.ring_seconds)


def make_source(args, fallback_to_demo: bool):
    """The source the options ask for (or the demo, with ``fallback_to_demo``)."""
    from .capture import DeviceError, DeviceSource, FileSource

    ring = args.ring_seconds
    if args.input:
        return FileSource(args.input, fast=args.fast, loop=args.loop, ring_seconds=ring)
    try:
        return DeviceSource(args.device, sample_rate=args.samplerate, channels=args.channels,
                            blocksize=args.blocksize, ring_seconds=ring)
    except DeviceError as e:
        if not fallback_to_demo:
            raise
        return demo_source(args, e)


def run_live(args) -> int:
    from .audio import AudioDecodeError
    from .capture import DeviceError, FileSource
    from .engine import LiveEngine
    from .library import LibraryError
    from .lsl import LslError
    from .model import ModelMismatchError, load_model
    from .recorder import Recorder, RecorderError
    from .server import ServerError, WebSocketServer, is_loopback, parse_hostport

    auto = args.input is None and args.device is None
    if args.fast and args.device is not None:
        _err("--fast only applies to --input FILE (a device delivers audio at its own pace)")
        return EXIT_USAGE
    try:
        model = load_model(args.model)
    except (ModelMismatchError, FileNotFoundError) as e:
        _err(str(e))
        return EXIT_USAGE
    gui = not args.no_gui
    if gui and not display_available():
        _err("no display found (DISPLAY/WAYLAND_DISPLAY unset): running headless as with --no-gui. "
             "Watch the stream with `emotrack listen` or any WebSocket client; set "
             "QT_QPA_PLATFORM=offscreen to render the window without a screen")
        gui = False
    try:
        source = make_source(args, fallback_to_demo=auto)
    except DeviceError as e:
        _err(str(e))
        return EXIT_DEVICE
    except AudioDecodeError as e:
        _err(f"{e}")
        return EXIT_DECODE

    # everything that can refuse to start is checked before anything is created: a failure
    # must not leave a half-made recording behind
    server = osc = lsl = finder = None
    try:
        engine = LiveEngine(model, source, hop=args.hop, duration=args.duration)  # checks --hop
        http = parse_hostport(args.http, 8080, "--http") if args.http else None
        if http and args.ws == "off":
            _err("--http serves a dashboard that reads the WebSocket stream: it needs --ws (not off)")
            return EXIT_USAGE
        if args.db and args.ws == "off":
            _err("--db answers library queries and sends \"more like now\" over the WebSocket: it needs --ws (not off)")
            return EXIT_USAGE
        if args.ws != "off":
            host, port = parse_hostport(args.ws)
            for option, h in [("--ws", host)] + ([("--http", http[0])] if http else []):
                if not is_loopback(h) and not args.token and not args.insecure:
                    _err(f"{option} {getattr(args, option[2:])}: listening on {h} lets other machines read the "
                         "stream. Give an access token (--token SECRET; clients connect to "
                         "ws://HOST:PORT/?token=SECRET, browsers open http://HOST:PORT/?token=SECRET), "
                         "or pass --insecure if the network is yours")
                    return EXIT_USAGE
            if http and not is_loopback(http[0]) and is_loopback(host):
                _err(f"--http {args.http} is reachable from other machines but the stream (--ws {args.ws}) is "
                     "not: their browsers could not connect. Listen on the same host, e.g. "
                     f"--ws {http[0]}:{port}")
                return EXIT_USAGE
            if not is_loopback(host) and args.insecure and not args.token:
                _err(f"WARNING: listening on {host} without a token (--insecure): anyone who can reach "
                     "this machine can read the stream")
            if args.db:
                from .finder import Finder

                if not 0 <= args.like_now <= 600:
                    raise ValueError(f"--like-now {args.like_now:g}: give 0 (off) up to 600 seconds")
                finder = Finder(args.db, like_seconds=args.like_now)
                finder.open()
            server = WebSocketServer(host, port, token=args.token, allow_origins=args.allow_origin, http=http,
                                     finder=finder)
        if args.osc:
            from .osc import OscSink

            osc = OscSink(args.osc, prefix=args.osc_prefix, bundle=args.osc_bundle)
        if args.lsl:
            from .lsl import LslSink

            lsl = LslSink(args.lsl, engine.hop, engine.hello())
        if server:
            engine.serve(server)
            server.start()
        recorder = Recorder(args.record, overwrite=args.overwrite) if args.record else None
    except (ValueError, RecorderError, LslError, LibraryError) as e:
        _err(str(e))
        for s in (server, osc, lsl, finder):
            if s is not None:
                s.close()
        return EXIT_USAGE
    except ServerError as e:
        _err(str(e))
        for s in (osc, lsl, finder):
            if s is not None:
                s.close()
        return EXIT_PORT

    gui_sink = None
    if gui:
        from .gui import GuiSink

        gui_sink = GuiSink(trail_seconds=args.trail)
    sinks = [gui_sink or LinePrinter(frames=not args.quiet), recorder, osc, lsl, server]
    engine.sinks = [s for s in sinks if s is not None]
    try:
        engine.start()
    except DeviceError as e:
        if not auto:
            _err(str(e))
            engine.stop()
            if finder is not None:
                finder.close()
            return EXIT_DEVICE
        source = demo_source(args, e)
        engine = LiveEngine(model, source, hop=args.hop, sinks=engine.sinks, duration=args.duration)
        if server:
            engine.serve(server)
        engine.start()

    where = f"; WebSocket {server.url}" if server else ""
    where += f"; dashboard {server.http_url}" if server and server.http_url else ""
    where += f"; OSC to {args.osc}{args.osc_prefix}/..." if args.osc else ""
    where += f"; LSL stream {args.lsl!r} ({lsl.source_id})" if lsl else ""
    where += f"; library {args.db} ({finder.songs} songs)" if finder else ""
    rec = f"; recording to {args.record}" if args.record else ""
    _err(f"listening to {source.kind} {source.name!r} at {source.sample_rate} Hz, "
         f"a prediction every {engine.hop:g} s{where}{rec}. Ctrl-C stops.")
    interrupted = False
    try:
        if gui:
            from .gui import run_window

            run_window(engine, gui_sink, server=server, title_source=source.name)
        else:
            interrupted = _wait_headless(engine, args, server)
    finally:
        engine.stop()
        if finder is not None:
            finder.close()
    lat = engine.latency.summary()
    if lat.get("count"):
        _err(f"stopped after {engine.seq} predictions; latency median {lat['median_ms']:.2f} ms, "
             f"p99 {lat['p99_ms']:.2f} ms; overflows {source.ring.overflows}"
             + (f"; {args.record}: {recorder.written} predictions" if recorder else ""))
    if engine.error is not None and not interrupted:
        _err(f"the worker failed: {engine.error}")
        return EXIT_FAILED
    if isinstance(source, FileSource) and source.error is not None:
        return EXIT_DECODE
    return EXIT_OK


def _wait_headless(engine, args, server) -> bool:
    """Block until the input ends, Ctrl-C or SIGTERM; print a status line now and then."""
    stop = threading.Event()

    def on_term(signum, frame):
        stop.set()

    old = signal.signal(signal.SIGTERM, on_term) if threading.current_thread() is threading.main_thread() else None
    next_status = time.monotonic() + args.status_every
    try:
        while not stop.is_set() and not engine.wait(0.2):
            if args.status_every > 0 and time.monotonic() >= next_status and not args.quiet:
                next_status += args.status_every
                _err(" | ".join(status_parts(engine, server)))
        return stop.is_set()
    except KeyboardInterrupt:
        return True
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def status_parts(engine, server=None) -> list[str]:
    """What the window's status line and the headless status lines say."""
    src = engine.source
    lat = engine.latency.summary()
    last = engine.last
    parts = [f"{src.kind}: {src.name} ({src.state})"]
    if last:
        parts.append(f"t {last['t']:.1f} s   V {last['valence']:+.2f} ± {last['valence_std']:.2f}   "
                     f"A {last['arousal']:+.2f} ± {last['arousal_std']:.2f}")
    if lat.get("count"):
        parts.append(f"latency {lat['median_ms']:.1f} ms (p99 {lat['p99_ms']:.1f})")
    parts.append(f"overflows {src.ring.overflows}")
    if getattr(src, "losses", 0):
        parts.append(f"device lost {src.losses}x")
    if server is not None:
        parts.append(f"WebSocket {server.url}: {server.client_count} clients")
    return parts


def run_devices(args) -> int:
    from .capture import DeviceError, list_input_devices

    try:
        devs = list_input_devices()
    except DeviceError as e:
        print(f"emotrack devices: {e}", file=sys.stderr)
        return EXIT_DEVICE
    if args.json:
        print(json.dumps(devs, indent=1))
        return EXIT_OK
    if not devs:
        print("no audio input devices found (on Linux check that PulseAudio/PipeWire runs: "
              "pactl info); emotrack live --input FILE plays a file instead", file=sys.stderr)
        return EXIT_DEVICE
    print(f"{'':2}{'index':>5}  {'name':40} {'ch':>3} {'rate':>7}  host API")
    for d in devs:
        mark = "*" if d["default"] else " "
        print(f"{mark:2}{d['index']:>5}  {d['name'][:40]:40} {d['channels']:>3} {d['sample_rate']:>7.0f}  {d['hostapi']}")
    print("* default input. Use: emotrack live --device INDEX or --device NAME (a part of it)")
    return EXIT_OK
