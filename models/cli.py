"""``emotrack train`` and ``emotrack evaluate`` (main thread, offline).

``train`` needs torch; ``evaluate`` runs an exported ONNX model through the runtime on the
cached frames of each test split and needs no torch.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from .data import ROOT_LOADERS, Clip, default_data_root, load_all


def clips_from_args(args) -> list[Clip]:
    roots = {n: getattr(args, f"{n}_root") for n in ROOT_LOADERS if getattr(args, f"{n}_root", None)}
    data = Path(args.data) if args.data else default_data_root()
    names = args.datasets
    if names is None and roots and not data.exists():
        names = []  # a user with only their own DEAM/PMEmo audio
    if names != [] and not data.exists():
        raise FileNotFoundError(f"data folder {data} not found; pass --data or set EMOTRACK_DATA")
    return load_all(data, names, roots) if names != [] else load_all(data, [], roots)


def limit_clips(clips: list[Clip], n: int | None) -> list[Clip]:
    if not n:
        return clips
    seen: dict = defaultdict(int)
    out = []
    for c in clips:
        k = (c.dataset, c.split)
        if seen[k] < n:
            seen[k] += 1
            out.append(c)
    return out


def cmd_train(args) -> int:
    from .train import TrainConfig, run_training

    clips = limit_clips(clips_from_args(args), args.limit)
    cfg = TrainConfig.quick() if args.quick else TrainConfig()
    if args.no_baselines:
        cfg = TrainConfig(**{**cfg.__dict__, "baselines": False})
    out = Path(args.out)
    report = run_training(clips, out, cfg, jobs=args.jobs)
    report_sources = {"data": str(Path(args.data) if args.data else default_data_root()),
                      "datasets": args.datasets, "limit": args.limit,
                      "roots": {n: getattr(args, f"{n}_root") for n in ROOT_LOADERS if getattr(args, f"{n}_root", None)},
                      "command": "emotrack " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("emotrack") else None}
    report["sources"] = report_sources
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    from .evaluate import format_table

    print(format_table(report["test"]))
    return 0


def evaluate_model(model_path, clips: list[Clip], split: str = "test") -> dict:
    """Run an ONNX model (through the runtime) over the cached frames of ``split``."""
    import numpy as np
    from emotrack.realtime.model import load_model

    from .evaluate import evaluate_predictions
    from .seqs import build_seqs

    model = load_model(model_path)
    seqs = build_seqs([c for c in clips if c.split == split])
    preds = {}
    for s in seqs:
        o, _ = model.run(s.mel.astype(np.float32), model.zero_state())
        preds[s.key] = np.stack([o.valence, o.arousal, o.valence_std, o.arousal_std], 1)
    return evaluate_predictions(seqs, preds)


def cmd_evaluate(args) -> int:
    from .evaluate import format_table

    try:
        clips = clips_from_args(args)
    except FileNotFoundError as e:
        print(f"emotrack evaluate: {e}", file=sys.stderr)
        return 2
    res = {"this model": evaluate_model(args.model, clips, args.split)}
    if args.run:
        rep = json.loads((Path(args.run) / "report.json").read_text())
        res.update({k: v for k, v in rep["test"].items()})
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(format_table(res))
    return 0
