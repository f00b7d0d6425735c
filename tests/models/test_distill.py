"""The student's pieces that need no data: merging an ensemble of heads into the one LSTM the
runtime knows, what a saved stage-1 encoder is keyed on, stage 1's map to the pseudo-labels,
the causal fill of the pseudo-label teacher's inputs and ``train --set``."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from emotrack.models.accurate import hold_last
from emotrack.models.distill import (
    FrameStudent,
    StudentConfig,
    StudentHead,
    eval_frames,
    merge_heads,
    stage1_key,
    student_net,
)
from emotrack.models.train_cli import with_settings
from emotrack.realtime.core.config import FEATURES

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
            key(cfg, replace(net, lstm_hidden=256)), key(replace(cfg, pseudo_source="accurate"), net)]
    assert all(stage1_key(k) == stage1_key(key(cfg, net)) for k in same)
    different = [key(replace(cfg, lambda_frame=0.2), net), key(cfg, replace(net, latent_dim=32)),
                 key(replace(cfg, lambda_frame_va=5.0), net)]
    assert stage1_key(key(replace(cfg, lambda_frame_va=5.0), net)) != stage1_key(
        key(replace(cfg, lambda_frame_va=5.0, pseudo_source="accurate"), net))  # then the pseudo-labels count
    assert all(stage1_key(k) != stage1_key(key(cfg, net)) for k in different)


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
