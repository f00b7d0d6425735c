"""The options of ``emotrack export`` and ``export-song`` (torch-free, so ``--help`` works
without the ``train`` extra)."""

from __future__ import annotations

import argparse


def add_export_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--run", default="runs/default", help="the run folder written by `emotrack train`")
    e.add_argument("--out", default=None, help="output folder (default: the package's assets/)")
    e.add_argument("--name", default="emotrack-vae-lstm")
    e.add_argument("--model-version", default="1")


def add_export_song_arguments(es: argparse.ArgumentParser) -> None:
    es.add_argument("--run", default="runs/song", help="the run folder written by `emotrack train-song`")
    es.add_argument("--out", default=None, help="output folder (default: the package's assets/)")
    es.add_argument("--name", default="emotrack-song")
    es.add_argument("--model-version", default="1")
