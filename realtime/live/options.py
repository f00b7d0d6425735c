"""``emotrack live``'s options: the command line and the same as a dataclass for programs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

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
    lv.add_argument("--model", help="'accurate' for the opt-in model that runs the musicnn teachers every 0.5 s "
                   "(closer to the labels, ~50x the compute), or an exported .onnx (default: the shipped VAE-LSTM)")
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
