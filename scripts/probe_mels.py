"""Run an ``emotrack`` command with the frame's number of mel bands replaced, to measure what
a change to the feature contract would buy before making it (training only; nothing shipped
reads the result):

    python scripts/probe_mels.py 96 train --teachers --datasets soundtracks panda4q emotify \\
        --threads 1 --jobs 1 --set frame_epochs=4 --set frames_per_epoch=80000 --seed 0 --out probe/m96

``FEATURES`` (``emotrack.realtime.core.config``) is replaced before any other emotrack module
is imported, so the features cache (keyed by the config's fingerprint: the probe's frames
sit beside the shipped ones), the nets' input shape and the runtime all see the probe's frame.
Everything else about the frame (0.5 s, 30 Hz-11 kHz, the STFT) stays. The teacher targets
do not depend on it. docs/training.md has the probe that used it.
"""

from __future__ import annotations

import dataclasses
import sys

import emotrack.realtime.core.config as config


def main() -> int:
    if len(sys.argv) < 3 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 8:
        print("usage: python scripts/probe_mels.py N_MELS EMOTRACK-COMMAND [ARGS...]  (N_MELS >= 8)", file=sys.stderr)
        return 2
    config.FEATURES = dataclasses.replace(config.FEATURES, n_mels=int(sys.argv[1]))
    # imported after the replacement, so that every module sees it
    from emotrack.realtime.cli import main as emotrack

    return emotrack(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
