"""Regenerate the golden trajectory after re-exporting the shipped model:
``.venv/bin/python tests/golden/regen.py``."""

import itertools
import json
from pathlib import Path

from emotrack import load_model, stream_file
from emotrack.realtime.assets import demo_path

demo = demo_path()
out = Path(__file__).parent / "demo_first20s.jsonl"
lines = [json.dumps(p.to_dict()) for p in itertools.takewhile(lambda p: p.t <= 20.0, stream_file(load_model(), demo))]
out.write_text("\n".join(lines) + "\n")
print(f"wrote {len(lines)} predictions to {out}")
