#!/usr/bin/env bash
# The shipped model's whole recipe, resumable: every step skips what is already done, logs to
# a file and can be stopped at any time (a run that stops loses at most one epoch).
#
#   bash scripts/debian-music.sh              # once: Debian's free music (opt-in, ~3 GB; needed by
#                                             # the recipe: EMOTRACK_DEBIAN=none trains without it)
#   bash scripts/train-student.sh [RUNS] [TRAIN ARGS...]   # default RUNS=runs
#
# Every run gets emotrack-vae-lstm 6's recipe: StudentConfig's defaults (emotrack-vae-lstm 4's),
# the key and mode (RECIPE below: the frame's pitch-class profile and its 10 s average in the
# LSTM, and in stage 2's pseudo-label teachers) and whole-clip labels (a rating of a whole
# excerpt scored on the clip's mean prediction in stage 2). TRAIN ARGS come after it and go to
# every `emotrack train --teachers` run (a later --set wins), to train another recipe the same
# way, e.g. emotrack-vae-lstm 5's: `bash scripts/train-student.sh runs-v5 --set label_pool=frame`;
# 4's: add `--set head_tonal=false --set tonal_avg=0 --set tonal=false`; 3's: add `--set front=conv`; 2's: add also
# `--pseudo ridge --set lambda_frame_va=0 --set frame_epochs=10 --set 'channels=[32,64,96]'
# --set enc_hidden=384`.
#
# 1. the teachers at every frame of every clip (cached in ~/.cache/emotrack/teacher)
# 2. the student with seeds 0, 1, 2 (RUNS/student-s0..2), two at a time on one thread each
# 3. leave-one-dataset-out runs for the three real-recording sets (RUNS/lodo-<set>), the film music's
#    with seeds 1 and 2 as well (RUNS/lodo-soundtracks-s1, -s2): the goal is judged on the three runs' mean
# 4. the summary the model card is written from (RUNS/student-summary.json)
# Then: emotrack export --run RUNS/student-s0   (ONNX + parity gate + card; docs/training.md has every step)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
shift $(( $# > 0 ? 1 : 0 ))
RECIPE=(--set tonal=true --set tonal_avg=10 --set head_tonal=true --set label_pool=clip)
EXTRA=("${RECIPE[@]}" "$@")
DEBIAN=${EMOTRACK_DEBIAN:-${EMOTRACK_CACHE:-$HOME/.cache/emotrack}/debian-music}
EMO=.venv/bin/emotrack
[ -x "$EMO" ] || { echo "train-student: $EMO not found: run bash scripts/setup.sh first" >&2; exit 2; }
roots=()
if [ -d "$DEBIAN/root" ]; then
  roots=(--debian-root "$DEBIAN")
elif [ "$DEBIAN" != none ]; then  # without it the runs would silently be another recipe
  echo "train-student: no Debian music under $DEBIAN/root; the shipped recipe learns from it too." >&2
  echo "  Run bash scripts/debian-music.sh first (or set EMOTRACK_DEBIAN to where it is), or set" >&2
  echo "  EMOTRACK_DEBIAN=none to train without it on purpose." >&2
  exit 2
fi
mkdir -p "$RUNS"

# logs are appended to, so a resumed run keeps the epochs it logged before the stop
echo "teacher pass -> $RUNS/teacher-pass.log"
$EMO teacher-pass "${roots[@]}" --jobs 2 >>"$RUNS/teacher-pass.log" 2>&1

train() {  # NAME ARGS...
  local name=$1; shift
  if [ -f "$RUNS/$name/report.json" ]; then echo "$name: done"; return; fi
  mkdir -p "$RUNS/$name"
  echo "$name -> $RUNS/$name/train.log"
  OMP_NUM_THREADS=1 $EMO train --teachers "${roots[@]}" --threads 1 --jobs 1 --out "$RUNS/$name" "$@" "${EXTRA[@]}" \
    >>"$RUNS/$name/train.log" 2>&1
}

# two at a time: the next run starts as soon as either core is free (runs differ by up to 20 %)
# the film music's three left-out seeds early: the goal the recipe is furthest from is judged on their mean
queue=("student-s2 --seed 2" "lodo-soundtracks --leave-out soundtracks"
       "lodo-soundtracks-s1 --leave-out soundtracks --seed 1" "lodo-soundtracks-s2 --leave-out soundtracks --seed 2"
       "student-s0 --seed 0" "student-s1 --seed 1" "lodo-panda4q --leave-out panda4q" "lodo-emotify --leave-out emotify")
for job in "${queue[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
  # shellcheck disable=SC2086  # a run's name and arguments, split on purpose
  train $job &
done
wait

$EMO evaluate --student-runs "$RUNS"/student-s0 "$RUNS"/student-s1 "$RUNS"/student-s2 \
  --lodo-runs "$RUNS"/lodo-soundtracks "$RUNS"/lodo-soundtracks-s1 "$RUNS"/lodo-soundtracks-s2 \
  "$RUNS"/lodo-panda4q "$RUNS"/lodo-emotify \
  --format json >"$RUNS/student-summary.json"
echo "summary: $RUNS/student-summary.json"
