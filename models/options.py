"""The options of the training-side commands (train, teacher-pass, evaluate,
static-benchmark, train-song). Torch-free on purpose: ``emotrack train --help`` works
without the ``train`` extra, and the CLI imports the torch modules only to run one.
"""

from __future__ import annotations

import argparse


def _data(p: argparse.ArgumentParser, roots_help: bool = True) -> None:
    p.add_argument("--data", help="the shared data folder (default: ../shared/data or $EMOTRACK_DATA)")
    p.add_argument("--datasets", nargs="+", help="subset of soundtracks panda4q emotify vgmidi emopia")
    p.add_argument("--deam-root", help="DEAM in its official layout (annotations/, MEMD_audio/)" if roots_help else None)
    p.add_argument("--pmemo-root", help="PMEmo2019 (dynamic_annotations.csv, metadata.csv, chorus/)" if roots_help else None)
    p.add_argument("--emomusic-root", help="emoMusic (annotations CSVs, clips_45seconds/)" if roots_help else None)
    p.add_argument("--debian-root", help="Debian's free music (unlabelled), fetched by scripts/debian-music.sh")


def add_train_arguments(t: argparse.ArgumentParser) -> None:
    _data(t)
    t.add_argument("--out", default="runs/default", help="run folder for checkpoints and the report")
    t.add_argument("--limit", type=int, help="at most N clips per dataset and split (for quick checks)")
    t.add_argument("--quick", action="store_true", help="tiny epochs: proves the code path in seconds")
    t.add_argument("--no-baselines", action="store_true", help="train only the VAE-LSTM")
    t.add_argument("--jobs", type=int, default=2, help="processes for feature extraction")
    t.add_argument("--teachers", action="store_true",
                   help="train the student: the VAE-LSTM taught by the musicnn teachers (run teacher-pass first)")
    t.add_argument("--accurate", action="store_true",
                   help="train the opt-in accurate dynamic model (live/analyze --model accurate): an LSTM on the "
                        "musicnn teachers' outputs, which then run at run time (run teacher-pass first; default "
                        "datasets: soundtracks panda4q emotify)")
    t.add_argument("--seed", type=int, default=0, help="with --teachers or --accurate: the training seed")
    t.add_argument("--leave-out", metavar="DATASET",
                   help="with --teachers or --accurate: train without this dataset (its test split is still evaluated)")
    t.add_argument("--keep-audio", action="store_true",
                   help="with --teachers --leave-out: keep the left-out set's training and validation audio, without "
                        "its labels (the teachers and pseudo-labels teach on it; its ratings never do)")
    t.add_argument("--threads", type=int, default=2, help="torch threads")
    t.add_argument("--pseudo", choices=["ridge", "accurate"],
                   help="with --teachers: the pseudo-labels' teacher, the ridge head on the teachers' outputs or "
                        "the accurate model's LSTM head trained in the run (default: the shipped recipe's)")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="with --teachers or --accurate: change one setting of the recipe (a StudentConfig field, "
                        "the value as JSON, e.g. --set frame_epochs=3 --set lambda_frame_va=5, --set "
                        "label_pool=clip); repeatable. --accurate still tries its own settings of lstm_hidden, "
                        "head_dropout and lambda_pseudo on top")


def add_teacher_pass_arguments(tp: argparse.ArgumentParser) -> None:
    _data(tp)
    tp.add_argument("--limit", type=int, help="at most N clips per dataset and split")
    tp.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    tp.add_argument("--vgg", action="store_true",
                    help="instead: musicnn's MSD_vgg tagger on every second frame, cached apart (teacher/vgg-v1; "
                         "an experiment, not used by the shipped recipe; docs/training.md)")


def add_evaluate_arguments(v: argparse.ArgumentParser) -> None:
    v.add_argument("--model", help="an exported .onnx model (default: the shipped one)")
    v.add_argument("--run", help="also print the baselines of this training run's report")
    _data(v, roots_help=False)
    v.add_argument("--split", default="test", choices=["train", "val", "test"])
    v.add_argument("--format", choices=["table", "json"], default="table")
    v.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the old spelling of --format json
    v.add_argument("--student-runs", nargs="+", metavar="RUN",
                   help="summarise these `train --teachers` runs (seeds): every test metric as mean ± sd, the "
                        "teacher head, the baselines")
    v.add_argument("--lodo-runs", nargs="+", metavar="RUN",
                   help="with --student-runs: leave-one-dataset-out runs (several runs leaving out one set, seeds "
                        "apart, give its numbers as mean ± sd)")
    v.add_argument("--previous-model", default="docs/model/emotrack-vae-lstm-v1.onnx",
                   help="with --student-runs: the previous shipped model, evaluated on the same songs")


def add_static_benchmark_arguments(sb: argparse.ArgumentParser) -> None:
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


# what `train-song` validation may choose to answer (models.song): a head on the VAE codes' statistics,
# one on those of the dynamic model's trajectory, or the mean of the two
SONG_HEADS = ("code", "trajectory", "both")


def add_train_song_arguments(ts: argparse.ArgumentParser) -> None:
    ts.add_argument("--data", help="the shared data folder")
    ts.add_argument("--datasets", nargs="+", help="default: all five (soundtracks emotify panda4q vgmidi emopia)")
    ts.add_argument("--run", default="runs/default", help="the training run whose VAE codes the frames")
    ts.add_argument("--out", default="runs/song", help="run folder for song.pt and report.json")
    ts.add_argument("--epochs", type=int, default=60, help="TNN training epochs")
    ts.add_argument("--dim", type=int, help="TNN embedding size (default: 10 %% of the code statistics: 32 for the "
                                            "shipped 64-d code)")
    ts.add_argument("--heads", nargs="+", choices=SONG_HEADS, default=list(SONG_HEADS),
                    help="what validation may choose to answer: 'code', the better of TNN-SVR and the plain SVR on "
                         "the VAE-code statistics; 'trajectory', an SVR on the statistics of the shipped dynamic "
                         "model's outputs over the song; 'both', the mean of those two heads (default: all three)")
    ts.add_argument("--limit", type=int, help="at most N clips per dataset and split (for quick checks)")
    ts.add_argument("--jobs", type=int, default=2)
    ts.add_argument("--teacher-features", action="store_true",
                    help="the accurate model instead: an SVR on the musicnn teachers' outputs (emotrack teacher-pass "
                         "first; --run is not used); analyze --song-model accurate runs it")
    ts.add_argument("--cv", type=int, metavar="K",
                    help="instead of training: score every head on K folds of songs (the validation songs; see "
                         "--cv-songs), grouped as the splits are; the test split is not read. Writes <out>/cv.json: "
                         "is validation's choice of head more than the noise of one split?")
    ts.add_argument("--cv-songs", choices=("val", "all"), default="val",
                    help="with --cv, the songs dealt into folds: 'val', the validation songs (default: the VAE "
                         "and the dynamic model trained on the training songs, so only the others score fairly); "
                         "'all', training and validation songs together")
    ts.add_argument("--cv-fit", choices=("all", "val", "train"), default="all",
                    help="with --cv, what each fold's heads are fit on: 'all', every song not held out (default); "
                         "'val', the other folds alone; 'train', the training songs alone (as train-song fits)")
    ts.add_argument("--show-val", action="store_true", help="print the validation table instead of the test one")
    ts.add_argument("--no-progress", action="store_true")
