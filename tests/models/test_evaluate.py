"""The paired bootstrap the experiments report differences of Pearson r with."""

from __future__ import annotations

import numpy as np
from emotrack.models.evaluate import paired_bootstrap_r, pearson


def test_paired_bootstrap_r_puts_a_real_difference_outside_zero_and_none_inside():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    good, bad = y + 0.5 * rng.normal(size=200), y + 2.0 * rng.normal(size=200)
    up = paired_bootstrap_r(y, bad, good, np.random.default_rng(1))
    assert abs(up["difference"] - (pearson(good, y) - pearson(bad, y))) < 1e-12
    lo, hi = up["95% interval"]
    assert 0.0 < lo <= up["difference"] <= hi  # the better prediction is better beyond resampling noise
    down = paired_bootstrap_r(y, good, bad, np.random.default_rng(1))
    np.testing.assert_allclose(down["95% interval"], [-hi, -lo], atol=1e-12)  # same resamples, the sign flipped
    other = y + 0.5 * rng.normal(size=200)  # as good as ``good``: the interval straddles zero
    same = paired_bootstrap_r(y, good, other, np.random.default_rng(1))
    assert same["95% interval"][0] < 0.0 < same["95% interval"][1]
