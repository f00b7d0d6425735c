#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: system packages, a virtual
# environment in .venv with emotrack (editable) + training and test extras.
# Safe to re-run: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# fluidsynth + a GPL General-MIDI SoundFont render VGMIDI/EMOPIA for training;
# libportaudio2 is what sounddevice needs for live input; pulseaudio (+ utils and the
# ALSA plugin) gives the tests real audio capture through a null sink, without a sound card;
# chromium is the headless browser the dashboard test drives; qemu-user runs the golden-trajectory
# test on an emulated x86 CPU without VNNI, where onnxruntime takes other integer kernels.
PKGS=(fluidsynth timgm6mb-soundfont libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins chromium fonts-dejavu-core
      qemu-user)
missing=()
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  # not Debian/Ubuntu: the Python side still installs; say what the system side needs
  cat >&2 <<'MSG'
setup: no apt-get here (not Debian/Ubuntu), so system packages are not installed.
  emotrack itself needs only Python 3.11+: on macOS and Windows sounddevice's wheel brings
  PortAudio; on other Linux distributions install PortAudio (e.g. `dnf install portaudio`,
  `pacman -S portaudio`). Training on VGMIDI/EMOPIA needs fluidsynth and a General-MIDI
  SoundFont (set EMOTRACK_SOUNDFONT); the live-capture and dashboard tests need PulseAudio
  (pactl) and Chromium and are skipped where those are missing.
  Going on with the virtual environment.
MSG
else
  for p in "${PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: need root to install: ${missing[*]} (apt-get install -y ${missing[*]})" >&2; exit 1; fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch is pinned (its CPU wheel); an unpinned torch would pull gigabytes of CUDA packages
log=$(mktemp)
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[train,dev,gui,ffmpeg]' >"$log" 2>&1; then
  cat "$log" >&2; echo "setup: pip install failed (log above)" >&2; exit 1
fi
# the teachers' weights ship in musicnn's wheel; its code (TensorFlow 1) is never used, so
# its dependencies (an old TensorFlow and numpy<1.17) are not installed
if ! .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps musicnn==0.1.0 >"$log" 2>&1; then
  cat "$log" >&2; echo "setup: pip install musicnn failed (log above)" >&2; exit 1
fi
rm -f "$log"
.venv/bin/python -c "import emotrack, torch, onnxruntime; print('setup: emotrack', emotrack.__version__, '| torch', torch.__version__, '| onnxruntime', onnxruntime.__version__)"
