"""``emotrack teacher-pass``: the teachers' outputs at every 0.5 s frame of every clip, cached
(training only; the main thread hands clips to ``--jobs`` worker processes).

For each clip (labelled or not) and each 0.5 s frame ending at t = 0.5 k, both musicnn
teachers are run on the causal ~3 s window that ends at t (see
:class:`emotrack.models.teachers.TeacherRunner`): 50 tag logits and the 200-d penultimate
layer of each. The audio is the clip at the model rate (22,050 Hz, rendered with
fluidsynth for MIDI), resampled to 16 kHz by the runtime's causal resampler, so no sample
after t reaches a window. The same read also fills the feature cache of
:mod:`emotrack.models.cache` (log-mel frames and pitch-class profiles) where a clip's are
missing, so MIDI is rendered once and training runs side by side do not each compute them.

Stride: every frame for the labelled sets; every second frame (t = 1.0, 2.0, ...) for the
unlabelled Debian music and the rendered EMOPIA clips (``STRIDE``), which halves the pass;
frames without a teacher output simply carry no distillation target (no interpolation,
which would look ahead).

Cache: ``$EMOTRACK_CACHE/teacher/v1/<dataset>/<id>.npz`` (float16), written atomically, so
a stopped pass loses at most the clips in flight and a re-run goes on with the rest. Ctrl-C
(SIGINT) stops it cleanly: the clips not yet started are dropped, the ones in flight finish
(the workers ignore SIGINT), the partial pass is recorded in ``pass.json`` and the command
exits 130; the same command resumes.

``--vgg`` (opt-in, not part of the shipped recipe): the same pass with musicnn's MSD_vgg
tagger instead (:class:`emotrack.models.teachers.VggRunner`: its 50 tag logits, flattened
last pool and fourth pool's channel mean and max, 562 numbers), on every second frame of
every set (``VGG_STRIDE``; a frame between holds the last window's answer where used), into
``$EMOTRACK_CACHE/teacher/vgg-v1/``. ``scripts/probe_vgg_teachers.py`` found at the clip
level that a head fit on Panda alone reads the film music's valence better with it
(docs/training.md, "Two more taggers in the wheel"); this pass is what a frame-level head
and the student need to test that.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from emotrack.realtime.core.audio import StreamingResampler
from emotrack.realtime.core.config import FEATURES
from emotrack.realtime.exitcodes import ExitCode

from .cache import cache_dir, cache_from_audio, clip_audio
from .cli import load_clips, roots_of
from .data import Clip
from .teachers import SAMPLE_RATE, TEACHERS, TeacherRunner, VggRunner

RECIPE = "v1"  # bump when the targets change (teachers, windows, resampling)
STRIDE = {"debian": 2, "emopia": 2}
ORDER = ("soundtracks", "panda4q", "emotify", "vgmidi", "deam", "pmemo", "emomusic", "debian", "emopia")
KEYS = tuple(f"{t}_{k}" for t in TEACHERS for k in ("logits", "penultimate"))
VGG_RECIPE = "vgg-v1"
VGG_PASS = ("MSD_vgg",)
VGG_STRIDE = 2
VGG_KEYS = tuple(f"{t}_{k}" for t in VGG_PASS for k in VggRunner.PARTS)
# one pass's record in pass.json; "load": the machine's mean 1-min load average while it ran (other
# work beside the pass shows as load above its processes, and the card says so)
PASS_KEYS = ("done", "audio_hours", "seconds", "jobs", "finished", "load", "interrupted")


def targets_path(clip: Clip, vgg: bool = False) -> Path:
    return cache_dir() / "teacher" / (VGG_RECIPE if vgg else RECIPE) / clip.dataset / f"{clip.id.replace('/', '_')}.npz"


def has_targets(clip: Clip, vgg: bool = False) -> bool:
    return targets_path(clip, vgg).exists()


def load_targets(clip: Clip, n_frames: int) -> dict[str, np.ndarray]:
    """{key: (n_frames, dim) float32, NaN rows where no window was run} for a clip whose
    features have ``n_frames`` frames."""
    z = np.load(targets_path(clip))
    k = z["k"]
    k = k[k <= n_frames]
    out = {}
    for key in KEYS:
        a = np.full((n_frames, z[key].shape[1]), np.nan, np.float32)
        a[k - 1] = z[key][: len(k)].astype(np.float32)
        out[key] = a
    return out


def clip_targets(clip: Clip, runner: TeacherRunner | VggRunner, audio: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The teachers on every ``STRIDE``-th 0.5 s frame of a clip (audio at the model rate);
    with a :class:`VggRunner`, its tagger on every ``VGG_STRIDE``-th."""
    vgg = isinstance(runner, VggRunner)
    keys = VGG_KEYS if vgg else KEYS
    y = clip_audio(clip) if audio is None else audio
    n = len(y) // FEATURES.frame_samples
    stride = VGG_STRIDE if vgg else STRIDE.get(clip.dataset, 1)
    k = np.arange(stride, n + 1, stride, dtype=np.int32)
    y16 = StreamingResampler(FEATURES.sample_rate, SAMPLE_RATE).process(y)
    out = runner.run(y16, k * FEATURES.frame_seconds) if len(k) else {key: np.zeros((0, 1)) for key in keys}
    return {"k": k, **{key: out[key].astype(np.float16) for key in keys}}


_runner: TeacherRunner | VggRunner | None = None


