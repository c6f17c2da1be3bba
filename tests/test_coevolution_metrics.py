"""Metric functions, history generator and CSV loader of envs.coevolution, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.coevolution import (
    N_DIMS,
    VALUE_DIMENSIONS,
    coevolve_score,
    cosine,
    follow_score,
    generate_history,
    load_history_csv,
    predict_score,
    progress_along,
    progress_ratio,
    save_history_csv,
    value_diversity,
)

R2 = 1 / math.sqrt(2)


def test_nineteen_named_dimensions():
    assert N_DIMS == 19 and len(set(VALUE_DIMENSIONS)) == 19
    assert VALUE_DIMENSIONS[:2] == ("cause_death", "inflict_pain")
    assert VALUE_DIMENSIONS[10:15] == ("care", "fairness", "loyalty", "authority", "purity")
    assert VALUE_DIMENSIONS[-4:] == ("traditional", "modern", "post_modern", "integrated")


def test_cosine_rowwise_and_zero_vector():
    np.testing.assert_allclose(
        cosine([[1, 0], [1, 1], [0, 0]], [[2, 0], [1, 0], [1, 1]]), [1.0, R2, 0.0]
    )
    assert cosine([3, 4], [-3, -4]) == pytest.approx(-1.0)


def test_follow_and_predict_by_hand():
    ai = np.array([[1.0, 0.0], [0.0, 1.0]])
    history = np.array([[1.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    # follow: cos(ai_0, h_0) = 1, cos(ai_1, h_1) = 1/sqrt2
    assert follow_score(ai, history) == pytest.approx((1 + R2) / 2)
    # predict k=1: cos(ai_0, h_1) = 1/sqrt2, cos(ai_1, h_2) = 1/sqrt2
    assert predict_score(ai, history, 1) == pytest.approx(R2)
    # k=2: only t=0 has a future h_2: cos([1,0],[5,5])
    assert predict_score(ai, history, 2) == pytest.approx(R2)
    assert math.isnan(predict_score(ai, history, 3))
    with pytest.raises(ValueError, match="lookahead must be >= 0"):
        predict_score(ai, history, -1)
    with pytest.raises(ValueError, match="dimension mismatch"):
        follow_score(np.ones((2, 3)), history)


def test_coevolve_takes_the_max_over_the_future_only():
    humans = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    history = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    # i=0: max(0, 1, 1/sqrt2) = 1; i=1: max(1, 1/sqrt2) = 1; i=2: only j=2 -> 1/sqrt2
    # (history_0 matches H_2 exactly, but it is in H_2's past and must not count)
    assert coevolve_score(humans, history) == pytest.approx((2 + R2) / 3)
    # a population frozen at the start scores lower than one that tracks history
    hist = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert coevolve_score(hist, hist) == pytest.approx(1.0)
    frozen = np.repeat(hist[:1], 3, axis=0)
    assert coevolve_score(frozen, hist) == pytest.approx((1 + R2 + 0) / 3)


def test_progress_and_ratio():
    history = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    humans = np.array([[0.0, 5.0], [0.5, 5.0], [1.0, 7.0]])  # orthogonal moves don't count
    np.testing.assert_allclose(progress_along(humans, history), [0.0, 0.25, 0.5])
    baseline = np.array([[0.0, 0.0], [1.0, 0.0], [1.6, 0.0]])
    assert progress_ratio(humans, baseline, history) == pytest.approx(0.5 / 0.8)
    with pytest.raises(ValueError, match="no net progress"):
        progress_along(humans, np.zeros((3, 2)))


def test_value_diversity_exact_and_subsampled():
    # 3-4-5 triangle: pairwise distances 3, 4, 5
    assert value_diversity(np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])) == pytest.approx(4.0)
    assert value_diversity(np.zeros((1, 3))) == 0.0
    # for N(0, I_d), E||x - y|| = 2 Gamma((d+1)/2) / Gamma(d/2) (chi with d dof, scale sqrt2)
    d = 19
    x = np.random.default_rng(0).standard_normal((20000, d))
    expected = 2 * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
    est = value_diversity(x, max_members=1500, rng=1)
    assert est == pytest.approx(expected, rel=0.02)
    assert value_diversity(x, 1500, rng=1) == est  # deterministic under its rng


def test_history_generator_seeded_drift_with_momentum():
    a = generate_history(30, rng=3)
    assert a.shape == (31, N_DIMS)
    np.testing.assert_array_equal(a, generate_history(30, rng=3))
    assert not np.allclose(a, generate_history(30, rng=4))
    # noise off: vel_t = speed u (1 - m^t), so the step lengths are speed (1 - m^t)
    h = generate_history(10, rng=0, speed=0.5, momentum=0.6, noise=0.0)
    steps = np.linalg.norm(np.diff(h, axis=0), axis=1)
    np.testing.assert_allclose(steps, 0.5 * (1 - 0.6 ** np.arange(1, 11)))
    # and they all point the same way (a straight line from history_0)
    d = np.diff(h, axis=0)
    np.testing.assert_allclose(cosine(d[:-1], d[1:]), 1.0)
    with pytest.raises(ValueError, match="momentum must lie in"):
        generate_history(5, momentum=1.0)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        generate_history(0)


def test_csv_roundtrip_and_headerless(tmp_path):
    h = generate_history(4, rng=0)
    path = save_history_csv(h, tmp_path / "h.csv")
    np.testing.assert_array_equal(load_history_csv(path), h)
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(",".join(str(x) for x in row) for row in h) + "\n")
    np.testing.assert_allclose(load_history_csv(plain), h)


def test_csv_with_wrong_number_of_dimensions_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="line 1 has 3 values, expected 19"):
        load_history_csv(bad)
    header = tmp_path / "header.csv"
    header.write_text("t," + ",".join(VALUE_DIMENSIONS[:18]) + "\n0," + ",".join(["0"] * 18) + "\n")
    with pytest.raises(ValueError, match="has 18 value columns, expected 19"):
        load_history_csv(header)
    names = list(VALUE_DIMENSIONS)
    names[3] = "honour"
    wrong = tmp_path / "names.csv"
    wrong.write_text(
        ",".join(names) + "\n" + ",".join(["0"] * 19) + "\n" + ",".join(["1"] * 19) + "\n"
    )
    with pytest.raises(ValueError, match="unknown: honour"):
        load_history_csv(wrong)
    short = tmp_path / "short.csv"
    short.write_text(",".join(["0"] * 19) + "\n")
    with pytest.raises(ValueError, match="at least 2 timesteps"):
        load_history_csv(short)
    text = tmp_path / "text.csv"
    text.write_text(",".join(["0"] * 19) + "\n" + ",".join(["x"] * 19) + "\n")
    with pytest.raises(ValueError, match="line 2"):
        load_history_csv(text)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_history_csv(tmp_path / "missing.csv")
