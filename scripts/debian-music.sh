#!/usr/bin/env bash
# Opt-in: fetch Debian's free game-music packages (about 3 GB of .debs, ~28 h of music) and
# unpack them without installing anything, for VAE pretraining and teacher distillation
# (`emotrack train --debian-music DIR`). Not part of the test set-up.
#
#   bash scripts/debian-music.sh [DIR]      # default: ~/.cache/emotrack/debian-music
#
# Each package lands in DIR/root/<package>/ (dpkg -x) with its copyright file under
# usr/share/doc/<package>/; DIR/packages.tsv records package, version and .deb size.
# `emotrack debian-music --scan DIR` then lists the audio (music files >= 30 s, also those
# inside .pk3 zip archives), their licences and hours. Safe to re-run: it skips what is there.
set -euo pipefail
DIR=${1:-${EMOTRACK_CACHE:-$HOME/.cache/emotrack}/debian-music}
PKGS=(warzone2100-music ufoai-music planetblupi-music-ogg wesnoth-1.16-music supertux-data
      widelands-data hedgewars-data nexuiz-music supertuxkart-data colobot-common-sounds
      singularity-music freedroidrpg-data drascula-music megaglest-data flare-game pushover-data
      fretsonfire-songs-muldjord fretsonfire-songs-sectoid openclonk-data hyperrogue-music
      frozen-bubble-data asc-music)
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  echo "debian-music: needs apt-get and dpkg (Debian/Ubuntu). Elsewhere, put any folder of free" >&2
  echo "music files under DIR/root/<name>/ and scan it the same way." >&2
  exit 1
fi
mkdir -p "$DIR/debs" "$DIR/root"
cd "$DIR/debs"
printf 'package\tversion\tdeb_bytes\n' > "$DIR/packages.tsv.tmp"
for p in "${PKGS[@]}"; do
  if ! ls "${p}"_*.deb >/dev/null 2>&1; then
    echo "debian-music: downloading $p"
    if ! apt-get download -q "$p" >/dev/null 2>&1; then
      echo "debian-music: $p is not available from the configured apt sources; skipped" >&2
      continue
    fi
  fi
  deb=$(ls "${p}"_*.deb | head -1)
  if [ ! -e "$DIR/root/$p/.unpacked" ]; then
    rm -rf "$DIR/root/$p"
    dpkg -x "$deb" "$DIR/root/$p"
    touch "$DIR/root/$p/.unpacked"
  fi
  ver=$(dpkg-deb -f "$deb" Version)
  printf '%s\t%s\t%s\n' "$p" "$ver" "$(stat -c %s "$deb")" >> "$DIR/packages.tsv.tmp"
done
mv "$DIR/packages.tsv.tmp" "$DIR/packages.tsv"
echo "debian-music: unpacked into $DIR/root ($(du -sh "$DIR/root" | cut -f1)); the .debs in $DIR/debs may be deleted"
