"""The student: the shipped VAE encoder + stateful LSTM, taught by the musicnn teachers
(training only; ``emotrack train --teachers``; main thread, torch on ``threads`` cores).

The runtime shape stays what the design names: a 0.5 s log-mel frame -> the VAE encoder's
code -> a stateful LSTM -> valence, arousal and their std every 0.5 s (plus, as optional
outputs, the descriptors). What changes is what it learns from. Two stages:

1. The frame encoder, on every frame of every training clip, labelled or not (the Debian
   music too), each shifted by a random gain of -6, 0 or +6 dB:

       L1 = recon + beta * KL + lambda_frame * distill_frame + lambda_frame_va * distill_va

   ``recon`` is the squared error summed over the frame (unit-variance Gaussian decoder)
   and ``KL`` the usual Gaussian KL in nats (the VAE of Herremans et al.);
   ``distill_frame`` is the squared error, summed over 500 dimensions, of a linear map of
   the code (its mean) against the teachers' outputs on the ~3 s window ending at the
   frame: both models' 200-d penultimate layers and 50 tag logits, each dimension
   standardised on the training frames. The code must carry what the teachers hear, as far
   as one frame can. ``distill_va`` is the squared error, summed over 2 dimensions, of a
   second linear map of the code against the pseudo-labels' valence and arousal (below),
   standardised on the training frames: the directions of the teachers' outputs that carry
   emotion are a small part of their variance, and this keeps them in the code (5, as much
   as 50 of the 500 teacher dimensions, was measured; on in the shipped recipe, below).
   ``frame_epochs`` epochs; optionally (stage
   1b, its own checkpoint) ``frame_epochs_2`` more from that encoder with ``lambda_frame_2``.
   Optionally the frames the encoder sees are augmented, their targets unchanged
   (``frame_eq_db``: a random smooth EQ; ``frame_masks``: SpecAugment's band and time masks;
   ``augment_frames``); off in the shipped recipe: EQ 6 dB and one mask of each kind raised
   validation in the short probe set-up but lowered it in the full recipe (docs/training.md).

2. The LSTM on the frozen codes (all three gains), on sequences of up to 60 s (with ``tonal``,
   each frame's code is followed by its pitch-class profile, which the head turns into 22
   numbers about key and mode, ``nets.TonalFeatures``, before its LSTM; off in the shipped
   recipe, measured in docs/training.md, "The key and the mode"):

       L2 = labels + lambda_pseudo * pseudo + lambda_tags * tags + lambda_embed * embed

   ``labels`` is the loss of the original training (``train.seq_loss``: a Gaussian NLL on
   each labelled frame with the predicted mean and std, a clip label on every frame after
   a 2 s warm-up; a logistic loss on the signs for the quadrant sets), each dataset weighing
   ``DATASET_WEIGHTS``; for the sets with continuous labels a learned offset per set (valence,
   arousal) is added to the mean before the loss and dropped at run time, so that the
   different rating scales do not drag the output (the quadrant sets' signs fix where zero
   is). ``pseudo`` is the same Gaussian NLL against the pseudo-labels on every frame from
   3 s on of every clip, labelled or not: the answers of the ridge teacher head smoothed
   over 3 s (``pseudo_source = "ridge"``, :mod:`emotrack.models.teacher_head`, the recipe
   of emotrack-vae-lstm 2), or of the accurate head (``"accurate"``, the shipped recipe,
   :func:`emotrack.models.accurate.pseudo_teacher`, a stateful LSTM on the teachers'
   outputs trained in the run on the real recordings' training clips); ``tags`` and ``embed`` are squared
   errors of two linear maps of the LSTM state against the teachers' standardised tag
   logits (100) and penultimate layers (400) on the frames they were run on (means over
   dimensions and frames). The ``tags`` map is exported: the descriptors are the sigmoid of
   its outputs for ``DESCRIPTORS``, de-standardised to the teachers' logit scale.

The epoch of stage 2 that is kept is the best by the mean Pearson r of valence and arousal
on the validation clips of the real recordings (``select_sets``); optionally the weights
scored and kept are an exponential moving average (``head_ema`` per batch), and several
heads are trained and merged into one wider LSTM (``head_ensemble``, ``merge_heads``; the
export runs it as the heads' LSTMs side by side, ``BlockLSTM``).
Optionally (stage 3, ``joint_epochs``) the encoder and the head are then trained together
on ``L2`` (``train_joint``). Then the predicted std is
calibrated: one factor per dimension, chosen on the validation clips so that 68.3 % of the
labelled frames fall within ±1 std; it is part of the exported graph.

The weights below are the ones used for the shipped model (emotrack-vae-lstm 4, as for 3; the last
paragraph says how its recipe was chosen); they were set from the scale of each term at
initialisation and compared on the validation split only (never the test split): raising ``lambda_pseudo`` to 3 and selecting on every labelled set were both worse
there. ``scripts/sweep_head.py`` compares stage-2 settings from a run's saved encoder; on
two seeds' validation clips, ``lambda_pseudo`` 0.5, ``lambda_tags``/``lambda_embed`` 1, input
dropout 0.2 and 256 LSTM units all scored within the seeds' spread of the defaults (mean r
0.653-0.663); three merged heads 0.666-0.667 (for an LSTM three times as wide); stage 1b
0.668-0.686, the one change above the spread on both seeds. The whole recipe with stage 1b
(3 epochs at 0.5) and the EMA (0.99) was then trained with three seeds and the three
leave-one-out runs: validation +0.009 on average (-0.005 to +0.018 by seed), the test
splits within the seeds' spread of the shipped recipe and lower on as many numbers as
higher (docs/training.md has both tables), so the shipped recipe stays as above and the
options stay off by default.

A probe on the three real-recording sets only (4 stage-1 epochs of 80,000 frames, seed 0,
docs/training.md) compared the newer options on validation: the map to the pseudo-labels
(``lambda_frame_va`` 5 against 0) 0.597 against 0.593, with the code explaining more of the
teachers' outputs too (32.4 % against 31.4 % on held-out frames); the accurate head's
pseudo-labels against the ridge head's from the same encoder 0.589-0.593 against 0.591
(without unlabelled audio the pseudo-labels add little to the labels); stage 3 (6 epochs
at 1e-4) lowered validation from the first epoch on (0.591 -> 0.544-0.572) and is off.
The whole recipe with the accurate head's pseudo-labels and ``lambda_frame_va`` 5 was then
trained with three seeds and the three leave-one-out runs: validation 0.670-0.680 against
0.654-0.659, leave-one-out Soundtracks higher (valence 0.602 against 0.573, arousal 0.634
against 0.581, one run each), but the test splits lower on most numbers and within the
seeds' spread (Soundtracks 0.623/0.800 against 0.649/0.820, Panda quadrant 0.684 against
0.699; docs/training.md), so emotrack-vae-lstm 2 kept the ridge head's pseudo-labels.

Three more stage-2 fields were measured from those encoders (paired sweeps, docs/training.md,
"Why the student falls short on music it has not heard"): ``lambda_labels`` (the weight of
``labels``; 0 trains on the pseudo-labels, tags and embeddings alone, and did about as well),
``label_sets`` (the sets whose labels count; all by default) and ``head_gains_db`` (the gains
whose codes stage 2 draws from; ``(0.0,)`` raised arousal on every test split in all six runs
but doubled how far 6 dB less input lowers it, and validation did not separate the two). All
stay at the shipped recipe's values.

``label_pool`` says how ``labels`` scores a whole-clip label (a static rating, a quadrant sign):
"frame" (the shipped recipe) on every frame, "clip" on the clip's mean prediction
(``train.clip_label_loss``; the same weight, each clip counting as many frames as it has;
labels that vary in time per frame either way), in stage 2 and in the accurate head. Scored per
frame, a static label also penalises the prediction's movement within the clip; on the clip's
mean the film music left out read arousal 0.781 instead of 0.733 (docs/training.md,
"Whole-clip labels"; not yet the shipped recipe).

``head_rff`` bends the ridge teacher head (random Fourier features beside the teachers'
outputs, :func:`teacher_head.fit`). Grouped cross-validation of the head alone put it within
0.006 of the linear head, and stage 2 from two seeds' encoders with 2000 or 4000 features
scored -0.009 to +0.007 on validation against the linear head's pseudo-labels, while a bent
head read valence much worse on a set it never heard (docs/training.md, "A teacher head that
bends"); it stays 0.

``head_vgg`` puts musicnn's MSD_vgg tagger's outputs (``emotrack teacher-pass --vgg``) beside the
teachers' in the ridge teacher head and, with ``pseudo_source = "accurate"``, in the accurate
head's input: the pseudo-labels' teachers hear more, the student's own distillation targets
stay the two musicnn teachers'. The ridge head gained on every split with it, but stage 2 from
two seeds' encoders scored +0.010 and -0.001 on validation (the accurate head, with 1,062
inputs, lost 0.01 in both), so it stays off (docs/training.md, "Two more taggers in the wheel").
Nor did a smaller form reach it (the accurate head on MSD_vgg's 50 logits, or on the ridge
head's answer, ``scripts/probe_pseudo_teacher_inputs.py``), nor the ridge head's pseudo-labels
with MSD_vgg (validation +0.001 and -0.006 against the recipe's, -0.012 with the film music left out).

The encoder's shape: ``front = "musicnn"`` (``nets.MusicnnFront``: the teachers' own front and mid
end cut to one frame, tall timbral filters max-pooled over pitch, temporal filters, 1-d
convolutions over time) instead of the three strided convs (``front = "conv"``, emotrack-vae-lstm
1-3). In the full recipe (three seeds and Soundtracks left out, docs/training.md) it raised
validation in every run (0.720 ± 0.010 against 0.689 ± 0.009), every test mean, and the left-out
film music's arousal from 0.633 to 0.773, with a smaller encoder: emotrack-vae-lstm 4's encoder
and the default. Trained again to ship (another sitting; not bit-for-bit repeatable on CPU):
validation 0.722 ± 0.006, Soundtracks 0.681 ± 0.023 / 0.885 ± 0.002, Panda quadrant 0.706 ±
0.033, Emotify arousal 0.787 ± 0.020, Soundtracks left out 0.704 / 0.731.

emotrack-vae-lstm 3's recipe (these defaults with ``front = "conv"``): the accurate head's pseudo-labels,
``lambda_frame_va`` 5, a wider encoder (48/96/128 channels and 512 hidden units instead of
32/64/96 and 384; ``student_net``) and 16 stage-1 epochs instead of 10. Validation chose it:
mean r 0.681 / 0.698 / 0.687 over three seeds, against 0.654-0.659 for emotrack-vae-lstm 2's
recipe and 0.668-0.680 for the wider encoder or the new pseudo-labels at 10 epochs. On test
it differs from emotrack-vae-lstm 2 by less than the seeds' spread on Soundtracks r, Panda's
accuracies and r and Emotify arousal r (Emotify valence r rose by 0.041), and the
leave-one-dataset-out runs rose on most (Soundtracks valence / arousal 0.656 / 0.633
against 0.573 / 0.581, Panda quadrant 0.467 against 0.393; Emotify arousal 0.716 against
0.755); docs/training.md has the tables. A step costs 0.78 ms instead of 0.61 (back to back).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from emotrack.realtime.core.features import average_profiles
from torch import nn
from torch.nn import functional as F

from . import teacher_head
from .data import Clip
from .evaluate import evaluate_predictions
from .nets import TONAL_DIM, FrameVAE, NetConfig, TonalFeatures, check_front
from .seqs import FEATURES, FLOOR, GAINS_DB, MAX_LEN, WARMUP, Seq, log, shift_gain
from .teacher_pass import KEYS, has_targets
from .teachers import LABELS
from .train import BestEpoch, clip_label_loss, seq_loss

# the descriptors the student exports: (teacher, tag)
DESCRIPTORS = (("MTT_musicnn", "soft"), ("MTT_musicnn", "loud"), ("MTT_musicnn", "quiet"), ("MTT_musicnn", "fast"),
               ("MTT_musicnn", "slow"), ("MTT_musicnn", "piano"), ("MTT_musicnn", "strings"), ("MTT_musicnn", "drums"),
               ("MTT_musicnn", "vocal"), ("MTT_musicnn", "electronic"), ("MTT_musicnn", "ambient"),
               ("MTT_musicnn", "choir"), ("MSD_musicnn", "happy"), ("MSD_musicnn", "sad"), ("MSD_musicnn", "Mellow"),
               ("MSD_musicnn", "party"), ("MSD_musicnn", "chill"), ("MSD_musicnn", "beautiful"),
               ("MSD_musicnn", "catchy"), ("MSD_musicnn", "heavy metal"))
CONTINUOUS = teacher_head.CONTINUOUS
EMB_DIM, TAG_DIM = 400, 100
CHROMA_DIM = 12  # a frame's pitch-class profile, beside its code where the head reads it (``with_chroma``)
MIN_T = teacher_head.MIN_T


def descriptor_index() -> list[int]:
    """Column of each descriptor in the 100 tag logits (MSD's 50, then MTT's 50)."""
    off = {"MSD_musicnn": 0, "MTT_musicnn": 50}
    return [off[m] + LABELS[m].index(t) for m, t in DESCRIPTORS]


def descriptor_names() -> list[str]:
    return [t.lower() for _, t in DESCRIPTORS]


@dataclass(frozen=True)
class StudentConfig:
    """Training settings of the student (they travel with the weights)."""

    frame_epochs: int = 16
    frames_per_epoch: int = 200_000
    lambda_frame: float = 0.1
    # stage 1: the squared error of a linear map of the code against the pseudo-labels'
    # valence and arousal (standardised on the training frames), so the code keeps what
    # carries emotion even where it is a small part of the teachers' outputs (0: off)
    lambda_frame_va: float = 5.0
    # stage 1b: more epochs from stage 1's encoder with the distillation weighing more (0: none;
    # measured with 3 epochs at 0.5 over three seeds, docs/training.md: not better on test)
    frame_epochs_2: int = 0
    lambda_frame_2: float = 0.5
    # stage 1: augment each training frame the encoder sees (its targets unchanged; 0: off):
    # a random smooth EQ of at most this many dB (a tilt and a bump over the bands) ...
    frame_eq_db: float = 0.0
    # ... and this many frequency masks (up to 8 bands each) and as many time masks (up to 4
    # bins each), filled with the frame's mean (measured, docs/training.md)
    frame_masks: int = 0
    head_epochs: int = 40
    lambda_labels: float = 1.0  # stage 2: the weight of the labels' loss
    # stage 2: the datasets whose labels are learned from (None: all); the others still give
    # pseudo-labels, tags and embeddings
    label_sets: tuple[str, ...] | None = None
    # how a whole-clip label (a static rating, a quadrant sign) is scored in stage 2 and by the
    # accurate head: "frame" on every frame, "clip" on the clip's mean prediction
    # (train.clip_label_loss; frame labels that vary are scored per frame either way)
    label_pool: str = "frame"
    lambda_pseudo: float = 1.0
    lambda_tags: float = 0.5
    lambda_embed: float = 0.5
    # stage 2: the gains (dB, of GAINS_DB) whose codes the LSTM is trained on; (0.0,) trains on the
    # codes of the audio as recorded, so the head may learn its level (measured, docs/training.md)
    head_gains_db: tuple[float, ...] = GAINS_DB
    head_dropout: float = 0.0  # dropout on the codes fed to the LSTM while training stage 2
    head_ema: float = 0.0  # >0: the head evaluated and kept is an exponential moving average of its weights
    lstm_hidden: int | None = None  # None: student_net()'s width
    # the encoder's width (None: student_net()'s): its three conv layers' channels and its hidden layer
    channels: tuple[int, int, int] | None = None
    enc_hidden: int | None = None
    # the encoder's first layers: "musicnn" is the teachers' own shape cut to one frame (nets.MusicnnFront;
    # its channels default to MUSICNN_CHANNELS), "conv" three strided convs (emotrack-vae-lstm 1-3; None, as
    # reports before emotrack-vae-lstm 4 saved it, means "conv")
    front: str | None = "musicnn"
    head_ensemble: int = 1  # heads trained (seeds apart) on the same codes and merged into one LSTM
    # stage 3: the encoder and the head trained together on the stage-2 loss (0 epochs: none)
    joint_epochs: int = 0
    joint_lr: float = 1e-4
    joint_len: int = 60  # frames per training sequence in stage 3 (30 s): the encoder's backward pass is the cost
    batch_frames: int = 256
    batch_seqs: int = 32
    lr: float = 1e-3
    patience: int = 10
    seed: int = 0
    threads: int = 2
    head_sets: tuple[str, ...] = ("soundtracks", "panda4q")  # the teacher head's training sets
    # random Fourier features beside the teachers' outputs in the ridge teacher head (0: linear;
    # teacher_head.fit's ``rff``)
    head_rff: int = 0
    # MSD_vgg's outputs beside the teachers' in the pseudo-labels' teachers (teacher_head.fit's ``vgg``)
    head_vgg: bool = False
    leave_out: str | None = None  # a dataset trained without (its test split is still evaluated)
    # with leave_out: its training and validation audio stays, without labels (teacher targets
    # and pseudo-labels only): the student hears that kind of music, never its ratings
    keep_audio: bool = False
    # the pseudo-labels' teacher: "ridge" (the ridge teacher head) or "accurate" (the accurate
    # model's LSTM head on the teachers' outputs, trained in the run; ``emotrack.models.student``)
    pseudo_source: str = "accurate"
    # the epoch kept is the best on these sets' validation clips: the real recordings the
    # model is for (rendered piano and GEMS placements would pull the choice elsewhere)
    select_sets: tuple[str, ...] = ("soundtracks", "panda4q", "emotify")
    # stage 2: the LSTM also reads each frame's pitch-class profile (realtime.core.features.chroma_frames)
    # through nets.TonalFeatures: key and mode, which the log-mel's bands cannot carry (docs/training.md,
    # "The key and the mode"); the exported graph then takes a ``chroma`` input. Stage 1 is unchanged.
    tonal: bool = False
    # with ``tonal``: the LSTM also reads the profiles' causal average with this time constant in
    # seconds (the key of the last several seconds; the graph's ``chroma_avg`` input); 0: not
    tonal_avg: float = 0.0
    # stage 2's pseudo-labels come from teachers (the ridge head and the accurate head) that also
    # read the frames' tonal numbers (the frame's and, with ``tonal_avg``, the average's;
    # teacher_head.tonal_features). Stage 1 keeps the plain teachers' pseudo-labels.
    head_tonal: bool = False

    @classmethod
    def quick(cls) -> StudentConfig:
        """Tiny, and with every optional step on (stage 1b, the EMA, two merged heads, stage 3): proves the paths."""
        return cls(frame_epochs=1, frame_epochs_2=1, frames_per_epoch=512, head_epochs=2, batch_frames=64,
                   batch_seqs=8, patience=2, head_ema=0.9, head_ensemble=2, joint_epochs=1)

    def stage_1b(self) -> StudentConfig:
        """Stage 1b as a stage-1 configuration (its own batch order; its own checkpoint key)."""
        return replace(self, frame_epochs=self.frame_epochs_2, lambda_frame=self.lambda_frame_2, seed=self.seed + 100)


# the musicnn-shaped front's widths: timbral filters per height, temporal filters per length, mid end
# (48 timbral filters: a graph step of 0.42 ms with the LSTM, against 0.49 for the conv encoder; 64: 0.48)
MUSICNN_CHANNELS = (48, 24, 64)
LABEL_POOLS = ("frame", "clip")  # StudentConfig.label_pool
CONV_CHANNELS = (48, 96, 128)  # the conv front's (emotrack-vae-lstm 3's)


def student_net(cfg: StudentConfig | None = None) -> NetConfig:
    """Wider than the first VAE-LSTM (16/32/64 channels, a 32-d code, 64 LSTM units): the
    code has to carry what the teachers hear; one step still takes under 1 ms. The encoder is
    ``cfg.front``'s: ``"musicnn"`` (``nets.MusicnnFront``, MUSICNN_CHANNELS; emotrack-vae-lstm 4)
    or ``"conv"`` (48/96/128 channels, emotrack-vae-lstm 3's, chosen on validation over
    emotrack-vae-lstm 2's 32/64/96 and 384 hidden units; docs/training.md). ``cfg.lstm_hidden``,
    ``cfg.channels`` and ``cfg.enc_hidden``, when set, replace those widths."""
    cfg = cfg or StudentConfig()
    if cfg.label_pool not in LABEL_POOLS:
        raise ValueError(f"label_pool={cfg.label_pool!r}: one of {', '.join(LABEL_POOLS)} (how a whole-clip label "
                         "is scored: on every frame, or on the clip's mean)")

    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    if cfg.channels is not None and not (isinstance(cfg.channels, tuple) and len(cfg.channels) == 3
                                         and all(map(whole, cfg.channels))):
        raise ValueError(f"channels={cfg.channels!r}: give the three conv layers' widths, e.g. [48, 96, 128]")
    for name in ("lstm_hidden", "enc_hidden"):
        if getattr(cfg, name) is not None and not whole(getattr(cfg, name)):
            raise ValueError(f"{name}={getattr(cfg, name)!r}: give a positive whole number of units")
    front = cfg.front or "conv"
    check_front(front)
    channels = cfg.channels or (MUSICNN_CHANNELS if front == "musicnn" else CONV_CHANNELS)
    if not isinstance(cfg.tonal, bool):
        raise ValueError(f"tonal={cfg.tonal!r}: give true or false")
    avg = cfg.tonal_avg
    if isinstance(avg, bool) or not isinstance(avg, (int, float)) or not 0 <= avg <= 600:
        raise ValueError(f"tonal_avg={avg!r}: give the average's time constant in seconds, 0 (off) to 600, e.g. 10")
    if avg and not cfg.tonal:
        raise ValueError(f"tonal_avg={avg!r} needs tonal=true: the average is read beside the frame's own profile")
    return NetConfig(latent_dim=64, channels=channels, enc_hidden=cfg.enc_hidden or 512,
                     lstm_hidden=cfg.lstm_hidden or 160, lstm_layers=1, front=front, tonal=cfg.tonal,
                     tonal_avg=float(avg))


def check_config(cfg: StudentConfig) -> None:
    """Refuse, with a ValueError that says which, settings the nets or stage 1 cannot use."""
    student_net(cfg)
    eq, masks = cfg.frame_eq_db, cfg.frame_masks
    if isinstance(eq, bool) or not isinstance(eq, (int, float)) or not 0 <= eq <= 24:
        raise ValueError(f"frame_eq_db={eq!r}: give the EQ's largest change in dB, 0 (off) to 24, e.g. 6")
    if isinstance(masks, bool) or not isinstance(masks, int) or masks < 0:
        raise ValueError(f"frame_masks={masks!r}: give how many masks of each kind, a whole number from 0 (off)")
    rff = cfg.head_rff
    if isinstance(rff, bool) or not isinstance(rff, int) or rff < 0:
        raise ValueError(f"head_rff={rff!r}: give how many random features the teacher head adds, a whole number "
                         "from 0 (off), e.g. 2000")
    if cfg.tonal and cfg.joint_epochs:
        raise ValueError("tonal=true with joint_epochs > 0: stage 3 feeds the head codes without the frames' "
                         "pitch-class profiles; train one or the other")
    if not isinstance(cfg.head_vgg, bool):
        raise ValueError(f"head_vgg={cfg.head_vgg!r}: give true or false")
    if not isinstance(cfg.head_tonal, bool):
        raise ValueError(f"head_tonal={cfg.head_tonal!r}: give true or false")


def head_tonal_of(cfg: StudentConfig) -> float | None:
    """What the pseudo-labels' stage-2 teachers read of the key and mode (teacher_head's
    ``tonal``): None (nothing, ``head_tonal`` off), else the average's time constant (0: the
    frame's numbers only)."""
    return float(cfg.tonal_avg) if cfg.head_tonal else None


