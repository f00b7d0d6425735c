"""The model's speed: one live step, ``analyze`` over an hour, and ``analyze --song`` on a
45 s clip (main thread, one thread for BLAS and onnxruntime).

- step: one 0.5 s frame through log-mel + encoder + LSTM (``Tracker.push`` with exactly
  one frame of new audio), after warm-up; at the model's own rate (22.05 kHz) unless a
  ``step_rate`` is given, at which the audio comes in and the tracker's streaming resampler
  turns it into the model's rate inside the timed step, as it does for live input at 44.1
  or 48 kHz.
- analyze: the demo audio repeated to ``--audio-seconds``, written as a 44.1 kHz stereo
  FLAC, then streamed by the same path ``emotrack analyze`` uses, decoding included;
  throughput in multiples of real time.
- reference (``bench_alternating``): step and analyze of two models in alternating rounds
  in one sitting, so that their numbers can be compared where the host's speed drifts
  between sittings (a shared VM's did by 1.3-2x from one sitting to another).
- song: the whole path of ``analyze --song`` (decoding, resampling, log-mel, the VAE-LSTM
  trajectory and the whole-song graph), and the whole-song graph alone; and, where
  opensmile is installed, its ComParE_2016 functionals of the same clip.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ..assets import demo_path
from ..core.audio import Framer, StreamingResampler, load_audio
from ..core.config import FEATURES
from ..core.features import chroma_frames, logmel_frames
from ..core.model import load_model
from ..core.song import AccurateSongModel, SongModel, analyze_song, trajectory_matrix
from ..core.timing import timing_summary
from ..core.tracker import Tracker, stream_file


def write_looped_demo(path: Path, seconds: float, sr: int = 44100) -> None:
    """The demo clip repeated to ``seconds``, as a stereo FLAC at ``sr`` (benchmark input)."""
    y = StreamingResampler(FEATURES.sample_rate, sr).process(load_audio(demo_path(), FEATURES))
    n = int(seconds * sr)
    with sf.SoundFile(str(path), "w", sr, 2, format="FLAC") as f:
        done = 0
        while done < n:
            chunk = y[: min(len(y), n - done)]
            f.write(np.stack([chunk, chunk * 0.9], 1))
            done += len(chunk)


def input_rate(model, rate: int | None) -> int:
    """The rate a step's audio arrives at: ``rate``, or the model's own where None."""
    return rate or model.features.sample_rate


def step_samples(model, rate: int | None) -> int:
    """Input samples in one 0.5 s step at ``rate`` (None: the model's rate); a ValueError
    that names the rate where 0.5 s is not a whole number of its samples."""
    cfg = model.features
    rate = input_rate(model, rate)
    n = rate * cfg.frame_samples / cfg.sample_rate
    if n != int(n) or rate < 1:
        raise ValueError(f"a {cfg.frame_samples / cfg.sample_rate:g} s step at {rate} Hz is {n:g} samples; "
                         "give a rate at which it is a whole number (e.g. 44100 or 48000)")
    return int(n)


def step_times(model, frames: int, rate: int | None = None) -> list[float]:
    """Milliseconds of each of ``frames`` live steps (after 20 of warm-up), each 0.5 s of
    audio at ``rate`` (None: the model's rate, no resampling in the step)."""
    cfg = model.features
    rate = input_rate(model, rate)
    n = step_samples(model, rate)
    y = load_audio(demo_path(), cfg)
    if rate != cfg.sample_rate:  # the input at its own rate, made once, outside the timing
        y = StreamingResampler(cfg.sample_rate, rate).process(y)
    need = (frames + 20) * n
    y = np.tile(y, need // len(y) + 1)[:need]
    tr = Tracker(model, rate)
    times = []
    for k in range(frames + 20):
        block = y[k * n : (k + 1) * n]
        t0 = time.perf_counter()
        out = tr.push(block)
        dt = time.perf_counter() - t0
        assert len(out) == 1
        if k >= 20:
            times.append(dt * 1e3)
    return times


def bench_step(model, frames: int, rate: int | None = None) -> dict:
    return {"frames": frames, "input_rate": input_rate(model, rate),
            **timing_summary(step_times(model, frames, rate))}


def _analyze_result(seconds: float, count: int, dt: float, sr: int = 44100) -> dict:
    return {"audio_seconds": seconds, "format": f"FLAC {sr / 1000:g} kHz stereo", "predictions": count,
            "wall_seconds": dt, "x_realtime": seconds / dt}


def _timed_analyze(model, path: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    count = sum(1 for _ in stream_file(model, path))
    return count, time.perf_counter() - t0


def bench_analyze(model, seconds: float, sr: int = 44100) -> dict:
    """``analyze`` of the demo looped to ``seconds`` as a stereo FLAC at ``sr`` Hz."""
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "bench.flac"
        write_looped_demo(path, seconds, sr)
        count, dt = _timed_analyze(model, path)
    return _analyze_result(seconds, count, dt, sr)


def bench_alternating(models: list, frames: int, seconds: float, rounds: int = 3, sr: int = 44100,
                      step_rate: int | None = None) -> list[dict]:
    """Step and analyze of each model, taking turns in ``rounds`` rounds (each round a
    ``rounds``-th of the frames and of the audio, the models in turn): one sitting's numbers
    for all of them. Per model: ``{"step_ms": ..., "analyze": ...}`` over all its rounds."""
    if rounds < 1 or frames < rounds:
        raise ValueError(f"bench_alternating: need frames >= rounds >= 1, got frames={frames}, rounds={rounds}")
    times: list[list[float]] = [[] for _ in models]
    walls, counts = [0.0] * len(models), [0] * len(models)
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "bench.flac"
        write_looped_demo(path, seconds / rounds, sr)
        for _ in range(rounds):
            for i, m in enumerate(models):
                times[i] += step_times(m, frames // rounds, step_rate)
                n, dt = _timed_analyze(m, path)
                counts[i] += n
                walls[i] += dt
    return [{"step_ms": {"frames": len(t), "rounds": rounds, "input_rate": input_rate(m, step_rate),
                         **timing_summary(t)},
             "analyze": {**_analyze_result(seconds, c, w, sr), "rounds": rounds}}
            for m, t, w, c in zip(models, times, walls, counts, strict=True)]


def bench_song(model, runs: int = 20, seconds: float = 45.0) -> dict:
    song = SongModel(threads=1)
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "song.flac"
        write_looped_demo(path, seconds)
        n = model.features.frame_samples
        raw = Framer(n, n, model.features.sample_rate).push(load_audio(path, model.features))[0]
        frames = logmel_frames(raw, model.features)
        extra = {"chroma": chroma_frames(raw, model.features)} if model.takes_chroma else {}
        o, _ = model.run(frames, model.zero_state(), **extra)  # the song graph reads the trajectory too, if it has that head
        traj = trajectory_matrix(o.valence, o.arousal, o.valence_std, o.arousal_std, o.descriptors)
        whole, graph = [], []
        for k in range(runs + 2):
            t0 = time.perf_counter()
            res = analyze_song(model, path, song)
            t1 = time.perf_counter()
            song.whole(frames, traj, model)
            t2 = time.perf_counter()
            if k >= 2:
                whole.append((t1 - t0) * 1e3)
                graph.append((t2 - t1) * 1e3)
        accurate, acc = AccurateSongModel(threads=1), []
        for k in range(max(3, runs // 4) + 1):  # the opt-in model: the teachers on the song's 3 s windows
            t0 = time.perf_counter()
            analyze_song(model, path, accurate)
            if k >= 1:
                acc.append((time.perf_counter() - t0) * 1e3)
        compare = bench_compare_extraction(path)
    return {"audio_seconds": seconds, "format": "FLAC 44.1 kHz stereo", "runs": runs, "frames": int(len(res.trajectory)),
            "whole_ms": timing_summary(whole), "song_graph_ms": timing_summary(graph),
            "accurate_whole_ms": timing_summary(acc), "compare_extraction_ms": compare}


def bench_compare_extraction(path: Path, runs: int = 5) -> dict | None:
    """openSMILE ComParE_2016 functionals of the same clip (mono, its own rate): the
    features the static benchmark compares with, timed to show what a ComParE-based
    song model would cost. None without the ``train`` extra (opensmile)."""
    try:
        import opensmile  # deferred: an optional extra (emotrack[train])
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
    return {"runs": runs, **timing_summary(ms)}




def bench_api(runs: int = 5, busy: bool = True) -> dict:
    """The Python API against the command line on the demo (75 s), with the other core busy
    (a DAW or a visual next to us): ``stream_file(load_model(), demo)`` in this process, and
    ``emotrack analyze demo`` as a child process, start-up included."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        api, cli = [], []
        exe = [sys.executable, "-m", "emotrack.realtime.cli", "analyze", str(demo_path())]
        for _ in range(runs):
            t0 = time.perf_counter()
            model = load_model()
            n = sum(1 for _ in stream_file(model, demo_path()))
            api.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            subprocess.run(exe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            cli.append((time.perf_counter() - t0) * 1e3)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    return {"runs": runs, "predictions": n, "busy_second_core": busy, "api_ms": timing_summary(api),
            "cli_ms": timing_summary(cli)}