def _init(vgg: bool = False) -> None:
    global _runner
    # a Ctrl-C reaches the whole process group: the parent decides (drop what has not started),
    # and a worker finishes its clip instead of dying in the middle of it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    torch.set_num_threads(1)
    _runner = VggRunner(VGG_PASS, threads=1) if vgg else TeacherRunner(threads=1)


def _work(clip: Clip) -> tuple[str, float, str | None]:
    """One clip: its features (if missing) and its teacher targets -> (key, seconds, error)."""
    try:
        y = clip_audio(clip)
        cache_from_audio(clip, y)  # the log-mel frames and pitch-class profiles training reads
        tpath = targets_path(clip, isinstance(_runner, VggRunner))
        res = clip_targets(clip, _runner, y)
        tpath.parent.mkdir(parents=True, exist_ok=True)
        tmp = tpath.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **res)
        os.replace(tmp, tpath)
        return clip.key, len(y) / FEATURES.sample_rate, None
    except Exception as e:  # reported, the pass goes on
        return clip.key, 0.0, f"{type(e).__name__}: {e}"


def run_pass(clips: list[Clip], jobs: int = 2, log=print, vgg: bool = False) -> dict:
    """Targets for every clip that has none yet, in ``ORDER`` of datasets; returns a summary.
    ``vgg``: the VGG tagger's pass (``VGG_RECIPE``) instead of the teachers'."""
    rank = {d: i for i, d in enumerate(ORDER)}
    recipe = VGG_RECIPE if vgg else RECIPE
    todo = sorted((c for c in clips if not has_targets(c, vgg)), key=lambda c: (rank.get(c.dataset, 99), c.key))
    log(f"teacher pass: {len(clips) - len(todo)} of {len(clips)} clips cached; {len(todo)} to do with {jobs} "
        f"processes -> {cache_dir() / 'teacher' / recipe}")
    t0 = time.time()
    done, audio_s, errors, loads = 0, 0.0, {}, []
    if not todo:
        return {"clips": len(clips), "done": 0, "seconds": 0.0, "errors": {}}
    interrupted, seen = False, set()
    ex = ProcessPoolExecutor(jobs, initializer=_init, initargs=(vgg,))
    futures = [ex.submit(_work, c) for c in todo]

    def take(f) -> None:  # one finished clip into the summary
        nonlocal done, audio_s
        seen.add(f)
        key, secs, err = f.result()
        done += 1
        audio_s += secs
        loads.append(os.getloadavg()[0])
        if err:
            errors[key] = err
            log(f"teacher pass: {key} failed: {err}")

    path = cache_dir() / "teacher" / recipe / "pass.json"
    prev = json.loads(path.read_text()) if path.exists() else {}
    passes = prev.get("passes") or ([{k: prev.get(k) for k in PASS_KEYS}] if prev else [])

    def summary(running: bool) -> dict:
        # while it runs the record says "interrupted": a pass killed outright (SIGKILL, the machine
        # stopped) keeps what it had recorded, and it did not finish
        res = {"clips": len(clips), "done": done, "audio_hours": audio_s / 3600, "seconds": time.time() - t0,
               "jobs": jobs, "errors": errors, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "load": round(float(np.mean(loads)) if loads else 0.0, 2), "interrupted": interrupted or running}
        if done:  # the model card reports what the passes that filled the cache took, together
            if prev.get("note"):  # what whoever ran the earlier passes wrote beside them (the card prints it)
                res["note"] = prev["note"]
            res["passes"] = every = [*passes, {k: res[k] for k in PASS_KEYS}]
            res["total"] = {"done": sum(p["done"] or 0 for p in every),
                            "audio_hours": sum(p["audio_hours"] or 0.0 for p in every),
                            "seconds": sum(p["seconds"] or 0.0 for p in every), "passes": len(every)}
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(res, indent=1))
            tmp.replace(path)
        return res

    try:
        for f in as_completed(futures):
            take(f)
            if done % 25 == 0 or done == len(todo):
                el = time.time() - t0
                log(f"teacher pass: {done}/{len(todo)} clips, {audio_s / 3600:.2f} h of audio in {el / 60:.1f} min "
                    f"({audio_s / max(el, 1e-9):.0f}x real time); ~{el / done * (len(todo) - done) / 60:.0f} min left")
                summary(running=True)
    except KeyboardInterrupt:
        # leaving the pool as it is would wait for every queued clip: a Ctrl-C stopped nothing for hours
        interrupted = True
        log("teacher pass: interrupted; finishing the clips in flight, dropping the rest")
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    if interrupted:
        for f in futures:  # clips that finished while the pool shut down are cached: they count
            if f.done() and not f.cancelled() and f not in seen:
                take(f)
    return summary(running=False)


def cmd_teacher_pass(args) -> int:

    clips = load_clips(args.data, args.datasets, roots_of(args), args.limit)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    res = run_pass(clips, jobs=args.jobs, log=log, vgg=getattr(args, "vgg", False))
    if res.get("interrupted"):
        left = sum(not has_targets(c, getattr(args, "vgg", False)) for c in clips)
        log(f"teacher pass stopped: {res['done']} clips done in {res['seconds'] / 60:.1f} min, {left} left; "
            "the same command goes on with them")
        return ExitCode.INTERRUPTED
    log(f"teacher pass finished: {res['done']} clips in {res['seconds'] / 60:.1f} min, {len(res['errors'])} errors")
    return 1 if res["errors"] else 0

