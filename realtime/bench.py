"""``emotrack bench``: speed of the live model step and of ``analyze`` (main thread).

- step: one 0.5 s frame through log-mel + encoder + LSTM (``Tracker.push`` with exactly
  one frame of new audio), one thread, after warm-up; median and p99 in ms.
- analyze: the demo audio repeated to ``--audio-seconds``, written as a 44.1 kHz stereo
  FLAC, then streamed by the same path ``emotrack analyze`` uses, decoding included;
  throughput in multiples of real time.
- --live, --memory, --startup: the live tracker from outside (see bench_live.py).
- --library: query times of ``emotrack find`` on a synthetic 10,000-song library
  (see bench_library.py).
- --song: ``emotrack analyze --song`` on a 45 s clip (44.1 kHz stereo FLAC): the whole
  path (decoding, resampling, log-mel, the VAE-LSTM trajectory and the whole-song graph),
  and the whole-song graph alone; one thread, median and p95 over ``--song-runs`` runs;
  and, where opensmile is installed, its ComParE_2016 functionals of the same clip.
- --load: the WebSocket server under 200 clients, stuck and resetting ones among them
  (see bench_load.py).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from .audio import Framer, StreamingResampler, load_audio
from .features import logmel_frames
from .live import demo_path
from .pipeline import Tracker, stream_file


def write_looped_demo(path: Path, seconds: float, sr: int = 44100) -> None:
    """The demo clip repeated to ``seconds``, as a stereo FLAC at ``sr`` (benchmark input)."""
    import soundfile as sf

    from .config import FEATURES

    y = StreamingResampler(FEATURES.sample_rate, sr).process(load_audio(demo_path(), FEATURES))
    n = int(seconds * sr)
    with sf.SoundFile(str(path), "w", sr, 2, format="FLAC") as f:
        done = 0
        while done < n:
            chunk = y[: min(len(y), n - done)]
            f.write(np.stack([chunk, chunk * 0.9], 1))
            done += len(chunk)


def bench_step(model, frames: int) -> dict:
    cfg = model.features
    y = load_audio(demo_path(), cfg)
    need = (frames + 20) * cfg.frame_samples
    y = np.tile(y, need // len(y) + 1)[:need]
    tr = Tracker(model, cfg.sample_rate)
    times = []
    for k in range(frames + 20):
        block = y[k * cfg.frame_samples : (k + 1) * cfg.frame_samples]
        t0 = time.perf_counter()
        out = tr.push(block)
        dt = time.perf_counter() - t0
        assert len(out) == 1
        if k >= 20:
            times.append(dt * 1e3)
    t = np.asarray(times)
    return {"frames": frames, "median": float(np.median(t)), "p99": float(np.percentile(t, 99)),
            "mean": float(t.mean()), "max": float(t.max())}


def bench_analyze(model, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "bench.flac"
        write_looped_demo(path, seconds)
        t0 = time.perf_counter()
        count = sum(1 for _ in stream_file(model, path))
        dt = time.perf_counter() - t0
    return {"audio_seconds": seconds, "format": "FLAC 44.1 kHz stereo", "predictions": count,
            "wall_seconds": dt, "x_realtime": seconds / dt}


def bench_song(model, runs: int = 20, seconds: float = 45.0) -> dict:
    from .song import SongModel, analyze_song

    song = SongModel(threads=1)
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "song.flac"
        write_looped_demo(path, seconds)
        n = model.features.frame_samples
        frames = logmel_frames(Framer(n, n, model.features.sample_rate).push(load_audio(path, model.features))[0],
                               model.features)
        whole, graph = [], []
        for k in range(runs + 2):
            t0 = time.perf_counter()
            res = analyze_song(path, model, song)
            t1 = time.perf_counter()
            song.predict(frames)
            t2 = time.perf_counter()
            if k >= 2:
                whole.append((t1 - t0) * 1e3)
                graph.append((t2 - t1) * 1e3)
        compare = bench_compare_extraction(path)
    w, g = np.asarray(whole), np.asarray(graph)
    return {"audio_seconds": seconds, "format": "FLAC 44.1 kHz stereo", "runs": runs, "frames": int(len(res.trajectory)),
            "whole_ms": {"median": float(np.median(w)), "p95": float(np.percentile(w, 95))},
            "song_graph_ms": {"median": float(np.median(g)), "p95": float(np.percentile(g, 95))},
            "compare_extraction_ms": compare}


def bench_compare_extraction(path: Path, runs: int = 5) -> dict | None:
    """openSMILE ComParE_2016 functionals of the same clip (mono, its own rate): the
    features the static benchmark compares with, timed to show what a ComParE-based
    song model would cost. None without the ``train`` extra (opensmile)."""
    try:
        import opensmile
        import soundfile as sf
    except ImportError:
        return None
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                            feature_level=opensmile.FeatureLevel.Functionals)
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    y = y.mean(1)
    smile.process_signal(y[:sr], sr)  # warm-up
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        smile.process_signal(y, sr)
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"runs": runs, "median": float(np.median(ms)), "max": float(np.max(ms))}


def run_bench(args) -> int:
    from .model import load_model

    model = load_model(threads=1)
    res = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
                      f"{platform.python_version()}", "model": model.name}
    if not args.no_model:
        res["step_ms"] = bench_step(model, args.frames)
        res["analyze"] = bench_analyze(model, args.audio_seconds)
        if not args.json:
            s, a = res["step_ms"], res["analyze"]
            print(f"model step per 0.5 s frame (features + encoder + LSTM, 1 thread): "
                  f"median {s['median']:.3f} ms, p99 {s['p99']:.3f} ms over {s['frames']} frames")
            print(f"analyze: {a['audio_seconds'] / 3600:.2f} h of {a['format']} in {a['wall_seconds']:.1f} s "
                  f"= {a['x_realtime']:.0f}x real time", flush=True)
    if args.live or args.memory or args.startup:
        from .bench_live import run_live_bench

        run_live_bench(args, res)
    if args.library:
        from .bench_library import bench_library
        from .bench_library import describe as describe_library

        res["library"] = bench_library(args.library_songs)
        if not args.json:
            print(describe_library(res["library"]), flush=True)
    if args.song:
        res["song"] = bench_song(model, args.song_runs)
        if not args.json:
            s = res["song"]
            print(f"analyze --song on {s['audio_seconds']:.0f} s of {s['format']} (1 thread): median "
                  f"{s['whole_ms']['median']:.1f} ms, p95 {s['whole_ms']['p95']:.1f} ms; the whole-song graph alone "
                  f"on its {s['frames']} frames: median {s['song_graph_ms']['median']:.2f} ms", flush=True)
            c = s["compare_extraction_ms"]
            print("openSMILE ComParE_2016 functionals of the same clip, for comparison: "
                  + (f"median {c['median']:.0f} ms over {c['runs']} runs" if c else "not timed (no opensmile; "
                     "pip install -e '.[train]')"), flush=True)
    if args.load:
        from .bench_load import describe, run_load

        res["load"] = run_load(model, clients=args.load_clients, seconds=args.load_seconds)
        if not args.json:
            print(describe(res["load"]), flush=True)
    if args.json:
        print(json.dumps(res, indent=1))
    return 0
