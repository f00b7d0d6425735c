"""The ``emotrack`` command line. Runs on the main thread; heavy imports are deferred so
``emotrack --help`` is instant, and the torch commands (train, export) are reached by
module name so the runtime never imports ``emotrack.models`` for them.
"""

from __future__ import annotations

import argparse
import os
import sys

# one BLAS thread: with both cores busy, threaded BLAS turns 0.2 ms mel frames into stalls
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emotrack", description="Music emotion (valence/arousal) every 0.5 s.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    a = sub.add_parser("analyze", help="valence/arousal of audio files, one JSON object per 0.5 s (or per song)")
    a.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, opus, mp3; any rate and channels)")
    a.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    a.add_argument("--out", help="write here instead of stdout")
    a.add_argument("--hop", type=float, default=None, help="seconds between outputs: 0.5 (default) or a divisor such as 0.25, 0.1")
    a.add_argument("--model", help="an exported .onnx model (default: the shipped one)")
    a.add_argument("--song", action="store_true",
                   help="one object per file: whole-song valence/arousal (TNN-SVR) and a summary of the trajectory")
    a.add_argument("--song-model", help="with --song: an .onnx from `emotrack export-song` (default: the shipped one)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    lv = sub.add_parser("live", help="track a microphone, line input or file live: window + WebSocket",
                        description="Every 0.5 s (or --hop), valence/arousal of what the input plays, "
                        "drawn in a window and broadcast over WebSocket. With neither --device nor "
                        "--input it listens to the default input device, or plays the bundled demo "
                        "when there is none.")
    src = lv.add_mutually_exclusive_group()
    src.add_argument("--device", help="input device: index or a part of its name (see `emotrack devices`)")
    src.add_argument("--input", metavar="FILE", help="play an audio file as if it were live input")
    lv.add_argument("--fast", action="store_true", help="with --input: as fast as possible instead of real time")
    lv.add_argument("--loop", action="store_true", help="with --input: start again at the end")
    lv.add_argument("--no-gui", action="store_true", help="no window (installations, servers): JSON lines on stdout")
    lv.add_argument("--ws", default="127.0.0.1:8765", metavar="HOST:PORT",
                    help="WebSocket server address (default 127.0.0.1:8765; 'off' disables it)")
    lv.add_argument("--http", metavar="HOST:PORT",
                    help="serve the browser dashboard here (e.g. 127.0.0.1:8080; same host rules as --ws)")
    lv.add_argument("--db", metavar="PATH", help="a music library (from `emotrack index`): clients and the dashboard "
                    "can search it, and the best matches for the last --like-now seconds are broadcast")
    lv.add_argument("--like-now", type=float, default=20.0, metavar="SECONDS",
                    help="with --db: match the last SECONDS of the live trajectory every 5 s (default 20; 0: off)")
    lv.add_argument("--token", help="clients must present this token (ws://HOST:PORT/?token=...); required off loopback")
    lv.add_argument("--insecure", action="store_true", help="allow listening off loopback without a token")
    lv.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                    help="a browser origin allowed to connect besides this machine's pages (repeatable; '*' for any)")
    lv.add_argument("--osc", metavar="HOST:PORT", help="also send each prediction as OSC over UDP (e.g. 127.0.0.1:9000)")
    lv.add_argument("--osc-prefix", default="/emotrack", help="OSC address prefix (default /emotrack)")
    lv.add_argument("--lsl", nargs="?", const="emotrack", metavar="NAME",
                    help="also publish a Lab Streaming Layer stream (default name emotrack; needs emotrack[lsl])")
    lv.add_argument("--osc-bundle", action="store_true", help="send each prediction as one time-tagged OSC bundle")
    lv.add_argument("--record", metavar="PATH", help="write every prediction to PATH (.jsonl or .csv)")
    lv.add_argument("--overwrite", action="store_true", help="let --record replace an existing file")
    lv.add_argument("--hop", type=float, default=None, help="seconds between outputs: 0.5 (default) down to 0.1")
    lv.add_argument("--model", help="an exported .onnx model (default: the shipped one)")
    lv.add_argument("--duration", type=float, help="stop after this many seconds of audio")
    lv.add_argument("--samplerate", type=int, help="device sample rate (default: the device's own)")
    lv.add_argument("--channels", type=int, help="device channels to capture (default: up to 2, averaged)")
    lv.add_argument("--blocksize", type=int, help="device block in samples (default: 10 ms)")
    lv.add_argument("--ring-seconds", type=float, default=10.0, help="audio buffer between capture and worker")
    lv.add_argument("--trail", type=float, default=10.0, help="seconds of trail in the window")
    lv.add_argument("--quiet", action="store_true", help="headless: no JSON lines or status lines")
    lv.add_argument("--status-every", type=float, default=10.0, help="headless: seconds between status lines on stderr (0: none)")

    ls = sub.add_parser("listen", help="print the stream of a running `emotrack live` as JSON lines")
    ls.add_argument("url", nargs="?", default="ws://127.0.0.1:8765", help="default ws://127.0.0.1:8765")
    ls.add_argument("--token", help="the access token the server was started with")
    ls.add_argument("--frames-only", action="store_true", help="only frame messages (no hello/status)")
    ls.add_argument("--reconnect", action="store_true", help="keep trying when the server is not there or goes away")
    ls.add_argument("--count", type=int, help="exit after this many frames")

    dv = sub.add_parser("devices", help="list audio input devices")
    dv.add_argument("--json", action="store_true")

    t = sub.add_parser("train", help="train the VAE-LSTM and baselines (needs emotrack[train])")
    t.add_argument("--data", help="the shared data folder (default: ../shared/data or $EMOTRACK_DATA)")
    t.add_argument("--datasets", nargs="+", help="subset of soundtracks panda4q emotify vgmidi emopia")
    t.add_argument("--deam-root", help="DEAM in its official layout (annotations/, MEMD_audio/)")
    t.add_argument("--pmemo-root", help="PMEmo2019 (dynamic_annotations.csv, metadata.csv, chorus/)")
    t.add_argument("--emomusic-root", help="emoMusic (annotations CSVs, clips_45seconds/)")
    t.add_argument("--debian-root", help="Debian's free music (unlabelled), fetched by scripts/debian-music.sh")
    t.add_argument("--out", default="runs/default", help="run folder for checkpoints and the report")
    t.add_argument("--limit", type=int, help="at most N clips per dataset and split (for quick checks)")
    t.add_argument("--quick", action="store_true", help="tiny epochs: proves the code path in seconds")
    t.add_argument("--no-baselines", action="store_true", help="train only the VAE-LSTM")
    t.add_argument("--jobs", type=int, default=2, help="processes for feature extraction")

    tp = sub.add_parser("teacher-pass", help="cache the musicnn teachers' outputs at every frame of every clip "
                        "(needs emotrack[train] and musicnn)")
    tp.add_argument("--data", help="the shared data folder")
    tp.add_argument("--datasets", nargs="+", help="subset of soundtracks panda4q emotify vgmidi emopia")
    tp.add_argument("--deam-root")
    tp.add_argument("--pmemo-root")
    tp.add_argument("--emomusic-root")
    tp.add_argument("--debian-root", help="Debian's free music, fetched by scripts/debian-music.sh")
    tp.add_argument("--limit", type=int, help="at most N clips per dataset and split")
    tp.add_argument("--jobs", type=int, default=2)

    e = sub.add_parser("export", help="ONNX + model card from a training run (needs emotrack[train])")
    e.add_argument("--run", default="runs/default", help="the run folder written by `emotrack train`")
    e.add_argument("--out", default=None, help="output folder (default: the package's assets/)")
    e.add_argument("--name", default="emotrack-vae-lstm")
    e.add_argument("--model-version", default="1")

    sb = sub.add_parser("static-benchmark", help="whole-song emotion: SVR vs PCA-SVR vs TNN-SVR by repeated "
                        "cross-validation (needs emotrack[train])")
    sb.add_argument("--data", help="the shared data folder")
    sb.add_argument("--datasets", nargs="+", help="default: soundtracks; also emotify vgmidi panda4q emopia")
    sb.add_argument("--features", nargs="+", choices=["compare", "vae"], default=["compare", "vae"],
                    help="openSMILE ComParE_2016 functionals and/or VAE-code statistics")
    sb.add_argument("--run", default="runs/default", help="the training run whose VAE gives the vae features")
    sb.add_argument("--folds", type=int, default=5)
    sb.add_argument("--repeats", type=int, default=3)
    sb.add_argument("--epochs", type=int, default=60, help="TNN training epochs")
    sb.add_argument("--dim", type=int, help="PCA and TNN dimension (default: 10 %% of the features)")
    sb.add_argument("--limit", type=int, help="at most N clips per dataset and split (for quick checks)")
    sb.add_argument("--jobs", type=int, default=2)
    sb.add_argument("--out", help="also write the results as JSON here")
    sb.add_argument("--tsne", metavar="DIR", help="also draw t-SNE pictures of original and learned features here")
    sb.add_argument("--no-progress", action="store_true")
    sb.add_argument("--report", nargs="+", metavar="JSON", help="print one table from earlier --out files and stop")

    ts = sub.add_parser("train-song", help="train the whole-song TNN-SVR on VAE-code statistics (needs emotrack[train])")
    ts.add_argument("--data", help="the shared data folder")
    ts.add_argument("--datasets", nargs="+", help="default: all five (soundtracks emotify panda4q vgmidi emopia)")
    ts.add_argument("--run", default="runs/default", help="the training run whose VAE codes the frames")
    ts.add_argument("--out", default="runs/song", help="run folder for song.pt and report.json")
    ts.add_argument("--epochs", type=int, default=60, help="TNN training epochs")
    ts.add_argument("--dim", type=int, help="TNN embedding size (default: 10 %% of the 160 features, 16)")
    ts.add_argument("--limit", type=int, help="at most N clips per dataset and split (for quick checks)")
    ts.add_argument("--jobs", type=int, default=2)
    ts.add_argument("--show-val", action="store_true", help="print the validation table instead of the test one")
    ts.add_argument("--no-progress", action="store_true")

    es = sub.add_parser("export-song", help="ONNX + model card of a train-song run (needs emotrack[train])")
    es.add_argument("--run", default="runs/song", help="the run folder written by `emotrack train-song`")
    es.add_argument("--out", default=None, help="output folder (default: the package's assets/)")
    es.add_argument("--name", default="emotrack-song")
    es.add_argument("--model-version", default="1")

    v = sub.add_parser("evaluate", help="per-song metrics of a model on the held-out test splits")
    v.add_argument("--model", help="an exported .onnx model (default: the shipped one)")
    v.add_argument("--run", help="also print the baselines of this training run's report")
    v.add_argument("--data", help="the shared data folder")
    v.add_argument("--datasets", nargs="+")
    v.add_argument("--deam-root")
    v.add_argument("--pmemo-root")
    v.add_argument("--emomusic-root")
    v.add_argument("--split", default="test", choices=["train", "val", "test"])
    v.add_argument("--json", action="store_true", help="print JSON instead of tables")

    ix = sub.add_parser("index", help="analyse a music library into one SQLite file (resumable)",
                        description="Analyses every audio file under the folders (both cores) and stores each "
                        "song's trajectory and whole-song valence/arousal (the TNN-SVR song model). Unchanged files (size, mtime) are "
                        "skipped, so running it again goes on where it stopped.")
    ix.add_argument("dirs", nargs="+", metavar="DIR", help="folders (searched recursively) or files")
    ix.add_argument("--db", help="the library file (default $EMOTRACK_DB or ~/.local/share/emotrack/library.sqlite)")
    ix.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    ix.add_argument("--retry-failed", action="store_true", help="try files that could not be decoded before")
    ix.add_argument("--model", help="an exported .onnx model (default: the shipped one)")
    ix.add_argument("--song-model", help="the whole-song model, from `emotrack export-song` (default: the shipped one)")
    ix.add_argument("--no-song-model", action="store_true",
                    help="whole-song valence/arousal as the mean of the trajectory instead")
    ix.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    fd = sub.add_parser("find", help="songs by a point or a drawn profile in valence-arousal space")
    q = fd.add_mutually_exclusive_group()
    q.add_argument("--point", metavar="V,A", help="nearest songs by whole-song emotion, e.g. --point 0.6,0.4")
    q.add_argument("--profile", metavar="FILE", help="CSV or JSON of (t, valence, arousal) points ('-': stdin)")
    fd.add_argument("--match", choices=["whole", "segment"], default="whole",
                    help="--profile against the whole song (time-normalised) or its best-matching segment")
    fd.add_argument("-k", type=int, default=10, help="how many songs (default 10)")
    fd.add_argument("--db", help="the library file (default as for index)")
    fd.add_argument("--format", choices=["table", "json"], default="table")

    b = sub.add_parser("bench", help="speed of the model step and of analyze")
    b.add_argument("--frames", type=int, default=3000, help="frames for the per-step timing")
    b.add_argument("--audio-seconds", type=float, default=3600.0, help="length of the analyze benchmark")
    b.add_argument("--json", action="store_true")
    b.add_argument("--live", action="store_true", help="end-to-end latency of `emotrack live` to a WebSocket client")
    b.add_argument("--live-seconds", type=float, default=60.0)
    b.add_argument("--idle", action="store_true", help="--live without the busy-loop on the other core")
    b.add_argument("--memory", action="store_true", help="resident memory of `live --no-gui` over an hour of audio")
    b.add_argument("--memory-seconds", type=float, default=3600.0)
    b.add_argument("--startup", action="store_true", help="time of `emotrack --help`")
    b.add_argument("--load", action="store_true",
                   help="the WebSocket server under 200 clients at hop 0.1, stuck and resetting ones among them")
    b.add_argument("--song", action="store_true", help="whole-song analysis (analyze --song) of a 45 s clip")
    b.add_argument("--song-runs", type=int, default=20)
    b.add_argument("--library", action="store_true", help="point and profile query times on a 10,000-song library")
    b.add_argument("--library-songs", type=int, default=10000)
    b.add_argument("--load-clients", type=int, default=200)
    b.add_argument("--load-seconds", type=float, default=60.0)
    b.add_argument("--no-model", action="store_true", help="skip the step and analyze benchmarks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        from emotrack import __version__

        print(__version__)
        return 0
    if args.cmd is None:
        _parser().print_help()
        return 2
    if args.cmd == "analyze":
        from .analyze import run_analyze

        return run_analyze(args)
    if args.cmd == "live":
        from .live import run_live

        return run_live(args)
    if args.cmd == "listen":
        from .listen import run_listen

        return run_listen(args)
    if args.cmd == "devices":
        from .live import run_devices

        return run_devices(args)
    if args.cmd == "index":
        from .library import run_index

        return run_index(args)
    if args.cmd == "find":
        from .search import run_find

        return run_find(args)
    if args.cmd == "bench":
        from .bench import run_bench

        return run_bench(args)
    module = {"train": "emotrack.models.cli", "export": "emotrack.export.cli",
              "evaluate": "emotrack.models.cli", "static-benchmark": "emotrack.models.static_bench",
              "train-song": "emotrack.models.song", "teacher-pass": "emotrack.models.teacher_pass", "export-song": "emotrack.export.song_export"}[args.cmd]
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as ex:
        if ex.name in ("torch", "onnx", "onnxscript"):
            print(f"emotrack {args.cmd}: needs {ex.name}; install emotrack[train] "
                  "(pip install -e '.[train]')", file=sys.stderr)
            return 2
        raise
    return getattr(mod, "cmd_" + args.cmd.replace("-", "_"))(args)


if __name__ == "__main__":
    sys.exit(main())