def head_and_targets(seqs: list[Seq], split: dict[str, list[Seq]], sets: tuple[str, ...],
                     scaler: TeacherScaler, rff: int = 0, vgg: bool = False,
                     tonal: float | None = None) -> tuple[dict, dict[str, Targets]]:
    """The teacher head fit on the training clips of ``sets`` (their validation clips choose
    its alpha; ``rff`` random features, ``vgg`` MSD_vgg's outputs, ``tonal`` the key and mode,
    see :func:`teacher_head.fit`), and every clip's standardised teacher targets with its
    pseudo-labels."""
    head_train = [s for s in split["train"] if s.clip.dataset in sets]
    th = teacher_head.fit(head_train, [s for s in split["val"] if s.clip.dataset in sets]
                          or split["val"], rff=rff, vgg=vgg, tonal=tonal) if head_train else None
    if th is None:
        raise ValueError(f"the teacher head needs training clips of {sets} with teacher targets")
    return th, {s.key: targets_of(s, scaler, th) for s in seqs}


# ---------------------------------------------------------------------- teacher targets
@dataclass
class Targets:
    """A clip's teacher targets, standardised: emb (T, 400), tags (T, 100), with NaN rows
    where the teachers were not run; pseudo (T, 2) the teacher head's answer (NaN before
    3 s and where there is none)."""

    emb: np.ndarray
    tags: np.ndarray
    pseudo: np.ndarray


