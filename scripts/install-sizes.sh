#!/usr/bin/env bash
# Sizes of fresh virtual environments with emotrack installed from this checkout:
# headless (`pip install .`), with FFmpeg decoding, and with the window as well. Prints a
# Markdown table (docs/install.md has the last one). Needs network access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| install | venv size | emotrack live |"
echo "|---|---|---|"
for spec in "." ".[ffmpeg]" ".[gui,ffmpeg]"; do
  "$PY" -m venv "$tmp/v"
  "$tmp/v/bin/pip" install -q --disable-pip-version-check "$spec" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
  mb=$(du -sm "$tmp/v" | cut -f1)
  if "$tmp/v/bin/python" -c "import PySide6" 2>/dev/null; then what="opens the window"; else what="headless (says how to get the window)"; fi
  torch=$("$tmp/v/bin/python" -c "import importlib.util as u; print('torch installed' if u.find_spec('torch') else 'no torch')")
  echo "| \`pip install '$spec'\` | $mb MB ($torch) | $what |"
  rm -rf "$tmp/v"
done
