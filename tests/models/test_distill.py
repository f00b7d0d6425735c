"""The student's stage-2 pieces that need no data: merging an ensemble of heads into the one
LSTM the runtime knows, and what a saved stage-1 encoder is keyed on."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import torch
from emotrack.models.distill import StudentConfig, StudentHead, merge_heads, stage1_key, student_net

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

    cfg, net = StudentConfig(), student_net()
    same = [key(replace(cfg, head_ema=0.99, head_ensemble=3, lambda_pseudo=2.0), net),
            key(cfg, replace(net, lstm_hidden=256))]
    assert all(stage1_key(k) == stage1_key(key(cfg, net)) for k in same)
    different = [key(replace(cfg, lambda_frame=0.2), net), key(cfg, replace(net, latent_dim=32))]
    assert all(stage1_key(k) != stage1_key(key(cfg, net)) for k in different)
