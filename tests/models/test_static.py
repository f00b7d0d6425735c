"""The triplet network for whole-song emotion: mining by emotion distance, and an
embedding that generalises to songs it was not trained on."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_mining_picks_positives_closer_than_negatives():
    from emotrack.models.static import TnnConfig, mine_triplets

    rng = np.random.default_rng(0)
    y = rng.uniform(-1, 1, (200, 2))
    cfg = TnnConfig(pos_dist=0.2, neg_dist=0.5, triplets_per_anchor=4)
    t = mine_triplets(y, cfg, rng)
    assert len(t) > 100 and t.shape[1] == 3
    dp = np.linalg.norm(y[t[:, 0]] - y[t[:, 1]], axis=1)
    dn = np.linalg.norm(y[t[:, 0]] - y[t[:, 2]], axis=1)
    assert (dp < 0.2).all() and (dn > 0.5).all() and (t[:, 0] != t[:, 1]).all()
    assert (dp < dn).all()
    # quadrant centres: the same quadrant is positive, any other negative
    q = np.array([[0.5, 0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5], [0.5, -0.5]])
    t = mine_triplets(q, cfg, rng)
    assert set(map(tuple, t[:, :2])) <= {(0, 1), (1, 0), (4, 5), (5, 4)}
    assert (np.abs(q[t[:, 0]] - q[t[:, 2]]).sum(1) > 0).all()
    # nobody in between: a song at 0.3 from every other is neither
    assert not len(mine_triplets(np.array([[0, 0], [0.3, 0], [0.6, 0.0]]) * [1, 1], TnnConfig(neg_dist=0.7), rng))


def test_embedding_shrinks_triplet_loss_on_held_out_songs():
    """Features where emotion hides in a few nonlinear directions among many noise ones:
    after training, triplets of songs the network never saw are much better separated."""
    from emotrack.models.static import TnnConfig, mine_triplets, tnn_net, train_tnn, triplet_loss

    rng = np.random.default_rng(1)
    n, f = 400, 100
    y = rng.uniform(-0.9, 0.9, (n, 2))
    x = rng.normal(0, 1, (n, f)).astype(np.float32)
    x[:, :6] += np.column_stack([np.sin(2 * y[:, 0]), y[:, 0] ** 3, np.tanh(3 * y[:, 1]), y[:, 1], y[:, 0] * y[:, 1], y[:, 0]]) * 3
    train, test = np.arange(300), np.arange(300, 400)
    cfg = TnnConfig(dim=16, hidden=128, epochs=25)
    held = mine_triplets(y[test], cfg, np.random.default_rng(2))
    before = triplet_loss(tnn_net(f, cfg), x[test], held, cfg.margin)
    net = train_tnn(x[train], y[train], cfg)
    after = triplet_loss(net, x[test], held, cfg.margin)
    assert len(held) > 100 and after < 0.6 * before, (before, after)
    e = net(torch.from_numpy(x[:5])).detach().numpy()
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)


def test_no_triplets_is_an_error():
    from emotrack.models.static import TnnConfig, train_tnn

    with pytest.raises(ValueError, match="no triplets"):
        train_tnn(np.zeros((3, 4), np.float32), np.zeros((3, 2)), TnnConfig(epochs=1))
