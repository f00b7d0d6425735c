"""Dataset loaders: every set in ``../shared/data`` and the official DEAM / PMEmo / emoMusic
layouts under a user's ``--root``. Offline code (training, evaluation), no threads.

Each loader returns :class:`Clip` records with a fixed split by song / piece / album
(never by frame): see :func:`split_of`. Labels are put on the DEAM scale, [-1, 1].
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .debian import scan as scan_debian

SPLITS = ("train", "val", "test")


def default_data_root() -> Path:
    """$EMOTRACK_DATA, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("EMOTRACK_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    return here.parent / "shared" / "data"


def split_of(dataset: str, group: str, val: int = 15, test: int = 15) -> str:
    """Fixed split of a group (song, piece, album...): sha1 of "dataset:group" mod 100.

    0..(99-val-test) -> train, then val, then test. Stable across machines and versions.
    """
    h = int(hashlib.sha1(f"{dataset}:{group}".encode()).hexdigest(), 16) % 100
    if h < 100 - val - test:
        return "train"
    return "val" if h < 100 - test else "test"


QUADRANT_SIGNS = {1: (1.0, 1.0), 2: (-1.0, 1.0), 3: (-1.0, -1.0), 4: (1.0, -1.0)}


@dataclass
class Clip:
    """One audio item and its labels. ``dyn_*``: frame-level labels at times ``dyn_t``
    (seconds from the start of the audio, on the 0.5 s grid of frame ends)."""

    dataset: str
    id: str
    group: str
    split: str
    audio: Path | None = None
    midi: Path | None = None
    valence: float | None = None  # static, DEAM scale
    arousal: float | None = None
    quadrant: int | None = None  # 1..4 (Russell)
    dyn_t: np.ndarray | None = None
    dyn_v: np.ndarray | None = None
    dyn_a: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.id}"

    @property
    def kind(self) -> str:
        if self.dyn_t is not None:
            return "dynamic"
        if self.valence is not None:
            return "static"
        if self.quadrant is not None:
            return "quadrant"
        return "unlabelled"

    def frame_targets(self, frame_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame (valence, arousal) for frames ending at ``frame_ends``; NaN = no label.

        Dynamic labels: the value at the frame end (nearest point of the 2 Hz grid within
        0.25 s). Static labels: the clip value on every frame. Quadrants: NaN (use signs).
        """
        n = len(frame_ends)
        v = np.full(n, np.nan, dtype=np.float32)
        a = np.full(n, np.nan, dtype=np.float32)
        if self.dyn_t is not None:
            idx = np.searchsorted(self.dyn_t, frame_ends - 0.25 + 1e-9)
            ok = idx < len(self.dyn_t)
            idx_ok = idx[ok]
            close = np.abs(self.dyn_t[idx_ok] - frame_ends[ok]) <= 0.25 + 1e-9
            sel = np.nonzero(ok)[0][close]
            v[sel] = self.dyn_v[idx_ok[close]]
            a[sel] = self.dyn_a[idx_ok[close]]
        elif self.valence is not None:
            v[:] = self.valence
            a[:] = self.arousal
        return v, a


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} not found")
    return path


# ---------------------------------------------------------------- real audio in shared/data


def load_panda4q(root: Path) -> list[Clip]:
    """Panda 4Q: 900 clips, one Russell quadrant each; split by song id."""
    d = _require(root / "panda4q", "Panda 4Q")
    clips = []
    with open(d / "annotations.csv", newline="") as f:
        for row in csv.DictReader(f):
            song, q = row["Song"].strip(), row["Quadrant"].strip()
            clips.append(Clip("panda4q", song, song, split_of("panda4q", song),
                              audio=d / q / f"{song}.opus", quadrant=int(q[1])))
    return clips


# GEMS-9 -> valence/arousal: each category is placed by its game gloss (Aljanaki et al.
# 2016, the words shown to listeners) on Russell's (1980) circumplex. The placement is
# ours, a documented judgement, not a measured mapping: only the quadrant (signs) is
# well founded; magnitudes are 0.25 / 0.5 / 0.75 by how central the gloss is to it.
GEMS_VA = {
    "amazement": (0.5, 0.5),          # wonder, happiness
    "solemnity": (0.25, -0.25),       # transcendence, inspiration, thrills
    "tenderness": (0.5, -0.5),        # sensuality, affect, love
    "nostalgia": (-0.25, -0.5),       # dreamy, melancholic, sentimental
    "calmness": (0.5, -0.75),         # relaxation, serenity
    "power": (0.25, 0.75),            # strong, heroic, triumphant, energetic
    "joyful_activation": (0.75, 0.75),  # dancing, bouncy, animated, amused
    "tension": (-0.75, 0.5),          # nervous, impatient, irritated
    "sadness": (-0.75, -0.5),         # depressed, sorrowful
}
EMOTIFY_GENRE_OFFSET = {"classical": 0, "rock": 100, "electronic": 200, "pop": 300}


def load_emotify(root: Path) -> list[Clip]:
    """Emotify: 400 clips, GEMS-9 listener ticks mapped to V/A with :data:`GEMS_VA`.

    Per listener: the mean position of the ticked categories; per clip: the mean over
    listeners who ticked at least one. Split by track.
    """
    d = _require(root / "emotify", "Emotify")
    per_track: dict[int, list[tuple[float, float]]] = defaultdict(list)
    genre_of: dict[int, str] = {}
    with open(d / "ratings.csv", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        for row in reader:
            r = dict(zip(header, (x.strip() for x in row), strict=False))
            tid = int(r["track id"])
            genre_of[tid] = r["genre"]
            ticked = [GEMS_VA[k] for k in GEMS_VA if r.get(k) == "1"]
            if ticked:
                per_track[tid].append(tuple(np.mean(ticked, axis=0)))
    clips = []
    for tid in sorted(per_track):
        genre = genre_of[tid]
        v, a = np.mean(per_track[tid], axis=0)
        n = tid - EMOTIFY_GENRE_OFFSET[genre]
        clips.append(Clip("emotify", str(tid), str(tid), split_of("emotify", str(tid)),
                          audio=d / genre / f"{n}.opus", valence=float(v), arousal=float(a),
                          meta={"genre": genre, "listeners": len(per_track[tid])}))
    return clips


def load_soundtracks(root: Path) -> list[Clip]:
    """Eerola & Vuoskoski Set 1 (240 clips): mean valence and energy ratings, 1-9 -> (x-5)/4.

    Split by album, so excerpts of one film track (and one film) stay on one side.
    """
    d = _require(root / "soundtracks", "Soundtracks")
    album = {}
    with open(d / "tracklist.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            album[row["Nro"].strip()] = row["Album name"].strip()
    clips = []
    with open(d / "ratings.csv", newline="") as f:
        for row in csv.DictReader(f):
            num = row["number"].strip()
            group = album.get(num, num)
            clips.append(Clip("soundtracks", num, group, split_of("soundtracks", group),
                              audio=d / row["file"], valence=(float(row["valence"]) - 5) / 4,
                              arousal=(float(row["energy"]) - 5) / 4,
                              meta={"target": row["TARGET"], "album": group}))
    return clips


# ---------------------------------------------------------------- MIDI sets (rendered)


def load_emopia(root: Path) -> list[Clip]:
    """EMOPIA: 1,078 piano MIDI clips, quadrant from the file name; split by YouTube id."""
    d = _require(root / "emopia" / "midi", "EMOPIA")
    clips = []
    for p in sorted(d.glob("Q*.mid")):
        stem = p.stem
        q = int(stem[1])
        song = stem[3 : stem.rfind("_")]
        clips.append(Clip("emopia", stem, song, split_of("emopia", song), midi=p, quadrant=q))
    return clips


def _vgmidi_group(midi_name: str) -> str:
    """The piece, with arranged variants of one tune ("... Happy" / "... Sad") merged."""
    return re.sub(r"\s+(Happy|Sad)$", "", Path(midi_name).stem)


def load_vgmidi(root: Path) -> list[Clip]:
    """VGMIDI: per-measure V/A from ~30 annotators, averaged per measure, put on the
    0.5 s frame-end grid (a frame gets the measure holding its centre). Split by piece
    (variants of one tune kept together).

    Pieces without a ``pieces`` entry (raw_1: 81, 85, 86, 96) are dropped; sessions with
    ``measures + 1`` values lose the last one.
    """
    d = _require(root / "vgmidi", "VGMIDI")
    clips = []
    for fname in ("vgmidi_raw_1.json", "vgmidi_raw_2.json"):
        raw = json.loads((d / "annotations" / fname).read_text())
        sessions: dict[str, list[dict]] = defaultdict(list)
        for k, ann in raw["annotations"].items():
            sessions[k.rsplit("_", 1)[0]].append(ann)
        for pkey, piece in raw["pieces"].items():
            if pkey not in sessions:
                continue
            n_meas = int(piece["measures"])
            vals_v = np.full((len(sessions[pkey]), n_meas), np.nan)
            vals_a = np.full_like(vals_v, np.nan)
            for i, ann in enumerate(sessions[pkey]):
                v = np.asarray(ann["valence"], dtype=float)[:n_meas]
                a = np.asarray(ann["arousal"], dtype=float)[:n_meas]
                vals_v[i, : len(v)] = v
                vals_a[i, : len(a)] = a
            mv, ma = np.nanmean(vals_v, axis=0), np.nanmean(vals_a, axis=0)
            spm = float(piece["duration"]) / n_meas
            n_frames = int(np.floor(n_meas * spm / 0.5))
            t = 0.5 * np.arange(1, n_frames + 1)
            m = np.minimum(((t - 0.25) / spm).astype(int), n_meas - 1)
            midi = d / "midi" / piece["midi"]
            group = _vgmidi_group(piece["midi"])
            pid = f"{fname.split('_')[-1].split('.')[0]}-{pkey}"
            clips.append(Clip("vgmidi", pid, group, split_of("vgmidi", group), midi=midi,
                              dyn_t=t, dyn_v=mv[m].astype(np.float32), dyn_a=ma[m].astype(np.float32),
                              meta={"name": piece["name"], "annotators": len(sessions[pkey])}))
    return clips


# ---------------------------------------------------------------- official layouts (user's audio)


def _read_wide_dynamic(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """DEAM / emoMusic wide CSV: song_id, sample_<ms>ms... -> {id: (times_s, values)}."""
    out = {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        times = np.array([int(re.findall(r"\d+", h)[0]) / 1000 for h in header[1:]])
        for row in reader:
            if not row:
                continue
            sid = row[0].strip()
            vals = np.array([float(x) if x.strip() not in ("", "NaN", "nan") else np.nan
                             for x in row[1 : len(header)]], dtype=float)
            t = times[: len(vals)]
            ok = ~np.isnan(vals)
            out[sid] = (t[ok], vals[ok])
    return out


def _merge_va(val: dict, aro: dict) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    merged = {}
    for sid in val.keys() & aro.keys():
        tv, v = val[sid]
        ta, a = aro[sid]
        common, iv, ia = np.intersect1d(np.round(tv, 3), np.round(ta, 3), return_indices=True)
        if len(common):
            merged[sid] = (common, v[iv].astype(np.float32), a[ia].astype(np.float32))
    return merged


def _first_existing(*paths: Path) -> Path | None:
    for p in paths:
        if p.exists():
            return p
    return None


def load_deam(root: Path, require_audio: bool = True) -> list[Clip]:
    """DEAM in its official layout: ``annotations/annotations averaged per song/dynamic
    (per second annotations)/{valence,arousal}.csv`` and ``MEMD_audio/<id>.mp3``.

    Labels at 2 Hz from 15 s, in [-1, 1], at their own times (t ms from the file start).
    Split by song id.
    """
    dyn = root / "annotations" / "annotations averaged per song" / "dynamic (per second annotations)"
    _require(dyn, "DEAM dynamic annotations")
    merged = _merge_va(_read_wide_dynamic(dyn / "valence.csv"), _read_wide_dynamic(dyn / "arousal.csv"))
    return _dynamic_clips("deam", merged, lambda sid: _first_existing(root / "MEMD_audio" / f"{sid}.mp3"),
                          require_audio, root)


def load_emomusic(root: Path, require_audio: bool = True) -> list[Clip]:
    """emoMusic (MediaEval 2013): ``{valence,arousal}_cont_average.csv`` (in ``root`` or
    ``root/annotations``) and audio in ``clips_45seconds/<id>.mp3`` or ``MEMD_audio/<id>.mp3``.

    The official development / evaluation sets give train+val / test.
    """
    ann = _first_existing(root / "annotations" / "valence_cont_average.csv", root / "valence_cont_average.csv")
    if ann is None:
        raise FileNotFoundError(f"emoMusic: valence_cont_average.csv not found under {root}")
    d = ann.parent
    merged = _merge_va(_read_wide_dynamic(d / "valence_cont_average.csv"),
                       _read_wide_dynamic(d / "arousal_cont_average.csv"))
    official = {}
    info = _first_existing(d / "songs_info.csv", root / "songs_info.csv")
    if info:
        with open(info, newline="") as f:
            for row in csv.DictReader(f):
                official[row["song_id"].strip()] = row.get("Mediaeval 2013 set", "").strip()
    clips = _dynamic_clips(
        "emomusic", merged,
        lambda sid: _first_existing(root / "clips_45seconds" / f"{sid}.mp3", root / "MEMD_audio" / f"{sid}.mp3"),
        require_audio, root)
    for c in clips:
        if official.get(c.id) == "evaluation":
            c.split = "test"
        elif official.get(c.id) == "development" and c.split == "test":
            c.split = "val"
    return clips


def load_pmemo(root: Path, require_audio: bool = True) -> list[Clip]:
    """PMEmo2019: ``dynamic_annotations.csv`` (in ``root`` or ``root/annotations``),
    ``metadata.csv`` and ``chorus/<fileName>``. Values in [0, 1] -> 2x - 1; times are
    seconds from the start of the chorus clip (2 Hz from 15.5 s). Split by musicId.
    """
    ann = _first_existing(root / "annotations" / "dynamic_annotations.csv", root / "dynamic_annotations.csv")
    if ann is None:
        raise FileNotFoundError(f"PMEmo: dynamic_annotations.csv not found under {root}")
    meta = _first_existing(root / "metadata.csv", ann.parent / "metadata.csv")
    files = {}
    if meta:
        with open(meta, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                files[row["musicId"].strip()] = row["fileName"].strip()
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with open(ann, newline="") as f:
        for row in csv.DictReader(f):
            rows[row["musicId"].strip()].append(
                (float(row["frameTime"]), float(row["Valence(mean)"]), float(row["Arousal(mean)"])))
    merged = {}
    for sid, r in rows.items():
        r.sort()
        arr = np.asarray(r)
        merged[sid] = (arr[:, 0], (2 * arr[:, 1] - 1).astype(np.float32), (2 * arr[:, 2] - 1).astype(np.float32))
    return _dynamic_clips("pmemo", merged,
                          lambda sid: _first_existing(root / "chorus" / files.get(sid, f"{sid}.mp3")),
                          require_audio, root)


def _dynamic_clips(dataset, merged, audio_of, require_audio, root) -> list[Clip]:
    clips = []
    missing = 0
    for sid in sorted(merged, key=lambda s: int(s) if s.isdigit() else s):
        t, v, a = merged[sid]
        audio = audio_of(sid)
        if audio is None:
            missing += 1
            if require_audio:
                continue
        clips.append(Clip(dataset, sid, sid, split_of(dataset, sid), audio=audio,
                          dyn_t=np.asarray(t, dtype=np.float64), dyn_v=v, dyn_a=a))
    if require_audio and not clips:
        raise FileNotFoundError(
            f"{dataset}: labels found but no audio files under {root} "
            f"({missing} songs without audio); see README 'Training on DEAM / PMEmo / emoMusic'")
    return clips


def load_debian(root: Path, require_audio: bool = True) -> list[Clip]:
    """Debian's free game music (``scripts/debian-music.sh`` fetches it into ``root``): unlabelled
    clips for VAE pretraining and distillation, split by track (file)."""
    root = Path(root)
    if not (root / "root").is_dir():
        raise FileNotFoundError(f"Debian music: {root}/root not found; run `bash scripts/debian-music.sh {root}` first")
    clips = []
    for it in scan_debian(root):
        track = it["path"]
        cid = hashlib.sha1(track.encode()).hexdigest()[:12]
        clips.append(Clip("debian", cid, track, split_of("debian", track), audio=root / track,
                          meta={"package": it["package"], "licence": it["licence"], "seconds": it["seconds"],
                                "name": Path(track).name}))
    return clips


SHARED_LOADERS = {
    "soundtracks": load_soundtracks,
    "panda4q": load_panda4q,
    "emotify": load_emotify,
    "vgmidi": load_vgmidi,
    "emopia": load_emopia,
}
ROOT_LOADERS = {"deam": load_deam, "pmemo": load_pmemo, "emomusic": load_emomusic, "debian": load_debian}


def load_all(data_root: Path | None = None, datasets: list[str] | None = None,
             extra_roots: dict[str, Path] | None = None) -> list[Clip]:
    """Clips of the named shared datasets (None: all five; []: none) plus any user roots."""
    data_root = Path(data_root) if data_root else default_data_root()
    names = list(SHARED_LOADERS) if datasets is None else datasets
    clips: list[Clip] = []
    for n in names:
        if n not in SHARED_LOADERS:
            raise ValueError(f"unknown dataset {n!r}; known: {sorted(SHARED_LOADERS)}")
        clips += SHARED_LOADERS[n](data_root)
    for n, r in (extra_roots or {}).items():
        clips += ROOT_LOADERS[n](Path(r))
    return clips
