"""``emotrack bench``: speed and memory, measured (main thread; some benchmarks start
``emotrack live`` or a client swarm as child processes). What each measures is described
in its module: ``model`` (step, analyze, song), ``live`` (latency, memory, start-up),
``load`` (200 clients), ``library`` (queries on 10,000 songs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from ..core.model import ModelError, load_model
from ..core.threads import single_thread_blas
from ..exitcodes import ExitCode
from .library import bench_library
from .library import describe as describe_library
from .live import run_live_bench
from .load import describe as describe_load
from .load import run_load
from .model import bench_alternating, bench_analyze, bench_api, bench_song, bench_step, step_samples

HELP = "speed of the model step and of analyze (and, on request, live latency, memory, load, library, song)"


def add_arguments(b: argparse.ArgumentParser) -> None:
    b.add_argument("--frames", type=int, default=3000, help="frames for the per-step timing")
    b.add_argument("--audio-seconds", type=float, default=3600.0, help="length of the analyze benchmark")
    b.add_argument("--analyze-rate", type=int, default=44100, metavar="HZ",
                   help="sample rate of the analyze benchmark's FLAC (44100; 48000 takes the many-phase resampler)")
    b.add_argument("--step-rate", type=int, metavar="HZ",
                   help="sample rate of the step benchmark's input (default: the model's own, 22050, no resampling; "
                        "44100 or 48000 time the step with the streaming resampler live input at those rates goes "
                        "through)")
    b.add_argument("--format", choices=["table", "json"], default="table", help="table: sentences; json: one object")
    b.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the old spelling of --format json
    b.add_argument("--live", action="store_true", help="end-to-end latency of `emotrack live` to a WebSocket client")
    b.add_argument("--live-seconds", type=float, default=60.0)
    b.add_argument("--idle", action="store_true", help="--live without the busy-loop on the other core")
    b.add_argument("--memory", action="store_true",
                   help="resident memory of `live --no-gui` (with --model's model) over an hour of audio")
    b.add_argument("--memory-seconds", type=float, default=3600.0)
    b.add_argument("--startup", action="store_true", help="time of `emotrack --help`, and its imports (-X importtime)")
    b.add_argument("--load", action="store_true",
                   help="the WebSocket server under 200 clients at hop 0.1, stuck and resetting ones among them")
    b.add_argument("--song", action="store_true", help="whole-song analysis (analyze --song) of a 45 s clip")
    b.add_argument("--song-runs", type=int, default=20)
    b.add_argument("--library", action="store_true", help="point and profile query times on a 10,000-song library")
    b.add_argument("--library-songs", type=int, default=10000)
    b.add_argument("--load-clients", type=int, default=200)
    b.add_argument("--load-seconds", type=float, default=60.0)
    b.add_argument("--api", action="store_true", help="the Python API against `emotrack analyze` on the demo, "
                   "other core busy")
    b.add_argument("--no-model", action="store_true", help="skip the step and analyze benchmarks")
    b.add_argument("--model", help="the step and analyze benchmarks of this model: 'accurate' (the opt-in model "
                   "that runs the musicnn teachers) or an exported .onnx (default: the shipped one); give a "
                   "smaller --audio-seconds for the accurate one")
    b.add_argument("--reference", metavar="ONNX",
                   help="also time this model (e.g. the one shipped before), taking turns with --model in three "
                        "rounds, so both numbers come from one sitting: a host's speed can drift between sittings "
                        "by more than two models differ")


def run(args: argparse.Namespace) -> int:
    args.json = args.json or args.format == "json"
    if not 8000 <= args.analyze_rate <= 384000:
        print(f"emotrack bench: --analyze-rate {args.analyze_rate} Hz is not an audio rate FLAC holds here; give one "
              "from 8000 to 384000 (e.g. 44100 or 48000)", file=sys.stderr)
        return ExitCode.USAGE
    single_thread_blas()
    try:
        model = load_model(args.model, threads=1)
    except ModelError as e:
        print(f"emotrack bench: {e}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        step_samples(model, args.step_rate)
    except ValueError as e:
        print(f"emotrack bench: --step-rate: {e}", file=sys.stderr)
        return ExitCode.USAGE
    ref = None
    if args.reference:
        if args.no_model:
            print("emotrack bench: --reference times a second model beside --model; drop --no-model", file=sys.stderr)
            return ExitCode.USAGE
        try:
            ref = load_model(args.reference, threads=1)
        except ModelError as e:
            print(f"emotrack bench: --reference: {e}", file=sys.stderr)
            return ExitCode.USAGE
    res = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
                      f"{platform.python_version()}", "model": model.name}
    say = (lambda *a: None) if args.json else (lambda m: print(m, flush=True))
    if not args.no_model:
        if ref is None:
            res["step_ms"] = bench_step(model, args.frames, args.step_rate)
            res["analyze"] = bench_analyze(model, args.audio_seconds, args.analyze_rate)
        else:
            mine, theirs = bench_alternating([model, ref], args.frames, args.audio_seconds, sr=args.analyze_rate,
                                             step_rate=args.step_rate)
            res.update(mine)
            res["reference"] = {"model": ref.label, "file": str(args.reference), **theirs}
        for m, r in ((model, res), *(((ref, res["reference"]),) if ref else ())):
            s, a = r["step_ms"], r["analyze"]
            who = m.label + (" (reference)" if m is ref else "")
            what = "the teachers' window + LSTM" if m.takes == "audio" else "features + encoder + LSTM"
            if s["input_rate"] != m.features.sample_rate:
                what += f", input at {s['input_rate'] / 1000:g} kHz resampled in the step"
            say(f"{who}: model step per 0.5 s frame ({what}, 1 thread): "
                f"median {s['median_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms over {s['frames']} frames")
            say(f"{who}: analyze: {a['audio_seconds'] / 3600:.2f} h of {a['format']} in {a['wall_seconds']:.1f} s "
                f"= {a['x_realtime']:.0f}x real time")
    if args.live or args.memory or args.startup:
        run_live_bench(res, live=args.live, memory=args.memory, startup=args.startup, live_seconds=args.live_seconds,
                       idle=args.idle, memory_seconds=args.memory_seconds, say=say, model=args.model)
    if args.library:
        res["library"] = bench_library(args.library_songs)
        say(describe_library(res["library"]))
    if args.song:
        res["song"] = s = bench_song(model, args.song_runs)
        say(f"analyze --song on {s['audio_seconds']:.0f} s of {s['format']} (1 thread): median "
            f"{s['whole_ms']['median_ms']:.1f} ms, p95 {s['whole_ms']['p95_ms']:.1f} ms; the whole-song graph alone "
            f"on its {s['frames']} frames: median {s['song_graph_ms']['median_ms']:.2f} ms; with --song-model accurate: "
            f"median {s['accurate_whole_ms']['median_ms']:.1f} ms")
        c = s["compare_extraction_ms"]
        say("openSMILE ComParE_2016 functionals of the same clip, for comparison: "
            + (f"median {c['median_ms']:.0f} ms over {c['runs']} runs" if c else "not timed (no opensmile; "
               "pip install -e '.[train]')"))
    if args.api:
        res["api"] = a = bench_api()
        say(f"the demo (75 s) through the Python API: median {a['api_ms']['median_ms']:.0f} ms; through "
            f"`emotrack analyze`, start-up included: median {a['cli_ms']['median_ms']:.0f} ms (other core busy)")
    if args.load:
        res["load"] = run_load(model, clients=args.load_clients, seconds=args.load_seconds)
        say(describe_load(res["load"]))
    if args.json:
        print(json.dumps(res, indent=1))
    return ExitCode.OK
