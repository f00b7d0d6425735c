#!/usr/bin/env bash
# Ship the student trained by scripts/train-student.sh: the mechanical steps of a release, in
# the order docs/training.md gives them, each stopping the script on failure.
#
#   bash scripts/ship-student.sh RUNS KEEP [TRAIN-SONG ARGS...]   # e.g. runs-v6 clip-label-runs
#
# RUNS holds the finished runs (report.json each: the three seeds and the film music's three
# left-out runs at least; lodo-panda4q and lodo-emotify when done) and RUNS/student-summary.json; a fresh
# start first prints scripts/compare_release.py's tables (kept in RUNS/compare.md). Run it
# with nothing else on the machine: step 3 is the benchmark the card reports.
#  1. keep the runs' reports in docs/model/experiments/KEEP/<run>/report.json (a run's folder
#     does not outlive its machine) and the summary shipped so far as
#     docs/model/student-summary-v<old>.json, the one the new card compares against
#  2. the new summary, docs/model/student-summary.json, from the kept reports
#  3. export seed 0 to a scratch folder and benchmark it against the shipped graph (same sitting)
#  4. bump export/options.py (student and song versions) and export to assets/ with the card
#  5. the song model on the new encoder (train-song; train-song --cv 5; train-song on seeds 1 and 2's dynamic
#     models, their reports kept in KEEP/song-s1, -s2; export-song against the shipped one)
#  6. the golden trajectory and the screenshots
# Each step is recorded in RUNS/ship.steps when it ends, so the same command resumes after a stop.
# What stays by hand: the numbers in README, CHANGELOG and docs/ (the card's tables are the
# source: assets/MODEL_CARD.md), scripts/train-student.sh's RECIPE if the recipe changed, and
# the whole test suite before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/ship-student.sh RUNS KEEP [TRAIN-SONG ARGS...]   (e.g. runs-v6 clip-label-runs)" >&2
  exit 2
fi
RUNS=${1%/}; KEEP=docs/model/experiments/$2; shift 2
EMO=.venv/bin/emotrack; PY=.venv/bin/python
[ -x "$EMO" ] || { echo "ship: $EMO not found: run bash scripts/setup.sh first" >&2; exit 2; }
# the seeds and the film music's left-out runs decide; the Panda and Emotify left-out runs only
# add rows to the card, so a release need not wait for them (emotrack-vae-lstm 4's precedent)
NAMES=(student-s0 student-s1 student-s2 lodo-soundtracks lodo-soundtracks-s1 lodo-soundtracks-s2)
for n in "${NAMES[@]}"; do
  [ -f "$RUNS/$n/report.json" ] || { echo "ship: $RUNS/$n/report.json missing: train it first" \
    "(bash scripts/train-student.sh $RUNS ...)" >&2; exit 1; }
done
LATER=()
for n in lodo-panda4q lodo-emotify; do
  if [ -f "$RUNS/$n/report.json" ]; then NAMES+=("$n"); else LATER+=("$n"); fi
done
[ -f "$RUNS/student-s0/student.pt" ] || { echo "ship: $RUNS/student-s0/student.pt missing" >&2; exit 1; }
[ -f "$RUNS/student-summary.json" ] || { echo "ship: $RUNS/student-summary.json missing: the end of" \
  "bash scripts/train-student.sh $RUNS writes it" >&2; exit 1; }
STATE=$RUNS/ship.steps  # the steps done so far: the same command resumes after the last one
touch "$STATE"
if [ ! -s "$STATE" ] && ! git diff --quiet HEAD -- assets export/options.py docs/model/student-summary.json; then
  echo "ship: assets/, export/options.py or docs/model/student-summary.json has uncommitted changes;" \
    "ship from a clean tree (git stash, or git checkout those paths to start over)" >&2; exit 1
fi
# the versions and graphs shipped so far, from the last commit (this script changes the tree)
old=$(git show HEAD:export/options.py | sed -n 's/^STUDENT_VERSION = "\([0-9]*\)"$/\1/p')
old_song=$(git show HEAD:export/options.py | sed -n 's/^SONG_VERSION = "\([0-9]*\)"$/\1/p')
[ -n "$old" ] && [ -n "$old_song" ] || { echo "ship: no versions in export/options.py" >&2; exit 1; }
new=$((old + 1)); new_song=$((old_song + 1))
echo "ship: emotrack-vae-lstm $old -> $new, emotrack-song $old_song -> $new_song (steps done: $(tr '\n' ' ' <"$STATE"))"
SCRATCH=$(mktemp -d)
trap '[ $? -ne 0 ] && echo "ship: stopped; fix the cause and run the same command again: it resumes after the steps in $STATE" >&2; rm -rf "$SCRATCH"' EXIT
git show HEAD:assets/emotrack-vae-lstm.onnx >"$SCRATCH/old.onnx"
git show HEAD:assets/emotrack-song.onnx >"$SCRATCH/old-song.onnx"
prev=docs/model/student-summary-v$old.json

