"""``emotrack devices``: the audio input devices PortAudio sees (main thread)."""

from __future__ import annotations

import argparse
import json
import sys

from ..console import say
from ..exitcodes import ExitCode
from .sources import DeviceError, list_input_devices

HELP = "list audio input devices"


def add_arguments(dv: argparse.ArgumentParser) -> None:
    dv.add_argument("--format", choices=["table", "json"], default="table")
    dv.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the old spelling of --format json


def run(args: argparse.Namespace) -> int:
    return devices(args.json or args.format == "json")


def devices(as_json: bool = False) -> int:
    try:
        devs = list_input_devices()
    except DeviceError as e:
        say("devices", str(e))
        return ExitCode.DEVICE
    if as_json:
        print(json.dumps(devs, indent=1))
        return ExitCode.OK
    if not devs:
        print("no audio input devices found (on Linux check that PulseAudio/PipeWire runs: "
              "pactl info); emotrack live --input FILE plays a file instead", file=sys.stderr)
        return ExitCode.DEVICE
    print(f"{'':2}{'index':>5}  {'name':40} {'ch':>3} {'rate':>7}  host API")
    for d in devs:
        mark = "*" if d["default"] else " "
        print(f"{mark:2}{d['index']:>5}  {d['name'][:40]:40} {d['channels']:>3} {d['sample_rate']:>7.0f}  {d['hostapi']}")
    print("* default input. Use: emotrack live --device INDEX or --device NAME (a part of it)")
    return ExitCode.OK