class TeacherScaler:
    """Per-dimension mean and std of the teachers' outputs over the training frames (with
    ``vgg``, MSD_vgg's after them, with ``tonal`` the frames' tonal numbers after those: the
    first 500 columns are the teachers' either way)."""

    def __init__(self, seqs: list[Seq], vgg: bool = False, tonal: float | None = None):
        xs = [teacher_head.teacher_features(s.clip, len(s.mel), vgg, tonal) for s in seqs
              if teacher_head.has_features(s.clip, vgg, tonal)]
        if not xs:
            raise teacher_head.no_features("training clip", vgg)
        x = np.concatenate(xs)
        x = x[np.isfinite(x).all(1)]
        self.mu, self.sd = x.mean(0).astype(np.float32), (x.std(0) + 1e-6).astype(np.float32)
        logits = np.concatenate([x[:, 0:50], x[:, 250:300]], 1)[:, descriptor_index()]  # MSD's, then MTT's
        # how likely each descriptor is on typical training audio (the display ranks against it)
        self.typical = (1 / (1 + np.exp(-logits))).mean(0).astype(np.float32)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Standardise rows of the first ``x.shape[1]`` columns (the teachers' 500 alone, or all)."""
        n = x.shape[1]
        return ((x - self.mu[:n]) / self.sd[:n]).astype(np.float32)


def before_min_t(pseudo: np.ndarray) -> np.ndarray:
    """Pseudo-labels (T, 2) with the frames before ``MIN_T`` set to NaN (not learned from:
    their window still holds the silence before the stream), in place; returned."""
    pseudo[0.5 * np.arange(1, len(pseudo) + 1) < MIN_T] = np.nan
    return pseudo


def targets_of(seq: Seq, scaler: TeacherScaler, head: dict) -> Targets:
    """The standardised teacher outputs of a clip (400 penultimate, then 100 logits, in the
    order of ``KEYS``: MSD pen, MSD logits, MTT pen, MTT logits re-ordered below)."""
    T = len(seq.mel)
    if not has_targets(seq.clip):
        nan = np.full((T, 1), np.nan, np.float32)
        return Targets(np.repeat(nan, EMB_DIM, 1), np.repeat(nan, TAG_DIM, 1), np.repeat(nan, 2, 1))
    raw = teacher_head.teacher_features(seq.clip, T)  # KEYS order: MSD logits, MSD pen, MTT logits, MTT pen
    z = scaler.apply(raw)
    cols = {k: slice(*_key_span(k)) for k in KEYS}
    emb = np.concatenate([z[:, cols["MSD_musicnn_penultimate"]], z[:, cols["MTT_musicnn_penultimate"]]], 1)
    tags = np.concatenate([z[:, cols["MSD_musicnn_logits"]], z[:, cols["MTT_musicnn_logits"]]], 1)
    if teacher_head.has_features(seq.clip, head.get("vgg", False), head.get("tonal")):
        pseudo = before_min_t(teacher_head.predict(head, seq.clip, T))
    else:  # a head with MSD_vgg's outputs (or tonal numbers) and a clip without them (its pass is missing)
        pseudo = np.full((T, 2), np.nan, np.float32)
    return Targets(emb, tags, pseudo)


def _key_span(key: str) -> tuple[int, int]:
    sizes = {"logits": 50, "penultimate": 200}
    start = 0
    for k in KEYS:
        n = sizes[k.rsplit("_", 1)[1]]
        if k == key:
            return start, start + n
        start += n
    raise KeyError(key)


# ---------------------------------------------------------------------- stage 1: the frame encoder
class FrameStudent(nn.Module):
    """The VAE, a linear map of its code to the teachers' standardised outputs and one to the
    pseudo-labels' valence and arousal (standardised with ``va_mu``/``va_sd``, set by
    ``train_frames`` from the training frames)."""

    def __init__(self, net: NetConfig):
        super().__init__()
        self.vae = FrameVAE(net)
        self.to_teacher = nn.Linear(net.latent_dim, EMB_DIM + TAG_DIM)
        self.to_va = nn.Linear(net.latent_dim, 2)
        self.register_buffer("va_mu", torch.zeros(2))
        self.register_buffer("va_sd", torch.ones(2))

    def losses(self, x, target, has, va, has_va):
        xh, mu, logvar = self.vae(x)
        rec = ((xh - x) ** 2).flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
        zero = torch.zeros((), dtype=x.dtype)
        d = ((self.to_teacher(mu[has]) - target[has]) ** 2).sum(1).mean() if has.any() else zero
        dva = ((self.to_va(mu[has_va]) - va[has_va]) ** 2).sum(1).mean() if has_va.any() else zero
        return rec, kl, d, dva


def frame_pool(seqs: list[Seq], targets: dict[str, Targets]):
    """Every frame of ``seqs``: log-mel (N, ...), the teachers' standardised outputs (N, 500) and
    the pseudo-labels (N, 2), NaN rows where there are none."""
    mel = np.concatenate([s.mel for s in seqs])
    tgt = np.concatenate([np.concatenate([targets[s.key].emb, targets[s.key].tags], 1) for s in seqs])
    va = np.concatenate([targets[s.key].pseudo for s in seqs]).astype(np.float32)
    return mel, tgt, va


STAGE1_SETTINGS = ("frames_per_epoch", "lambda_frame", "lambda_frame_va", "pseudo_source", "batch_frames", "lr", "seed",
                   "head_sets", "head_rff", "head_vgg", "leave_out", "keep_audio", "frame_eq_db", "frame_masks")


def stage1_key(key: str) -> str:
    """What stage 1's result depends on, from a checkpoint's key: a change to stage 2's
    settings (or more frame epochs) goes on from the saved encoder instead of starting over."""
    cfg, net, n, *after = json.loads(key)  # after: stage 1's own key, for stage 1b
    net = {k: v for k, v in net.items() if not k.startswith("lstm_") and k not in ("tonal", "tonal_avg")}  # stage 2's
    kept = {k: cfg.get(k) for k in STAGE1_SETTINGS}
    for name in ("keep_audio", "frame_eq_db", "frame_masks", "head_rff", "head_vgg"):  # off: as keys before the option
        if not kept.get(name):
            kept.pop(name, None)
    if not kept.get("lambda_frame_va"):  # without the map to them, stage 1 does not see the pseudo-labels
        kept.pop("lambda_frame_va", None)
        kept.pop("pseudo_source", None)
        kept.pop("head_rff", None)
        kept.pop("head_vgg", None)
    return json.dumps([kept, net, n, *after], sort_keys=True)


def train_frames(model: FrameStudent, train: list[Seq], val: list[Seq], targets: dict, cfg: StudentConfig,
                 checkpoint: Path | None = None, after: str | None = None) -> dict:
    """Stage 1. With ``checkpoint``, the state after every epoch is saved there and a run
    that finds one (same settings) goes on from it: a stop loses at most one epoch. ``after``:
    the key of the stage this one goes on from (stage 1b after stage 1), part of its own key."""
    rng = np.random.default_rng(cfg.seed)
    mel, tgt, va = frame_pool(train, targets)
    vmel, vtgt, vva = frame_pool(val, targets) if val else (mel[:2048], tgt[:2048], va[:2048])
    if len(vmel) > 6000:
        sel = rng.choice(len(vmel), 6000, replace=False)
        vmel, vtgt, vva = vmel[sel], vtgt[sel], vva[sel]
    if after is None:  # stage 1b keeps stage 1's scale
        ok = np.isfinite(va).all(1)
        if ok.sum() > 1:
            model.va_mu.copy_(torch.from_numpy(va[ok].mean(0)))
            model.va_sd.copy_(torch.from_numpy(va[ok].std(0) + 1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    beta = model.vae.cfg.beta
    history, start = [], 0
    key = json.dumps([asdict(cfg), model.vae.cfg.to_dict(), len(mel), *([after] if after else [])], sort_keys=True,
                     default=str)
    if checkpoint is not None and checkpoint.exists():
        ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if ck.get("key") and stage1_key(ck["key"]) == stage1_key(key):
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
            history, start = ck["history"], len(ck["history"])
            rng = ck["rng"]
            log(f"student frames: resuming after epoch {start} from {checkpoint}")
    for ep in range(start, cfg.frame_epochs):
        model.train()
        t0 = time.time()
        idx = rng.choice(len(mel), min(cfg.frames_per_epoch, len(mel)), replace=False)
        gains = rng.choice(GAINS_DB, len(idx))
        tot = np.zeros(4)
        for b in range(0, len(idx), cfg.batch_frames):
            sl = idx[b:b + cfg.batch_frames]
            x = torch.from_numpy(np.stack([shift_gain(mel[i], g) for i, g in
                                           zip(sl, gains[b:b + cfg.batch_frames], strict=True)]).astype(np.float32))
            if cfg.frame_eq_db or cfg.frame_masks:
                x = augment_frames(x, rng, cfg.frame_eq_db, cfg.frame_masks)
            y = torch.from_numpy(tgt[sl])
            has = torch.isfinite(y).all(1)
            y = torch.nan_to_num(y)
            v = (torch.from_numpy(va[sl]) - model.va_mu) / model.va_sd
            has_v = torch.isfinite(v).all(1)
            rec, kl, d, dva = model.losses(x, y, has, torch.nan_to_num(v), has_v)
            loss = rec + beta * kl + cfg.lambda_frame * d + cfg.lambda_frame_va * dva
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += np.array([rec.item(), kl.item(), d.item(), dva.item()]) * len(sl)
        ev = eval_frames(model, vmel, vtgt, vva)
        history.append({"epoch": ep + 1, "train": (tot / len(idx)).tolist(), **ev, "seconds": time.time() - t0})
        log(f"student frames epoch {ep + 1}: recon {tot[0] / len(idx):.2f} kl {tot[1] / len(idx):.2f} "
            f"distill {tot[2] / len(idx):.1f} va {tot[3] / len(idx):.2f} | val mse {ev['mse']:.4f} "
            f"distill R2 {ev['distill_r2']:.3f} va R2 {ev['va_r2']:.3f} ({time.time() - t0:.0f} s)")
        if checkpoint is not None:
            tmp = checkpoint.with_suffix(".tmp")
            torch.save({"key": key, "model": model.state_dict(), "opt": opt.state_dict(), "history": history,
                        "rng": rng}, tmp)
            tmp.replace(checkpoint)
    return {"history": history, "key": stage1_key(key)}


def augment_frames(x: torch.Tensor, rng, eq_db: float, masks: int) -> torch.Tensor:
    """Stage 1's augmentation of a batch of log-mel frames (B, M, N), a new tensor: per frame
    a smooth EQ (a tilt and a half-cosine bump over the bands, each of a uniform random
    amplitude whose sum stays within ``eq_db``), then ``masks`` frequency masks of 0-8 bands
    and as many time masks of 0-4 bins, set to the frame's mean (SpecAugment's masks)."""
    b, m, n = x.shape
    x = x.clone()
    if eq_db:
        pos = torch.linspace(-1.0, 1.0, m)
        tilt, bump = (torch.from_numpy(rng.uniform(-0.5, 0.5, (2, b, 1))).float() * eq_db / FEATURES.db_scale)
        centre = torch.from_numpy(rng.uniform(-1, 1, (b, 1))).float()
        shape = tilt * pos + bump * torch.cos(torch.pi / 2 * (pos - centre).clamp(-1, 1))
        x = (x + shape[:, :, None]).clamp_min(FLOOR)
    for _ in range(masks):
        mean = x.mean((1, 2))
        for axis, size, most in ((1, m, 8), (2, n, 4)):
            width = rng.integers(0, most + 1, b)
            start = rng.integers(0, size - width + 1)
            for i in np.flatnonzero(width):
                rows = x[i] if axis == 1 else x[i].T  # a view: bands, or time bins, first
                rows[int(start[i]):int(start[i] + width[i])] = mean[i]
    return x


@torch.no_grad()
def eval_frames(model: FrameStudent, mel: np.ndarray, tgt: np.ndarray, va: np.ndarray) -> dict:
    """Held-out reconstruction MSE per value, KL, the R^2 of the code's linear map to the
    teachers' outputs (1 - residual / total variance, over the standardised dims) and that of
    its map to the pseudo-labels (over their two dims, around their mean on these frames)."""
    model.eval()
    se, kl, n, res, tot, vres, vs = 0.0, 0.0, 0, 0.0, 0.0, [], []
    for b in range(0, len(mel), 1024):
        x = torch.from_numpy(mel[b:b + 1024].astype(np.float32))
        y = torch.from_numpy(tgt[b:b + 1024])
        v = torch.from_numpy(va[b:b + 1024])
        mu, logvar = model.vae.encode(x)
        se += float(((model.vae.decoder(mu) - x) ** 2).sum())
        kl += float((-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).sum())
        n += len(x)
        has = torch.isfinite(y).all(1)
        if has.any():
            res += float(((model.to_teacher(mu[has]) - y[has]) ** 2).sum())
            tot += float((y[has] ** 2).sum())
        has_v = torch.isfinite(v).all(1)
        if has_v.any():
            vres.append((model.to_va(mu[has_v]) * model.va_sd + model.va_mu).numpy())
            vs.append(v[has_v].numpy())
    out = {"mse": se / (n * x[0].numel()), "kl": kl / n, "distill_r2": 1 - res / tot if tot else float("nan"),
           "va_r2": float("nan")}
    if vs:
        p, y = np.concatenate(vres), np.concatenate(vs)
        out["va_r2"] = float(1 - ((p - y) ** 2).sum() / max(((y - y.mean(0)) ** 2).sum(), 1e-12))
    return out


@torch.no_grad()
def encode_codes(vae: FrameVAE, seqs: list[Seq], name: str = "student") -> None:
    code = lambda x: vae.encode(x)[0]  # noqa: E731
    for s in seqs:
        out = []
        for g in GAINS_DB:
            x = torch.from_numpy(shift_gain(s.mel, g).astype(np.float32))
            out.append(torch.cat([code(x[i:i + 2048]) for i in range(0, len(x), 2048)]).numpy())
        s.codes[name] = np.stack(out).astype(np.float32)


def encoder_hash(vae: FrameVAE) -> str:
    """A fingerprint of the VAE's weights (its tensors' names, shapes and bytes): what its codes are."""
    h = hashlib.sha256()
    for name, t in sorted(vae.state_dict().items()):
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cached_codes(vae: FrameVAE, seqs: list[Seq], path: Path) -> bool:
    """``encode_codes`` through a cache at ``path`` (``.npz``, the codes of every clip at every
    gain by clip key; beside it ``.json`` naming the encoder by ``encoder_hash``, the gains and
    the features): read when it names this encoder and holds every clip, else encoded and
    written. Stage 2 from a finished stage 1 (``emotrack train`` into a folder holding
    ``frames.pt``, ``scripts/sweep_head.py``) then skips the encoding, the longest step after
    stage 1 (20–45 min for 62 h of audio on one core). Returns whether it was read."""
    path, meta = Path(path), Path(path).with_suffix(".json")
    want = json.loads(json.dumps({"encoder": encoder_hash(vae), "gains_db": GAINS_DB, "features": FEATURES.to_dict()}))
    if path.exists() and meta.exists() and json.loads(meta.read_text()) | {"clips": None} == want | {"clips": None}:
        with np.load(path) as z:
            if all(s.key in z.files for s in seqs):
                for s in seqs:
                    s.codes["student"] = z[s.key]
                log(f"codes of {len(seqs)} clips read from {path}")
                return True
    encode_codes(vae, seqs)
    np.savez(path, **{s.key: s.codes["student"] for s in seqs})
    meta.write_text(json.dumps({**want, "clips": len(seqs)}, indent=1))
    return False


# ---------------------------------------------------------------------- stage 2: the LSTM head
class StudentHead(nn.Module):
    """Stateful LSTM on codes -> valence, arousal (tanh), their std, and (training only) the
    teachers' standardised tags and embedding; per-dataset offsets used only in training."""

    def __init__(self, net: NetConfig, datasets: list[str]):
        super().__init__()
        self.cfg = net
        # with net.tonal, the input's last CHROMA_DIM columns are the frame's pitch-class profile
        # (``with_chroma``), read through TonalFeatures beside the code; with net.tonal_avg too,
        # those of the profiles' causal average come after them, read by a TonalFeatures of their own
        self.tonal = TonalFeatures() if net.tonal else None
        self.tonal_avg = TonalFeatures() if net.tonal and net.tonal_avg else None
        self.n_chroma = CHROMA_DIM * ((self.tonal is not None) + (self.tonal_avg is not None))
        width = net.latent_dim + TONAL_DIM * self.n_chroma // CHROMA_DIM
        self.lstm = nn.LSTM(width, net.lstm_hidden, net.lstm_layers, batch_first=True)
        self.out = nn.Linear(net.lstm_hidden, 4)
        self.tags = nn.Linear(net.lstm_hidden, TAG_DIM)
        self.embed = nn.Linear(net.lstm_hidden, EMB_DIM)
        self.offset_sets = [d for d in datasets if d in CONTINUOUS]
        self.offsets = nn.Parameter(torch.zeros(max(1, len(self.offset_sets)), 2))
        # set after training by ``calibrate`` (1 while training): the std's calibration factor
        self.register_buffer("std_scale", torch.ones(2))

    def forward(self, z, state=None):
        if self.tonal is not None:
            n = self.n_chroma
            if self.tonal_avg is None:
                t = self.tonal(z[..., -n:])
            else:  # the frame's profile and the average's through one pass of the arithmetic (half the graph's ops)
                raw = self.tonal.raw(z[..., -n:].reshape(*z.shape[:-1], 2, CHROMA_DIM))
                mu = torch.stack([self.tonal.mu, self.tonal_avg.mu])
                sd = torch.stack([self.tonal.sd, self.tonal_avg.sd])
                t = ((raw - mu) / sd).flatten(-2)
            z = torch.cat([z[..., :-n], t], -1)
        y, state = self.lstm(z, state)
        o = self.out(y)
        mean = torch.tanh(o[..., :2])
        std = (F.softplus(o[..., 2:]) + self.cfg.min_std) * self.std_scale
        return mean, std, state, y

    def offset_for(self, datasets: list[str]) -> torch.Tensor:
        rows = [self.offsets[self.offset_sets.index(d)] if d in self.offset_sets else torch.zeros(2)
                for d in datasets]
        return torch.stack(rows)


def _gauss_nll(mean, std, y):
    has = torch.isfinite(y)
    y0 = torch.where(has, y, torch.zeros_like(y))
    nll = 0.5 * ((y0 - mean) / std) ** 2 + torch.log(std)
    return torch.where(has, nll, torch.zeros_like(nll)).sum() / has.sum().clamp_min(1)


def _masked_mse(pred, y):
    has = torch.isfinite(y).all(-1)
    if not has.any():
        return torch.zeros(())
    return ((pred[has] - y[has]) ** 2).mean()


def chroma_inputs(s: Seq, avg_seconds: float = 0.0) -> np.ndarray:
    """(T, 12) a clip's pitch-class profiles, or with ``avg_seconds`` (T, 24): those and their
    causal average from the clip's start (``average_profiles``, as the runtime keeps it)."""
    if s.chroma is None:
        raise ValueError(f"{s.key}: no pitch-class profiles loaded (build_seqs(..., chroma=True))")
    ch = np.asarray(s.chroma, np.float32)
    return np.concatenate([ch, average_profiles(ch, avg_seconds)[0]], 1) if avg_seconds else ch


def with_chroma(seqs: list[Seq], avg_seconds: float = 0.0) -> None:
    """Each clip's codes (at every gain) with :func:`chroma_inputs` as 12 (or 24) more columns,
    for a head with ``tonal`` (and ``tonal_avg`` = ``avg_seconds``); call after the codes are in
    (``build_seqs(..., chroma=True)`` loads the profiles). Other heads must not be fed these."""
    for s in seqs:
        c = s.codes["student"]
        ch = chroma_inputs(s, avg_seconds)[: c.shape[1]].astype(c.dtype)
        s.codes["student"] = np.concatenate([c, np.broadcast_to(ch, (c.shape[0], *ch.shape))], 2)


def fit_tonal(head: StudentHead, train: list[Seq]) -> None:
    """A new head's TonalFeatures standardised on the training clips' frames (none: nothing to do)."""
    if head.tonal is not None:
        x = torch.from_numpy(np.concatenate([chroma_inputs(s, head.cfg.tonal_avg) for s in train]))
        head.tonal.fit(x[:, :CHROMA_DIM])
        if head.tonal_avg is not None:
            head.tonal_avg.fit(x[:, CHROMA_DIM:])


def frame_codes(s: Seq, gain: int) -> np.ndarray:
    """(T, D): what the head is fed for a clip at the gain of index ``gain``: the encoder's
    codes (one set per gain), or inputs that exist at one gain only (the accurate model's
    teacher outputs, ``codes["student"]`` of shape (1, T, D))."""
    c = s.codes["student"]
    return c[gain] if len(c) > 1 else c[0]


def _batch(seqs: list[Seq], targets: dict, rng, train: bool, max_len: int = MAX_LEN, encoder=None,
           gains: tuple[float, ...] = GAINS_DB):
    """One batch of sequences (a random crop of at most ``max_len`` frames and a random gain
    of ``gains`` each while training). With ``encoder`` (stage 3) the codes are computed from the mel
    frames by it, inside autograd, instead of read from the frozen codes."""
    xs, tv, ta, ps, tg, em, ds, mels = [], [], [], [], [], [], [], []
    for s in seqs:
        T = len(s.mel)
        st = int(rng.integers(0, T - max_len + 1)) if train and T > max_len else 0
        en = min(T, st + max_len) if train else T
        gi = _gain_index(rng, gains) if train else GAINS_DB.index(0.0)
        t = targets[s.key]
        v, a = s.v[st:en], s.a[st:en]
        if st > 0 and s.clip.kind == "static":
            v, a = v.copy(), a.copy()
            v[:WARMUP] = np.nan
            a[:WARMUP] = np.nan
        if encoder is not None:
            mels.append(shift_gain(s.mel[st:en], GAINS_DB[gi]).astype(np.float32))
        else:
            xs.append(frame_codes(s, gi)[st:en])
        tv.append(v)
        ta.append(a)
        ps.append(t.pseudo[st:en])
        tg.append(t.tags[st:en])
        em.append(t.emb[st:en])
        ds.append(s.clip.dataset)
    L = max(len(v) for v in tv)
    B = len(tv)

    def pad(arrs, dim, fill=np.nan):
        out = np.full((B, L, dim) if dim else (B, L), fill, np.float32)
        for i, x in enumerate(arrs):
            out[i, :len(x)] = x
        return torch.from_numpy(out)

    valid = torch.zeros((B, L), dtype=torch.bool)
    for i, v in enumerate(tv):
        valid[i, :len(v)] = True
    if encoder is not None:
        codes = encoder(torch.from_numpy(np.concatenate(mels)))
        X = codes.new_zeros((B, L, codes.shape[1]))
        X = X.masked_scatter(valid[..., None].expand_as(X), codes)  # row-major order: clip by clip, frame by frame
    else:
        X = pad(xs, xs[0].shape[1], 0.0)
    sign = torch.from_numpy(np.stack([s.sign for s in seqs]))
    w = torch.from_numpy(np.array([s.weight for s in seqs], dtype=np.float32))
    return X, pad(tv, 0), pad(ta, 0), sign, w, valid, pad(ps, 2), pad(tg, TAG_DIM), pad(em, EMB_DIM), ds


def _gain_index(rng, gains: tuple[float, ...]) -> int:
    if tuple(gains) == GAINS_DB:  # the draw of the shipped recipe, unchanged
        return int(rng.integers(len(GAINS_DB)))
    bad = [g for g in gains if g not in GAINS_DB]
    if bad or not gains:
        raise ValueError(f"head_gains_db {tuple(gains)}: choose among the cached gains {GAINS_DB}")
    return GAINS_DB.index(gains[int(rng.integers(len(gains)))])


def head_loss(head: StudentHead, batch, cfg: StudentConfig):
    X, TV, TA, S, W, V, P, TG, EM, ds = batch
    if cfg.head_dropout and head.training:
        X = F.dropout(X, cfg.head_dropout)
    mean, std, _, h = head(X)
    labelled = mean + head.offset_for(ds)[:, None, :]
    if cfg.label_sets is not None:
        W = W * torch.tensor([d in cfg.label_sets for d in ds], dtype=W.dtype)
    label_loss = clip_label_loss if cfg.label_pool == "clip" else seq_loss
    terms = {"labels": label_loss(labelled, std, TV, TA, S, W, V), "pseudo": _gauss_nll(mean, std, P)}
    if cfg.lambda_tags:  # off for the accurate model, whose input already is the teachers' outputs
        terms["tags"] = _masked_mse(head.tags(h), TG)
    if cfg.lambda_embed:
        terms["embed"] = _masked_mse(head.embed(h), EM)
    weights = {"labels": cfg.lambda_labels, "pseudo": cfg.lambda_pseudo, "tags": cfg.lambda_tags, "embed": cfg.lambda_embed}
    return sum(weights[k] * v for k, v in terms.items()), terms


@torch.no_grad()
def predict_head(head: StudentHead, seqs: list[Seq], gain_db: float = 0.0) -> dict[str, np.ndarray]:
    """{key: (T, 4)} valence, arousal, stds from a zero state, no offsets (as at run time), on
    the codes of the audio at ``gain_db`` (one of ``GAINS_DB``)."""
    head.eval()
    g0 = GAINS_DB.index(gain_db)
    out = {}
    for s in seqs:
        mean, std, _, _ = head(torch.from_numpy(frame_codes(s, g0))[None])
        out[s.key] = torch.cat([mean[0], std[0]], -1).numpy()
    return out


@torch.no_grad()
def predict_tags(head: StudentHead, seq: Seq) -> np.ndarray:
    head.eval()
    _, _, _, h = head(torch.from_numpy(frame_codes(seq, GAINS_DB.index(0.0)))[None])
    return head.tags(h)[0].numpy()


def _val_score(head, val, sets: tuple[str, ...] = ()) -> float:
    """Model selection: the mean Pearson r over both dimensions of the validation clips of
    ``sets`` (all labelled sets when empty)."""
    res = evaluate_predictions([s for s in val if not sets or s.clip.dataset in sets], predict_head(head, val))
    rs = [m[d]["r"]["mean"] for m in res.values() for d in ("valence", "arousal")]
    rs = [r for r in rs if math.isfinite(r)]
    return float(np.mean(rs)) if rs else -math.inf


def train_heads(net: NetConfig, datasets: list[str], train: list[Seq], val: list[Seq], targets: dict,
                cfg: StudentConfig) -> tuple[StudentHead, dict]:
    """Stage 2: ``cfg.head_ensemble`` heads, each from its own initialisation and batch order,
    merged into one (``merge_heads``; one head is returned as it is)."""
    heads, reports = [], []
    for k in range(cfg.head_ensemble):
        if k:
            torch.manual_seed(cfg.seed * 1000 + k)
        heads.append(StudentHead(net, datasets))
        fit_tonal(heads[-1], train)
        reports.append(train_head(heads[-1], train, val, targets, cfg, member=k))
    if len(heads) == 1:
        return heads[0], reports[0]
    head = merge_heads(heads)
    history = [{"member": k, **e} for k, r in enumerate(reports) for e in r["history"]]  # every epoch, for timing
    return head, {"members": reports, "history": history, "best_val_mean_r": _val_score(head, val, cfg.select_sets),
                  "offsets": {d: head.offsets[i].tolist() for i, d in enumerate(head.offset_sets)}}


def _epoch(trained: nn.Module, head: StudentHead, order: list[Seq], targets: dict, rng, cfg: StudentConfig, opt,
           after=None, **batch_kw) -> dict[str, float]:
    """One epoch of stage 2's loss over ``order`` in shuffled batches of ``cfg.batch_seqs``
    sequences, stepping ``opt`` on the parameters of ``trained`` (clipped to norm 1; ``after()``
    after each step); returns each term's mean over the batches."""
    batches = [order[i:i + cfg.batch_seqs] for i in range(0, len(order), cfg.batch_seqs)]
    rng.shuffle(batches)
    sums: dict[str, float] = {}
    for b in batches:
        total, terms = head_loss(head, _batch(b, targets, rng, True, gains=cfg.head_gains_db, **batch_kw), cfg)
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        opt.step()
        if after is not None:
            after()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item() / len(batches)
    return sums


def _record(history: list[dict], stage: str, sums: dict[str, float], val_r: float, t0: float) -> None:
    """An epoch's losses, validation score and time: into ``history`` and the log."""
    history.append({"epoch": len(history) + 1, **sums, "val_mean_r": val_r, "seconds": time.time() - t0})
    log(f"student {stage} epoch {len(history)}: " + " ".join(f"{k} {v:.3f}" for k, v in sums.items())
        + f" | val mean r {val_r:.4f} ({time.time() - t0:.0f} s)")


def train_head(head: StudentHead, train: list[Seq], val: list[Seq], targets: dict, cfg: StudentConfig,
               member: int = 0) -> dict:
    rng = np.random.default_rng(cfg.seed + 1 + 7919 * member)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    keep, history = BestEpoch(cfg.patience), []
    order = sorted(train, key=lambda s: len(s.mel))
    avg = copy.deepcopy(head) if cfg.head_ema else head  # the weights that are scored and kept
    for _ in range(cfg.head_epochs):
        head.train()
        t0 = time.time()
        after = None
        if cfg.head_ema:
            @torch.no_grad()
            def after():
                for pa, p in zip(avg.parameters(), head.parameters(), strict=True):
                    pa.lerp_(p, 1.0 - cfg.head_ema)
        sums = _epoch(head, head, order, targets, rng, cfg, opt, after)
        vs = _val_score(avg, val, cfg.select_sets)
        _record(history, "head", sums, vs, t0)
        if keep.update(vs, avg):
            break
    keep.restore(head)
    return {"history": history, "best_val_mean_r": keep.best,
            "offsets": {d: head.offsets[i].tolist() for i, d in enumerate(head.offset_sets)}}


def merge_heads(heads: list[StudentHead]) -> StudentHead:
    """K heads trained on the same codes as one head: an LSTM as wide as theirs together whose
    gates are the K LSTMs' side by side (block-diagonal recurrence), and output maps that
    average the K heads' pre-activations (valence and arousal before the tanh, the std before
    the softplus, the tags and embedding). Exactly the mean of the K heads' outputs before
    their non-linearities, in the one-LSTM shape the runtime and the export already know. A
    member may itself be merged (a run trained with ``head_ensemble``): it counts as one head,
    its own blocks keep their share of it, so the widths may differ."""
    first = heads[0]
    K, widths = len(heads), [h.cfg.lstm_hidden for h in heads]
    if first.cfg.lstm_layers != 1 or any(
            replace(h.cfg, lstm_hidden=first.cfg.lstm_hidden) != first.cfg or h.offset_sets != first.offset_sets
            for h in heads):
        raise ValueError("merge_heads: the heads must be one-layer LSTMs of one configuration")
    for name in ("tonal", "tonal_avg"):  # fit on the same training frames: the same standardisation
        parts = [getattr(h, name) for h in heads]
        if parts[0] is not None and not all(torch.allclose(p.mu, parts[0].mu, atol=1e-5)
                                            and torch.allclose(p.sd, parts[0].sd, atol=1e-5) for p in parts):
            raise ValueError(f"merge_heads: the heads' {name} features were standardised on different frames "
                             "(trained on other clips?): they cannot share one")
    total = sum(widths)
    merged = StudentHead(replace(first.cfg, lstm_hidden=total), first.offset_sets)
    lstm = merged.lstm
    with torch.no_grad():
        if first.tonal is not None:
            merged.tonal.load_state_dict(first.tonal.state_dict())
        if first.tonal_avg is not None:
            merged.tonal_avg.load_state_dict(first.tonal_avg.state_dict())
        merged.offsets.copy_(torch.stack([h.offsets for h in heads]).mean(0))
        for w in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(lstm, w).zero_()
        at = 0
        for h, H in zip(heads, widths, strict=True):
            rows = _gate_rows(total, at, H)
            lstm.weight_ih_l0[rows] = h.lstm.weight_ih_l0
            lstm.weight_hh_l0[rows, at:at + H] = h.lstm.weight_hh_l0
            lstm.bias_ih_l0[rows] = h.lstm.bias_ih_l0
            lstm.bias_hh_l0[rows] = h.lstm.bias_hh_l0
            at += H
        for name in ("out", "tags", "embed"):
            lin = getattr(merged, name)
            lin.weight.copy_(torch.cat([getattr(h, name).weight for h in heads], 1) / K)
            lin.bias.copy_(torch.stack([getattr(h, name).bias for h in heads]).mean(0))
        merged.std_scale.copy_(first.std_scale)
    return merged.eval()


class BlockLSTM(nn.Module):
    """A one-layer LSTM whose recurrence is block-diagonal (``merge_heads``'s) as its K blocks,
    each an LSTM of its own on its slice of the state: the same outputs and state, without the
    multiplications by the zeros off the blocks (three merged heads of 160 units: 0.43 M
    instead of 1.04 M multiply-adds a step). The state keeps the merged shape (1, B, K·H)."""

    def __init__(self, lstm: nn.LSTM, blocks: int):
        super().__init__()
        KH, K = lstm.hidden_size, blocks
        self.H = KH // K
        self.parts = nn.ModuleList()
        for k in range(K):
            rows = _block_rows(KH, self.H, k)
            part = nn.LSTM(lstm.input_size, self.H, 1, batch_first=True)
            with torch.no_grad():
                part.weight_ih_l0.copy_(lstm.weight_ih_l0[rows])
                part.weight_hh_l0.copy_(lstm.weight_hh_l0[rows, k * self.H:(k + 1) * self.H])
                part.bias_ih_l0.copy_(lstm.bias_ih_l0[rows])
                part.bias_hh_l0.copy_(lstm.bias_hh_l0[rows])
            self.parts.append(part)

    def forward(self, z, state):
        h, c = state
        ys, hs, cs = [], [], []
        for k, part in enumerate(self.parts):
            cut = slice(k * self.H, (k + 1) * self.H)
            y, (h2, c2) = part(z, (h[..., cut].contiguous(), c[..., cut].contiguous()))
            ys.append(y)
            hs.append(h2)
            cs.append(c2)
        return torch.cat(ys, -1), (torch.cat(hs, -1), torch.cat(cs, -1))


def _gate_rows(KH: int, start: int, H: int) -> torch.Tensor:
    """The gate rows (i, f, g, o) of the H units from ``start`` in an LSTM of KH units."""
    return torch.cat([torch.arange(g * KH + start, g * KH + start + H) for g in range(4)])


def _block_rows(KH: int, H: int, k: int) -> torch.Tensor:
    """The gate rows (i, f, g, o) of block ``k`` of H units in an LSTM of KH units."""
    return _gate_rows(KH, k * H, H)


def lstm_blocks(lstm: nn.LSTM) -> int:
    """How many independent blocks a one-layer LSTM's recurrence has: the largest K for which
    every weight from one block's state to another block's gates is exactly zero (K heads
    merged by ``merge_heads``; 1 for an ordinary LSTM, or once stage 3 has trained across)."""
    if lstm.num_layers != 1:
        return 1
    KH, w = lstm.hidden_size, lstm.weight_hh_l0.detach()
    for K in sorted((k for k in range(2, KH + 1) if KH % k == 0), reverse=True):
        H = KH // K
        mask = torch.ones_like(w, dtype=torch.bool)
        for k in range(K):
            mask[_block_rows(KH, H, k)[:, None], torch.arange(k * H, (k + 1) * H)] = False
        if not w[mask].any():
            return K
    return 1


def train_joint(vae: FrameVAE, head: StudentHead, train: list[Seq], val: list[Seq], targets: dict,
                cfg: StudentConfig) -> dict:
    """Stage 3 (``cfg.joint_epochs``): the encoder and the head together, on stage 2's loss
    (labels, pseudo-labels, the teachers' tags and embedding from the LSTM state), from where
    stages 1 and 2 left them, with a smaller learning rate and crops of ``joint_len`` frames at
    a random gain. The decoder stays as it is (the runtime does not use it). After every epoch
    the validation clips are encoded again and scored as in stage 2; the best epoch's encoder
    and head are kept (the starting point counts as epoch 0) and the validation clips hold its
    codes; the caller encodes the other clips again."""
    enc = lambda x: vae.encode(x)[0]  # noqa: E731
    both = nn.ModuleDict({"encoder": vae.encoder, "head": head})
    for p in both.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(both.parameters(), lr=cfg.joint_lr)
    rng = np.random.default_rng(cfg.seed + 31)
    keep, history = BestEpoch(cfg.patience), []
    keep.update(_val_score(head, val, cfg.select_sets), both)
    log(f"student joint: start val mean r {keep.best:.4f}")
    order = sorted(train, key=lambda s: len(s.mel))
    for _ in range(cfg.joint_epochs):
        both.train()
        t0 = time.time()
        sums = _epoch(both, head, order, targets, rng, cfg, opt, max_len=cfg.joint_len, encoder=enc)
        both.eval()
        encode_codes(vae, val)
        vs = _val_score(head, val, cfg.select_sets)
        _record(history, "joint", sums, vs, t0)
        if keep.update(vs, both):
            break
    keep.restore(both)
    both.eval()
    for p in both.parameters():
        p.requires_grad_(False)
    encode_codes(vae, val)  # the kept encoder's codes (the last epoch's were there)
    return {"history": history, "best_val_mean_r": keep.best}


def within_one_std(seqs: list[Seq], preds: dict, scale: np.ndarray) -> np.ndarray:
    """Per dimension, the share of labelled frames (static labels after the warm-up; frame
    labels) whose label lies within ±1 predicted std, the std multiplied by ``scale``."""
    inside, total = np.zeros(2), np.zeros(2)
    for s in seqs:
        if s.key not in preds or s.clip.kind not in ("static", "dynamic"):
            continue
        p = preds[s.key]
        y = np.stack([s.v, s.a], 1)[: len(p)]
        ok = np.isfinite(y)
        inside += (ok & (np.abs(p[:, :2] - y) <= p[:, 2:] * scale)).sum(0)
        total += ok.sum(0)
    return inside / np.maximum(total, 1)


def calibrate(head: StudentHead, val: list[Seq], target: float = 0.6827) -> dict:
    """One factor per dimension for the predicted std, chosen on the validation clips so that
    68.3 % of labelled frames fall within ±1 std (a Gaussian's share); it goes into the
    exported graph. The label noise of the sets is part of what it absorbs."""
    preds = predict_head(head, val)
    factors = []
    for d in range(2):
        lo, hi = 0.05, 20.0
        for _ in range(40):  # the share grows with the factor: bisect in log space
            mid = math.sqrt(lo * hi)
            sc = np.ones(2)
            sc[d] = mid
            if within_one_std(val, preds, sc)[d] < target:
                lo = mid
            else:
                hi = mid
        factors.append(math.sqrt(lo * hi))
    scale = np.asarray(factors, np.float32)
    head.std_scale.copy_(torch.from_numpy(scale))
    return {"std_scale": scale.tolist(), "val_within_1std_before": within_one_std(val, preds, np.ones(2)).tolist(),
            "val_within_1std_after": within_one_std(val, preds, scale).tolist()}


def leave_out(clips: list[Clip], cfg: StudentConfig, dataset: str,
              keep_audio: bool = False) -> tuple[list[Clip], StudentConfig]:
    """Leave-one-dataset-out: every training and validation clip of ``dataset`` goes (its audio
    too, so the test songs are music the student has never heard); its test split stays, to
    be evaluated; the teacher head is fit without it. ``keep_audio``: its training and
    validation clips stay as unlabelled audio instead (the teachers' outputs and the
    pseudo-labels teach on them; its labels never do)."""
    if dataset not in {c.dataset for c in clips}:
        raise ValueError(f"--leave-out {dataset}: not among the datasets of this run")
    kept = [c if c.dataset != dataset or c.split == "test" else
            replace(c, valence=None, arousal=None, quadrant=None, dyn_t=None, dyn_v=None, dyn_a=None)
            for c in clips if keep_audio or c.dataset != dataset or c.split == "test"]
    sets = tuple(d for d in cfg.head_sets if d != dataset)
    return kept, replace(cfg, head_sets=sets, leave_out=dataset, keep_audio=keep_audio)
