"""The student's pieces that need no data: merging an ensemble of heads into the one LSTM the
runtime knows, what a saved stage-1 encoder is keyed on, stage 1's map to the pseudo-labels,
the causal fill of the pseudo-label teacher's inputs, the weighting of stage 2's label loss,
leave-one-out with and without the left-out set's audio, ``train --set`` (the encoder's width
among its fields), stage 1's augmentation, the refusal of settings the student cannot use,
the agreement table of ``scripts/probe_mimic.py`` and the rhythm vector of
``scripts/probe_rhythm.py``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from emotrack.models.accurate import hold_last
from emotrack.models.data import Clip
from emotrack.models.distill import (
    BlockLSTM,
    FrameStudent,
    StudentConfig,
    StudentHead,
    _gain_index,
    augment_frames,
    cached_codes,
    check_config,
    eval_frames,
    head_loss,
    leave_out,
    lstm_blocks,
    merge_heads,
    stage1_key,
    student_net,
)
from emotrack.models.nets import ConvEncoder, ConvMaxFreq, MusicnnFront, NetConfig
from emotrack.models.seqs import Seq
from emotrack.models.train_cli import with_settings
from emotrack.realtime.core.config import FEATURES

from ..conftest import ROOT

SETS = ["emotify", "panda4q", "soundtracks"]


def _heads(k: int, **net):
    cfg = replace(student_net(), latent_dim=6, lstm_hidden=8, **net)
    out = []
    for i in range(k):
        torch.manual_seed(i)
        h = StudentHead(cfg, SETS)
        with torch.no_grad():
            h.offsets.normal_()
        out.append(h.eval())
    return out


@torch.no_grad()
def test_merged_heads_are_the_mean_of_their_pre_activations():
    heads = _heads(3)
    merged = merge_heads(heads)
    assert merged.cfg.lstm_hidden == 24 and merged.offset_sets == heads[0].offset_sets
    z = torch.randn(2, 13, 6)
    states, merged_state = [None] * 3, None
    for chunk in (z[:, :5], z[:, 5:]):  # stepping on from a carried state, as the runtime does
        runs = [h.lstm(chunk, st) for h, st in zip(heads, states, strict=True)]
        ys, states = [r[0] for r in runs], [r[1] for r in runs]
        y, merged_state = merged.lstm(chunk, merged_state)
        for name in ("out", "tags", "embed"):
            want = torch.stack([getattr(h, name)(o) for h, o in zip(heads, ys, strict=True)]).mean(0)
            # float32 sums of 24 products instead of 8: a few ulps, far below any output's resolution
            assert torch.allclose(getattr(merged, name)(y), want, atol=1e-6), name
    assert torch.allclose(merged.offsets, torch.stack([h.offsets for h in heads]).mean(0))
    mean, std, _, _ = merged(z)
    assert mean.shape == (2, 13, 2) and (std > 0).all()


@torch.no_grad()
def test_merged_lstm_runs_as_its_blocks_apart():
    """The export runs K merged heads as K LSTMs (BlockLSTM): the same outputs and state as the
    one wide LSTM, from a carried non-zero state; the blocks are found from the weights."""
    merged = merge_heads(_heads(3))
    assert lstm_blocks(merged.lstm) == 3 and lstm_blocks(_heads(1)[0].lstm) == 1
    apart = BlockLSTM(merged.lstm, 3)
    z, h, c = torch.randn(2, 9, 6), torch.randn(1, 2, 24), torch.randn(1, 2, 24)
    (y1, (h1, c1)), (y2, (h2, c2)) = merged.lstm(z, (h, c)), apart(z, (h, c))
    assert y2.shape == y1.shape and h2.shape == h1.shape == (1, 2, 24)
    for a, b in ((y1, y2), (h1, h2), (c1, c2)):  # 24-term sums against 8-term ones: a few ulps
        assert torch.allclose(a, b, atol=1e-6)
    merged.lstm.weight_hh_l0[0, 8] = 0.1  # head 1's first unit now feeds head 0's first input gate
    assert lstm_blocks(merged.lstm) == 1


@torch.no_grad()
def test_a_merged_head_merges_again_as_one_member():
    """A run's own head merged already (``head_ensemble``) and two more draws: one LSTM of 32
    units whose outputs are the mean of the three members' (the merged member's own two
    blocks keep half of its third), run as four blocks by the export."""
    a, b, c, d = _heads(4)
    ab = merge_heads([a, b])
    merged = merge_heads([ab, c, d])
    assert merged.cfg.lstm_hidden == 32 and lstm_blocks(merged.lstm) == 4
    z = torch.randn(2, 11, 6)
    for name in ("out", "tags", "embed"):
        parts = [getattr(h, name)(h.lstm(z)[0]) for h in (ab, c, d)]
        got = getattr(merged, name)(merged.lstm(z)[0])
        assert torch.allclose(got, torch.stack(parts).mean(0), atol=1e-6), name  # a few ulps: 32-term sums
    assert torch.allclose(merged.offsets, torch.stack([ab.offsets, c.offsets, d.offsets]).mean(0))


def test_tonal_heads_standardised_on_other_frames_do_not_merge():
    a, b = _heads(2, tonal=True)
    assert merge_heads([a, b]).tonal is not None  # both standardised alike (here: not fit at all)
    with torch.no_grad():
        b.tonal.mu += 0.5
    with pytest.raises(ValueError, match="standardised on different frames"):
        merge_heads([a, b])


def test_a_whole_clip_label_is_scored_on_the_clip_mean():
    """clip_label_loss: a static label is scored on the mean prediction, so moving the frames
    around that mean costs nothing (seq_loss charges it); a quadrant sign likewise on the mean;
    frame labels that vary are scored per frame, as seq_loss does."""
    from emotrack.models.train import clip_label_loss, seq_loss

    T = 10
    valid = torch.ones(1, T, dtype=torch.bool)
    w, no_sign = torch.ones(1), torch.zeros(1, 2)
    tv, ta = torch.full((1, T), 0.5), torch.full((1, T), -0.2)
    std = torch.full((1, T, 2), 0.3)
    flat = torch.stack([torch.full((1, T), 0.3), torch.full((1, T), 0.1)], -1)
    wiggle = flat + 0.2 * torch.tensor([1.0, -1.0] * (T // 2)).view(1, T, 1)  # the same mean, moving
    assert torch.isclose(clip_label_loss(wiggle, std, tv, ta, no_sign, w, valid),
                         clip_label_loss(flat, std, tv, ta, no_sign, w, valid), atol=1e-6)
    assert seq_loss(wiggle, std, tv, ta, no_sign, w, valid) > seq_loss(flat, std, tv, ta, no_sign, w, valid) + 0.1
    # a flat prediction is scored alike either way (same mean, same std, frames counted alike)
    assert torch.isclose(clip_label_loss(flat, std, tv, ta, no_sign, w, valid),
                         seq_loss(flat, std, tv, ta, no_sign, w, valid), atol=1e-6)
    # a quadrant sign on the mean after the warm-up: some frames on the wrong side cost nothing
    nan = torch.full((1, T), float("nan"))
    sign = torch.tensor([[1.0, 1.0]])
    mostly = torch.full((1, T, 2), 0.4)
    mostly[0, 6:] = -0.1  # the clip's mean stays positive
    assert torch.isclose(clip_label_loss(mostly, std, nan, nan, sign, w, valid),
                         clip_label_loss(torch.full((1, T, 2), mostly[0, 4:].mean().item()), std, nan, nan, sign, w, valid),
                         atol=1e-6)
    assert seq_loss(mostly, std, nan, nan, sign, w, valid) > clip_label_loss(mostly, std, nan, nan, sign, w, valid)
    # labels that vary over the clip: per frame, as seq_loss
    dv, da = torch.linspace(-0.5, 0.5, T).view(1, T), torch.linspace(0.3, -0.3, T).view(1, T)
    assert torch.isclose(clip_label_loss(wiggle, std, dv, da, no_sign, w, valid),
                         seq_loss(wiggle, std, dv, da, no_sign, w, valid), atol=1e-6)
    with pytest.raises(ValueError, match="label_pool='mean': one of frame, clip"):
        student_net(replace(StudentConfig(), label_pool="mean"))


def test_one_head_merges_to_itself_and_unlike_heads_do_not_merge():
    (h,) = _heads(1)
    z = torch.randn(1, 4, 6)
    with torch.no_grad():
        assert torch.allclose(merge_heads([h])(z)[0], h(z)[0], atol=1e-6)
    with pytest.raises(ValueError, match="one configuration"):
        merge_heads(_heads(1) + _heads(1, min_std=0.05))
    with pytest.raises(ValueError, match="one-layer"):
        merge_heads(_heads(2, lstm_layers=2))


def test_stage1_checkpoint_is_kept_across_stage2_settings_and_lstm_width():
    def key(cfg, net):
        return json.dumps([asdict(cfg), net.to_dict(), 1000], sort_keys=True, default=str)

    cfg, net = replace(StudentConfig(), lambda_frame_va=0.0, pseudo_source="ridge"), student_net()
    same = [key(replace(cfg, head_ema=0.99, head_ensemble=3, lambda_pseudo=2.0, joint_epochs=3), net),
            key(cfg, replace(net, lstm_hidden=256)), key(replace(cfg, pseudo_source="accurate"), net),
            key(replace(cfg, lambda_labels=0.0, label_sets=("soundtracks",)), net),
            key(replace(cfg, head_rff=2000), net),  # without the map to them, stage 1 never sees the pseudo-labels
            key(replace(cfg, head_vgg=True), net),
            key(replace(cfg, tonal=True), replace(net, tonal=True)),  # the tonal input is the LSTM's
            key(replace(cfg, tonal=True, tonal_avg=10.0), replace(net, tonal=True, tonal_avg=10.0))]
    assert all(stage1_key(k) == stage1_key(key(cfg, net)) for k in same)
    # tonal teachers make stage 2's pseudo-labels only: stage 1 learns from the plain ones
    assert stage1_key(key(replace(cfg, lambda_frame_va=5.0), net)) == stage1_key(
        key(replace(cfg, lambda_frame_va=5.0, head_tonal=True), net))
    different = [key(replace(cfg, lambda_frame=0.2), net), key(cfg, replace(net, latent_dim=32)),
                 key(replace(cfg, lambda_frame_va=5.0), net), key(replace(cfg, frame_eq_db=6.0), net),
                 key(replace(cfg, frame_masks=1), net)]
    assert stage1_key(key(replace(cfg, lambda_frame_va=5.0), net)) != stage1_key(
        key(replace(cfg, lambda_frame_va=5.0, pseudo_source="accurate"), net))  # then the pseudo-labels count
    assert stage1_key(key(replace(cfg, lambda_frame_va=5.0), net)) != stage1_key(
        key(replace(cfg, lambda_frame_va=5.0, head_rff=2000), net))  # and the head that makes them
    assert stage1_key(key(replace(cfg, lambda_frame_va=5.0), net)) != stage1_key(
        key(replace(cfg, lambda_frame_va=5.0, head_vgg=True), net))
    assert all(stage1_key(k) != stage1_key(key(cfg, net)) for k in different)


def test_stage1_augmentation_stays_within_its_bounds_and_leaves_the_input_alone():
    from emotrack.models.seqs import FLOOR

    m, n = FEATURES.frame_shape
    x = torch.from_numpy(np.random.default_rng(0).uniform(0.5, 3.0, (64, m, n)).astype(np.float32))
    before = x.clone()
    eq = augment_frames(x, np.random.default_rng(1), 6.0, 0)
    assert torch.equal(x, before)  # a new tensor: the cached frames are never changed
    shift = eq - x
    # the EQ is one curve over the bands, the same in every time bin, within +-6 dB
    assert torch.allclose(shift, shift[:, :, :1].expand_as(shift), atol=1e-6)
    assert shift.abs().max() <= 6.0 / FEATURES.db_scale + 1e-6 and shift.abs().max() > 1.0 / FEATURES.db_scale
    assert (augment_frames(torch.full((4, m, n), FLOOR), np.random.default_rng(2), 6.0, 0) >= FLOOR).all()
    masked = augment_frames(x, np.random.default_rng(3), 0.0, 1)
    changed = masked != x
    for i in range(len(x)):  # one block of bands (<= 8) and one of bins (<= 4), set to the frame's mean
        rows, cols = changed[i].all(1).sum().item(), changed[i].all(0).sum().item()
        assert rows <= 8 and cols <= 4
        assert torch.allclose(masked[i][changed[i]], x[i].mean().expand(int(changed[i].sum())))
    assert changed.any(2).any(1).float().mean() > 0.5  # most frames get a mask
    assert torch.equal(augment_frames(x, np.random.default_rng(3), 0.0, 0), x)
    check_config(replace(StudentConfig(), frame_eq_db=6, frame_masks=2))
    for bad in ({"frame_eq_db": -1.0}, {"frame_eq_db": 60.0}, {"frame_eq_db": "6"}, {"frame_masks": 1.5},
                {"frame_masks": -2}, {"frame_masks": True}, {"head_rff": -5}, {"head_rff": 1.5},
                {"head_vgg": 1}, {"head_vgg": "yes"}, {"tonal": 1}, {"tonal": True, "joint_epochs": 1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            check_config(replace(StudentConfig(), **bad))


def test_hold_last_fills_gaps_from_the_past_only():
    z = np.array([[np.nan, np.nan], [1, 2], [np.nan, np.nan], [np.nan, np.nan], [5, 6], [np.nan, np.nan]], np.float32)
    out = hold_last(z)
    # before the first window: the training mean (0 after standardising); then the last window seen
    np.testing.assert_array_equal(out, [[0, 0], [1, 2], [1, 2], [1, 2], [5, 6], [5, 6]])
    full = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(hold_last(full), full)
    assert hold_last(z[:1]).tolist() == [[0.0, 0.0]]


@torch.no_grad()
def test_stage1_va_map_is_scored_in_label_units_and_skips_frames_without_labels():
    torch.manual_seed(0)
    fs = FrameStudent(replace(student_net(), latent_dim=4, channels=(4, 4, 4), enc_hidden=16)).eval()
    mel = np.random.default_rng(0).standard_normal((40, *FEATURES.frame_shape)).astype(np.float32)
    mu = fs.vae.encode(torch.from_numpy(mel))[0]
    fs.va_mu.copy_(torch.tensor([0.2, -0.1]))
    fs.va_sd.copy_(torch.tensor([0.5, 0.3]))
    va = (fs.to_va(mu) * fs.va_sd + fs.va_mu).numpy()  # labels the map predicts exactly
    va[::4] = np.nan  # frames with no pseudo-label are left out, not counted as errors
    tgt = np.full((40, 500), np.nan, np.float32)
    assert eval_frames(fs, mel, tgt, va)["va_r2"] == pytest.approx(1.0, abs=1e-5)
    noisy = va + np.random.default_rng(1).standard_normal(va.shape).astype(np.float32)
    assert eval_frames(fs, mel, tgt, noisy)["va_r2"] < 0.9


def test_train_set_changes_a_field_and_refuses_what_it_cannot_read():
    cfg = with_settings(StudentConfig(), ["frame_epochs=3", "lambda_frame_va=5", "pseudo_source=accurate",
                                          'head_sets=["soundtracks"]', "lstm_hidden=64"])
    assert (cfg.frame_epochs, cfg.lambda_frame_va, cfg.pseudo_source, cfg.head_sets, cfg.lstm_hidden) == (
        3, 5.0, "accurate", ("soundtracks",), 64)
    assert isinstance(cfg.lambda_frame_va, float)
    for bad, says in (("nope=1", "FIELD one of"), ("frame_epochs=x", "takes int"), ("frame_epochs", "FIELD=VALUE")):
        with pytest.raises(ValueError, match=says):
            with_settings(StudentConfig(), [bad])


def test_encoder_width_is_set_by_the_config_and_is_stage1s():
    assert (student_net().channels, student_net().enc_hidden) == ((48, 24, 64), 512)  # emotrack-vae-lstm 4's
    conv = with_settings(StudentConfig(), ["front=conv"])
    assert (student_net(conv).channels, student_net(conv).enc_hidden) == ((48, 96, 128), 512)  # 3's
    narrow = with_settings(conv, ["channels=[32, 64, 96]", "enc_hidden=384"])  # emotrack-vae-lstm 2's
    net = student_net(narrow)
    assert (net.channels, net.enc_hidden) == ((32, 64, 96), 384)
    assert (net.latent_dim, net.lstm_hidden) == (student_net().latent_dim, student_net().lstm_hidden)
    assert FrameStudent(net).vae.encoder.conv[4].out_channels == 96

    def key(cfg):
        return json.dumps([asdict(cfg), student_net(cfg).to_dict(), 1000], sort_keys=True, default=str)

    # another width is a new stage 1, not a resumed one; the default width given explicitly is the same one
    assert stage1_key(key(narrow)) != stage1_key(key(conv))
    same = with_settings(conv, ["channels=[48, 96, 128]", "enc_hidden=512"])
    assert stage1_key(key(same)) == stage1_key(key(conv))
    for bad in ((48, 96), (48, 0, 128), 48, (48.0, 96, 128)):
        with pytest.raises(ValueError, match="three conv layers"):
            student_net(replace(StudentConfig(), channels=bad))
    for bad in (0, "wide", True):
        with pytest.raises(ValueError, match="positive whole number"):
            student_net(replace(StudentConfig(), enc_hidden=bad))


@torch.no_grad()
def test_musicnn_front_is_chosen_by_the_config_and_keeps_old_keys():
    conv = student_net(with_settings(StudentConfig(), ["front=conv"]))
    assert conv.front == "conv" and "front" not in conv.to_dict()  # saved runs' keys and cards as before
    assert isinstance(FrameStudent(conv).vae.encoder, ConvEncoder)
    # a report written before emotrack-vae-lstm 4 saved front=None for the conv front
    assert student_net(replace(StudentConfig(), front=None)) == conv
    cfg = StudentConfig()  # emotrack-vae-lstm 4's: the musicnn-shaped front
    net = student_net(cfg)
    assert (net.front, net.channels) == ("musicnn", (48, 24, 64)) and NetConfig.from_dict(net.to_dict()) == net
    enc = FrameStudent(net).vae.encoder.eval()
    assert isinstance(enc, MusicnnFront) and enc.timbral[0].out_channels == 48 and enc.temporal[0].out_channels == 24
    x = torch.randn(5, *FEATURES.frame_shape)
    assert enc(x).shape == (5, 2 * net.latent_dim)
    # a frame's code does not depend on the other frames of the batch (no batch statistics)
    torch.testing.assert_close(enc(x[2:3]), enc(x)[2:3], rtol=1e-5, atol=1e-5)
    # another front is another stage 1; "musicnn" given explicitly is the default one, None is "conv"
    def key(c):
        return stage1_key(json.dumps([asdict(c), student_net(c).to_dict(), 1000], sort_keys=True, default=str))

    assert key(with_settings(cfg, ["front=conv"])) != key(cfg) == key(with_settings(StudentConfig(), ["front=musicnn"]))
    assert key(replace(cfg, front=None)) == key(with_settings(cfg, ["front=conv"]))
    narrow = student_net(with_settings(StudentConfig(), ["front=musicnn", "channels=[16, 8, 32]"]))
    assert narrow.channels == (16, 8, 32)
    with pytest.raises(ValueError, match="front='wide': choose one of"):
        check_config(replace(StudentConfig(), front="wide"))


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), [((6, 1, 64, 23), (25, 7), (2, 1), (0, 3)),
                                                                    ((3, 2, 20, 9), (5, 3), (3, 2), (1, 1))])
def test_conv_max_trains_like_nn_conv2d_and_amax(shape, kernel, stride, padding):
    """The faster backward pass is the same gradient: weights, bias and input against torch's
    own conv and amax over frequency (float32 sums in another order: 1e-4 relative is ~100
    times their rounding)."""
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(shape[1], 4, kernel, stride=stride, padding=padding)
    fast = ConvMaxFreq(shape[1], 4, kernel, stride=stride, padding=padding)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(shape, requires_grad=True)
    g = torch.randn_like(ref(x).amax(2))
    grads = []
    for f, conv in ((lambda v: ref(v).amax(2), ref), (fast, fast)):
        x.grad = None
        y = f(x)
        (y * g).sum().backward()
        grads.append((y.detach(), x.grad, conv.weight.grad, conv.bias.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
    with torch.no_grad():  # inference (and the ONNX export): nn.Conv2d's own forward and amax
        torch.testing.assert_close(fast(x), ref(x).amax(2))


@torch.no_grad()
def test_stage2_labels_weigh_lambda_labels_and_only_count_for_label_sets():
    head = _heads(1)[0]
    rng = np.random.default_rng(0)
    B, L = 3, 10
    tv = torch.from_numpy(rng.uniform(-1, 1, (B, L)).astype(np.float32))
    ta = torch.from_numpy(rng.uniform(-1, 1, (B, L)).astype(np.float32))
    pseudo = torch.from_numpy(rng.uniform(-1, 1, (B, L, 2)).astype(np.float32))
    nan = lambda d: torch.full((B, L, d), float("nan"))  # noqa: E731
    batch = (torch.randn(B, L, 6), tv, ta, torch.zeros(B, 2), torch.ones(B), torch.ones(B, L, dtype=torch.bool),
             pseudo, nan(100), nan(400), ["soundtracks", "soundtracks", "emotify"])
    base = StudentConfig(lambda_tags=0.0, lambda_embed=0.0)
    total, terms = head_loss(head, batch, base)
    assert float(terms["labels"]) != 0.0
    assert float(total) == pytest.approx(float(terms["labels"] + terms["pseudo"]), rel=1e-6)
    half, _ = head_loss(head, batch, replace(base, lambda_labels=0.5))
    assert float(half) == pytest.approx(float(0.5 * terms["labels"] + terms["pseudo"]), rel=1e-6)
    # a set left out of label_sets adds nothing to the label loss; the others' frames are averaged alone
    _, only_st = head_loss(head, batch, replace(base, label_sets=("soundtracks",)))
    st_batch = tuple(x[:2] if isinstance(x, (torch.Tensor, list)) else x for x in batch)
    _, st_alone = head_loss(head, st_batch, base)
    assert float(only_st["labels"]) == pytest.approx(float(st_alone["labels"]), rel=1e-5)
    _, none = head_loss(head, batch, replace(base, label_sets=()))
    assert float(none["labels"]) == 0.0 and float(none["pseudo"]) == pytest.approx(float(terms["pseudo"]), rel=1e-6)


def test_leave_out_drops_the_set_or_keeps_its_audio_without_labels():
    clips = [Clip("soundtracks", str(i), str(i), sp, valence=0.5, arousal=-0.2)
             for i, sp in enumerate(("train", "val", "test"))]
    clips += [Clip("panda4q", "p", "p", "train", quadrant=1)]
    cfg = StudentConfig()
    kept, c = leave_out(clips, cfg, "soundtracks")
    assert [k.key for k in kept] == ["soundtracks/2", "panda4q/p"]
    assert c.leave_out == "soundtracks" and "soundtracks" not in c.head_sets and not c.keep_audio
    kept, c = leave_out(clips, cfg, "soundtracks", keep_audio=True)
    assert [(k.key, k.kind) for k in kept] == [("soundtracks/0", "unlabelled"), ("soundtracks/1", "unlabelled"),
                                              ("soundtracks/2", "static"), ("panda4q/p", "quadrant")]
    assert c.keep_audio and "soundtracks" not in c.head_sets
    assert kept[2].valence == 0.5  # the test split keeps its labels: it is what gets scored
    # the saved encoder of a run without the left-out audio is not taken for one with it
    key = lambda cf: stage1_key(json.dumps([asdict(cf), {}, 100]))  # noqa: E731
    assert key(leave_out(clips, cfg, "soundtracks")[1]) != key(c)
    with pytest.raises(ValueError, match="not among the datasets"):
        leave_out(clips, cfg, "emotify")


@pytest.mark.parametrize(("setting", "says"), [("channels=[48, 96]", "three conv layers' widths"),
                                              ("frame_masks=-1", "frame_masks=-1: give how many masks"),
                                              ("front=wide", "choose one of ['conv', 'musicnn']")])
def test_train_refuses_settings_it_cannot_use_before_reading_data(tmp_path, setting, says):
    r = subprocess.run([sys.executable, "-m", "emotrack.realtime.cli", "train", "--teachers", "--set",
                        setting, "--data", str(tmp_path / "no-data"), "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert says in r.stderr and not (tmp_path / "x").exists()


@pytest.mark.parametrize("args", [["--keep-audio"], ["--teachers", "--keep-audio"], ["--leave-out", "soundtracks",
                                                                                     "--keep-audio"]])
def test_keep_audio_needs_a_student_leave_one_out_run(args, tmp_path):
    r = subprocess.run([sys.executable, "-m", "emotrack.realtime.cli", "train", *args, "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--teachers --leave-out DATASET" in r.stderr and not (tmp_path / "x").exists()


def test_stage2_gain_draw_keeps_the_shipped_draw_and_refuses_uncached_gains():
    from emotrack.models.seqs import GAINS_DB
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert [_gain_index(a, GAINS_DB) for _ in range(50)] == [int(b.integers(len(GAINS_DB))) for _ in range(50)]
    rng = np.random.default_rng(0)
    assert {_gain_index(rng, (0.0,)) for _ in range(20)} == {GAINS_DB.index(0.0)}
    assert {_gain_index(rng, (-6.0, 6.0)) for _ in range(50)} == {GAINS_DB.index(-6.0), GAINS_DB.index(6.0)}
    for bad in ((3.0,), ()):
        with pytest.raises(ValueError, match="cached gains"):
            _gain_index(rng, bad)


def _probe_mimic():
    spec = importlib.util.spec_from_file_location("probe_mimic", ROOT / "scripts" / "probe_mimic.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_probe_mimic_agreement_tells_a_close_student_from_one_that_follows_the_ratings():
    rng = np.random.default_rng(0)
    T, n = 30, 40
    level = rng.standard_normal((n, 2))  # each clip's teacher level
    teacher = {f"c{i}": level[i] + 0.3 * rng.standard_normal((T, 2)) for i in range(n)}
    for i in range(n):
        teacher[f"c{i}"][:6] = np.nan  # before 3 s: no pseudo-label, not counted
    ratings = {f"c{i}": tuple(-level[i]) for i in range(n)}  # a teacher exactly wrong about the ratings
    close = {k: np.nan_to_num(v, nan=99.0) + 0.05 * rng.standard_normal((T, 2)) for k, v in teacher.items()}
    rated = {k: np.tile(np.array(ratings[k]), (T, 1)) + 0.1 * rng.standard_normal((T, 2)) for k in teacher}
    a = _probe_mimic().agreement(teacher, close, ratings)
    b = _probe_mimic().agreement(teacher, rated, ratings)
    assert a["clips"] == b["clips"] == n
    for d in ("valence", "arousal"):
        # the NaN frames are left out: the close student's value 99 there never enters a mean
        assert a[d]["student~teacher"] > 0.99 and a[d]["within-clip student~teacher"] > 0.9
        assert a[d]["teacher~ratings"] < -0.99  # the clip means carry 0.3/sqrt(24) of noise: not exactly -1
        assert a[d]["student~ratings"] < -0.99
        assert b[d]["student~teacher"] < -0.95 and b[d]["student~ratings"] > 0.95
        assert abs(b[d]["within-clip student~teacher"]) < 0.3  # noise against noise within a clip
    few = _probe_mimic().agreement({k: teacher[k] for k in ("c0", "c1")}, close, ratings)
    assert few["clips"] == 2 and np.isnan(few["valence"]["student~teacher"])  # r of two clips is not reported


def test_probe_rhythm_is_causal_and_finds_the_beat(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # it imports its sibling probes
    spec = importlib.util.spec_from_file_location("probe_rhythm", ROOT / "scripts" / "probe_rhythm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m, n = FEATURES.frame_shape
    T, period = 20, 10  # a click every 10 bins of 20 ms (0.2 s) on the grid frames are cut from
    when = np.arange(T)[:, None] * mod.SLOT + np.arange(n)[None, :]
    mel = np.broadcast_to((when % period == 0)[:, None, :], (T, m, n)).astype(np.float32)
    feats = mod.rhythm(mel)
    assert feats.shape == (T, 2 * (mod.LAGS + 2)) and np.isfinite(feats).all()
    for t in range(5, T):  # once 3 s are heard: the strongest lag up to 0.3 s is the beat's
        assert int(np.argmax(feats[t, :15])) + 1 == period
    changed = mel.copy()
    changed[12:] = np.random.default_rng(0).uniform(0, 1, changed[12:].shape)
    # causal: a frame's vector never depends on the frames after it
    np.testing.assert_array_equal(mod.rhythm(changed)[:12], feats[:12])
    assert not np.allclose(mod.rhythm(changed)[12:], feats[12:])


@torch.no_grad()
def test_codes_cache_is_read_only_for_the_encoder_and_clips_it_holds(tmp_path):
    """``cached_codes``: a second stage 2 from the same encoder reads the codes instead of
    encoding 62 h again; another encoder (one weight moved) or a clip it lacks encodes afresh."""
    rng = np.random.default_rng(0)
    seqs = [Seq(Clip("soundtracks", str(i), str(i), "train"), rng.normal(size=(5 + i, *FEATURES.frame_shape))
                .astype(np.float16), np.zeros(5 + i), np.zeros(5 + i), np.zeros(2)) for i in range(2)]
    fs = FrameStudent(student_net())
    fs.eval()
    path = tmp_path / "codes.npz"
    assert cached_codes(fs.vae, seqs, path) is False and path.with_suffix(".json").exists()
    first = [s.codes.pop("student") for s in seqs]
    assert first[1].shape == (3, 6, student_net().latent_dim)  # every gain, every frame
    assert cached_codes(fs.vae, seqs, path) is True
    assert all(np.array_equal(s.codes["student"], f) for s, f in zip(seqs, first, strict=True))
    more = [*seqs, Seq(Clip("panda4q", "x", "x", "val"), seqs[0].mel, seqs[0].v, seqs[0].a, seqs[0].sign)]
    assert cached_codes(fs.vae, more, path) is False  # a clip the cache lacks
    next(iter(fs.vae.encoder.parameters()))[0].add_(0.5)
    assert cached_codes(fs.vae, seqs, path) is False  # another encoder
    assert not np.allclose(seqs[1].codes["student"], first[1])


def test_a_tonal_head_reads_the_chroma_columns_and_merges_with_them():
    """A head with ``tonal`` splits its input into the code and the frame's pitch-class profile
    (``with_chroma``'s last 12 columns); what it is told about the key changes its answer, its
    standardisation is fit on the training frames, and merged heads keep it."""
    from emotrack.models.distill import CHROMA_DIM, fit_tonal, with_chroma

    torch.manual_seed(0)
    net = NetConfig(latent_dim=6, lstm_hidden=8, tonal=True)
    rng = np.random.default_rng(0)
    clip = Clip("soundtracks", "x", "g", "train")
    seqs = [Seq(clip, np.zeros((5, 2, 2), np.float16), np.zeros(5), np.zeros(5), np.zeros(2),
                codes={"student": rng.standard_normal((3, 5, 6)).astype(np.float16)},
                chroma=rng.dirichlet(np.ones(12), 5).astype(np.float16)) for _ in range(3)]
    with_chroma(seqs)
    assert seqs[0].codes["student"].shape == (3, 5, 6 + CHROMA_DIM)
    np.testing.assert_array_equal(seqs[1].codes["student"][2, :, 6:], seqs[1].chroma)  # every gain, the same profile
    heads = [StudentHead(net, ["soundtracks"]) for _ in range(2)]
    for h in heads:
        fit_tonal(h, seqs)
    x = torch.from_numpy(np.concatenate([s.chroma for s in seqs]).astype(np.float32))
    z = heads[0].tonal(x)
    assert torch.allclose(z.mean(0), torch.zeros(22), atol=1e-4) and heads[0].lstm.input_size == 6 + 22
    inp = torch.from_numpy(seqs[0].codes["student"][1][None].astype(np.float32))
    other = inp.clone()
    other[..., 6:] = torch.roll(other[..., 6:], 1, -1).flip(-1)  # another key and mode
    with torch.no_grad():
        assert not torch.allclose(heads[0](inp)[0], heads[0](other)[0])
        merged = merge_heads(heads)
        mean = (heads[0].out(heads[0](inp)[3]) + heads[1].out(heads[1](inp)[3])) / 2
        assert torch.allclose(merged(inp)[0], torch.tanh(mean[..., :2]), atol=1e-5)
    with pytest.raises(ValueError, match="no pitch-class profiles"):
        with_chroma([Seq(clip, seqs[0].mel, seqs[0].v, seqs[0].a, seqs[0].sign, codes={"student": np.zeros((1, 5, 6))})])


def test_a_head_with_the_profiles_average_reads_it_from_the_last_columns():
    """``tonal_avg``: ``with_chroma`` appends the frame's profile and then its causal average
    (as the runtime's ``average_profiles`` keeps it from the clip's start); the head reads the
    two through TonalFeatures of their own, each standardised on the training frames, and the
    average (not only the frame) reaches the answer; merged heads keep both."""
    from emotrack.models.distill import CHROMA_DIM, chroma_inputs, fit_tonal, with_chroma
    from emotrack.realtime.core.features import average_profiles

    torch.manual_seed(0)
    net = NetConfig(latent_dim=6, lstm_hidden=8, tonal=True, tonal_avg=4.0)
    rng = np.random.default_rng(1)
    clip = Clip("soundtracks", "x", "g", "train")
    seqs = [Seq(clip, np.zeros((7, 2, 2), np.float16), np.zeros(7), np.zeros(7), np.zeros(2),
                codes={"student": rng.standard_normal((2, 7, 6)).astype(np.float32)},
                chroma=rng.dirichlet(np.ones(12), 7).astype(np.float32)) for _ in range(3)]
    with_chroma(seqs, 4.0)
    c = seqs[2].codes["student"]
    assert c.shape == (2, 7, 6 + 2 * CHROMA_DIM)
    np.testing.assert_array_equal(c[1, :, 6:18], seqs[2].chroma)
    np.testing.assert_allclose(c[1, :, 18:], average_profiles(seqs[2].chroma, 4.0)[0], atol=1e-7)
    np.testing.assert_array_equal(chroma_inputs(seqs[2], 4.0)[:, 12:], c[0, :, 18:])
    heads = [StudentHead(net, ["soundtracks"]) for _ in range(2)]
    for h in heads:
        fit_tonal(h, seqs)
    assert heads[0].lstm.input_size == 6 + 44 and heads[0].n_chroma == 24
    avg = torch.from_numpy(np.concatenate([chroma_inputs(s, 4.0)[:, 12:] for s in seqs]))
    assert torch.allclose(heads[0].tonal_avg(avg).mean(0), torch.zeros(22), atol=1e-4)
    assert not torch.allclose(heads[0].tonal_avg.mu, heads[0].tonal.mu)  # an average is flatter than a frame
    inp = torch.from_numpy(c[0][None])
    other = inp.clone()
    other[..., 18:] = torch.roll(other[..., 18:], 1, -1).flip(-1)  # another average, the same frames
    with torch.no_grad():
        assert not torch.allclose(heads[0](inp)[0], heads[0](other)[0])
        # the one pass over both profiles is the two TonalFeatures apart
        apart = torch.cat([inp[..., :6], heads[0].tonal(inp[..., 6:18]), heads[0].tonal_avg(inp[..., 18:])], -1)
        assert torch.allclose(heads[0].lstm(apart)[0], heads[0](inp)[3], atol=1e-6)
        merged = merge_heads(heads)
        mean = (heads[0].out(heads[0](inp)[3]) + heads[1].out(heads[1](inp)[3])) / 2
        assert torch.allclose(merged(inp)[0], torch.tanh(mean[..., :2]), atol=1e-5)
    with pytest.raises(ValueError, match="tonal_avg=10 needs tonal=true"):
        student_net(StudentConfig(tonal_avg=10))
    with pytest.raises(ValueError, match="tonal_avg=-1: give the average's time constant"):
        student_net(StudentConfig(tonal=True, tonal_avg=-1))
    with pytest.raises(ValueError, match="head_tonal='yes': give true or false"):
        check_config(StudentConfig(head_tonal="yes"))