step() {  # N TITLE: true when step N is still to do (and says so)
  if grep -qx "$1" "$STATE"; then echo "$1. $2: done before"; return 1; fi
  echo "$1. $2"
}
done_step() { echo "$1" >>"$STATE"; }

if [ ! -s "$STATE" ]; then  # what is being shipped, against what (the decision's numbers), kept beside the runs
  git show HEAD:docs/model/student-summary.json >"$SCRATCH/old-summary.json"
  $PY scripts/compare_release.py "$SCRATCH/old-summary.json" "$RUNS/student-summary.json" | tee "$RUNS/compare.md"
fi

if step 1 "reports -> $KEEP"; then
  for n in "${NAMES[@]}"; do mkdir -p "$KEEP/$n"; cp "$RUNS/$n/report.json" "$KEEP/$n/report.json"; done
  [ -f "$prev" ] || git show HEAD:docs/model/student-summary.json >"$prev"
  done_step 1
fi

if step 2 "summary -> docs/model/student-summary.json"; then
  lodo=(); for n in "${NAMES[@]}"; do [[ $n == lodo-* ]] && lodo+=("$KEEP/$n"); done
  $EMO evaluate --student-runs "$KEEP"/student-s0 "$KEEP"/student-s1 "$KEEP"/student-s2 \
    --lodo-runs "${lodo[@]}" --format json >"$SCRATCH/summary.json"
  cp "$SCRATCH/summary.json" docs/model/student-summary.json
  done_step 2
fi

if step 3 "scratch export and benchmark against emotrack-vae-lstm $old (nothing else should be running)"; then
  $EMO export --run "$RUNS/student-s0" --summary docs/model/student-summary.json --out "$SCRATCH/new" \
    --model-version "$new"
  $EMO bench --model "$SCRATCH/new/emotrack-vae-lstm.onnx" --memory --reference "$SCRATCH/old.onnx" \
    --step-rate 48000 --format json >"$SCRATCH/bench.json"
  cp "$SCRATCH/bench.json" assets/emotrack-vae-lstm.bench.json
  done_step 3
fi

if step 4 "versions $new / $new_song and export to assets/"; then
  sed -i "s/^STUDENT_VERSION = \"$old\"$/STUDENT_VERSION = \"$new\"/; s/^SONG_VERSION = \"$old_song\"$/SONG_VERSION = \"$new_song\"/" \
    export/options.py
  $EMO export --run "$RUNS/student-s0" --summary docs/model/student-summary.json \
    --previous-summary "emotrack-vae-lstm $old" "$prev"
  done_step 4
fi

if step 5 "the song model -> $RUNS/song (log $RUNS/song.log)"; then
  EMOTRACK_MODEL=assets/emotrack-vae-lstm.onnx $EMO train-song --run "$RUNS/student-s0" --out "$RUNS/song" "$@" \
    >>"$RUNS/song.log" 2>&1 || { tail -3 "$RUNS/song.log" >&2; exit 1; }
  # the heads on five folds of the validation songs, for the card (is validation's choice more than noise?)
  EMOTRACK_MODEL=assets/emotrack-vae-lstm.onnx $EMO train-song --cv 5 --run "$RUNS/student-s0" --out "$RUNS/song-cv" \
    >>"$RUNS/song.log" 2>&1 || { tail -3 "$RUNS/song.log" >&2; exit 1; }
  # the same recipe on seeds 1 and 2's dynamic models, for the card's mean ± sd over seeds
  for s in 1 2; do
    $EMO export --run "$RUNS/student-s$s" --summary docs/model/student-summary.json --out "$RUNS/export-s$s" \
      >>"$RUNS/song.log" 2>&1 || { tail -3 "$RUNS/song.log" >&2; exit 1; }
    EMOTRACK_MODEL="$RUNS/export-s$s/emotrack-vae-lstm.onnx" $EMO train-song --run "$RUNS/student-s$s" \
      --out "$RUNS/song-s$s" "$@" >>"$RUNS/song.log" 2>&1 || { tail -3 "$RUNS/song.log" >&2; exit 1; }
    mkdir -p "$KEEP/song-s$s" && cp "$RUNS/song-s$s/report.json" "$KEEP/song-s$s/"
  done
  $EMO export-song --run "$RUNS/song" --previous "$SCRATCH/old-song.onnx" --cv "$RUNS/song-cv/cv.json" \
    --seed-runs "$KEEP/song-s1" "$KEEP/song-s2"
  done_step 5
fi

if step 6 "golden trajectory and screenshots"; then
  $PY tests/golden/regen.py
  $PY scripts/screenshots.py
  done_step 6
fi
if [ ${#LATER[@]} -gt 0 ]; then
  echo "ship: shipped without ${LATER[*]} (not finished: the card has no row for them). When they finish:"
  echo "      copy their report.json to $KEEP/<run>/, run step 2's evaluate with all eight into"
  echo "      docs/model/student-summary.json and step 4's export again (without the version bump)"
fi
echo "ship: done. By hand: README, CHANGELOG and docs/ numbers from assets/MODEL_CARD.md;"
echo "      scripts/train-student.sh's RECIPE if the recipe changed; the whole suite; git add $KEEP $prev"
