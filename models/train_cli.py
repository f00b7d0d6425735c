"""``emotrack train``: the VAE-LSTM and its baselines (``train.run_training``), or, with
``--teachers``, the student taught by the musicnn teachers (``student.run_student``), or,
with ``--accurate``, the opt-in accurate dynamic model's head on the teachers' outputs
(``accurate.run_accurate``). Main thread; torch."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import replace
from pathlib import Path

from emotrack.realtime.exitcodes import UsageError

from .accurate import REAL_SETS, SETTINGS, base_config, run_accurate
from .cli import load_clips, roots_of
from .data import default_data_root
from .distill import StudentConfig, check_config, leave_out
from .evaluate import format_table
from .student import run_student
from .train import TrainConfig, run_training


def _sources(args: argparse.Namespace) -> dict:
    return {"data": str(Path(args.data) if args.data else default_data_root()), "datasets": args.datasets,
            "limit": args.limit, "roots": roots_of(args), "leave_out": getattr(args, "leave_out", None),
            "command": "emotrack " + " ".join(sys.argv[1:])}


def cmd_train(args: argparse.Namespace) -> int:
    if args.keep_audio and not (args.teachers and args.leave_out):
        print("emotrack train: --keep-audio keeps the audio of the left-out set when training the student; "
              "give --teachers --leave-out DATASET with it", file=sys.stderr)
        return 2
    if args.accurate:
        return _train_accurate(args)
    if args.teachers:
        cfg = StudentConfig.quick() if args.quick else StudentConfig()
        cfg = replace(cfg, seed=args.seed, threads=args.threads)
        if args.pseudo:
            cfg = replace(cfg, pseudo_source=args.pseudo)
        cfg = checked_settings(cfg, args.set)
        clips = load_clips(args.data, args.datasets, roots_of(args), args.limit)
        if args.leave_out:
            clips, cfg = leave_out(clips, cfg, args.leave_out, keep_audio=args.keep_audio)
        try:  # input it cannot train on (no teacher outputs, a set without training clips): one line, exit 2;
            # missing teacher outputs are found before any training, and checkpoints already written stay
            report = run_student(clips, Path(args.out), cfg, jobs=args.jobs, sources=_sources(args))
        except ValueError as e:
            print(f"emotrack train: {e}", file=sys.stderr)
            return 2
        print(format_table(report["test"]))
        return 0
    clips = load_clips(args.data, args.datasets, roots_of(args), args.limit)
    cfg = TrainConfig.quick() if args.quick else TrainConfig()
    if args.no_baselines:
        cfg = TrainConfig(**{**cfg.__dict__, "baselines": False})
    report = run_training(clips, Path(args.out), cfg, jobs=args.jobs, sources=_sources(args))
    print(format_table(report["test"]))
    return 0


def checked_settings(cfg: StudentConfig, items: list[str]) -> StudentConfig:
    """``cfg`` with ``--set`` applied and checked: what it cannot use (an unknown field, widths or
    augmentation it cannot train) is a UsageError, one line and exit 2, before the data is read."""
    try:
        cfg = with_settings(cfg, items)
        check_config(cfg)
    except ValueError as e:
        raise UsageError(str(e)) from e
    return cfg


def with_settings(cfg: StudentConfig, items: list[str]) -> StudentConfig:
    """``cfg`` with each ``FIELD=VALUE`` applied (VALUE read as JSON, else as a string; a
    list becomes a tuple); an unknown field or a value of the wrong kind is a ValueError."""
    fields = {f.name: f for f in dataclasses.fields(StudentConfig)}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        value = tuple(value) if isinstance(value, list) else value
        old = getattr(cfg, name)
        ok = (old is None or value is None or isinstance(value, type(old))
              or (isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool)))
        if not ok:
            raise ValueError(f"--set {item!r}: {name} takes {type(old).__name__} values, not {value!r}")
        cfg = replace(cfg, **{name: float(value) if isinstance(old, float) else value})
    return cfg


def _train_accurate(args: argparse.Namespace) -> int:
    if args.teachers:
        print("emotrack train: --accurate and --teachers train different models; give one", file=sys.stderr)
        return 2
    args.datasets = args.datasets or list(REAL_SETS)  # the real recordings by default: the model is for them
    cfg = base_config(args.seed, args.threads, args.quick)
    cfg = checked_settings(cfg, args.set)  # its own SETTINGS (width, input dropout, lambda_pseudo) go on top
    clips = load_clips(args.data, args.datasets, roots_of(args), args.limit)
    if args.leave_out:
        clips, cfg = leave_out(clips, cfg, args.leave_out)
    try:
        report = run_accurate(clips, Path(args.out), cfg, SETTINGS[:1] if args.quick else SETTINGS,
                              jobs=args.jobs, sources=_sources(args))
    except ValueError as e:
        print(f"emotrack train: {e}", file=sys.stderr)
        return 2
    print(format_table(report["test"]))
    return 0
