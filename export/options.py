"""The options of ``emotrack export`` and ``export-song`` (torch-free, so ``--help`` works
without the ``train`` extra)."""

from __future__ import annotations

import argparse

# The versions the next export writes (the one shipped now): the CLI's defaults and the export
# functions' share them, so shipping a model bumps one line.
STUDENT_VERSION = "6"
SONG_VERSION = "7"


def add_export_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--run", default="runs/student-s0",
                   help="the run folder written by `emotrack train` (a student's, or the first VAE-LSTM's)")
    e.add_argument("--out", default=None, help="output folder (default: the package's assets/)")
    e.add_argument("--name", default="emotrack-vae-lstm")
    e.add_argument("--model-version", default=STUDENT_VERSION)
    e.add_argument("--summary", default="runs/student-summary.json",
                   help="for a student: the seeds' and leave-one-dataset-out summary (emotrack evaluate --student-runs "
                        "... --format json) the card is written from")
    e.add_argument("--previous-summary", metavar="JSON", nargs=2, default=None,
                   help="for a student: NAME FILE, the summary of the student shipped before (e.g. "
                        "'emotrack-vae-lstm 2' docs/model/student-summary-v2.json); the card compares against it")
    e.add_argument("--float", action="store_true",
                   help="for a student: keep every layer in float32 (default: int8 weights in the encoder's first "
                        "dense layer, a third of the step time; the card compares both on the test splits)")
    e.add_argument("--accurate-runs", nargs="+", metavar="RUN", default=[],
                   help="for an accurate model (a `train --accurate` run): the other seeds' and the --leave-out runs, "
                        "whose test results the card shows beside the exported run's")
    e.add_argument("--bench", metavar="JSON", help="for an accurate model: `emotrack bench --model accurate "
                   "--format json` output, for the card's speed section")


def add_export_song_arguments(es: argparse.ArgumentParser) -> None:
    es.add_argument("--run", default="runs/song", help="the run folder written by `emotrack train-song`")
    es.add_argument("--out", default=None, help="output folder (default: the package's assets/)")
    es.add_argument("--name", default="emotrack-song")
    es.add_argument("--model-version", default=SONG_VERSION)
    es.add_argument("--previous", metavar="ONNX",
                    help="a song model shipped before (e.g. `git show HEAD:assets/emotrack-song.onnx > old.onnx`): "
                         "the card gives its answers on the same test songs, through the runtime, as a row")
    es.add_argument("--cv", nargs="+", metavar="JSON",
                    help="cv.json files of `emotrack train-song --cv` on the same dynamic model: the card says whether "
                         "validation's choice of head is more than the folds' noise")
    es.add_argument("--seed-runs", nargs="+", metavar="RUN",
                    help="train-song runs (their report.json) of the same recipe on the dynamic models of the other "
                         "training seeds: the card gives the held-out numbers of each and their mean ± sd")
