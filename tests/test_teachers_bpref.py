"""B-Pref teachers on hand-made reward sequences, one test per preset."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import softmax

from sandbox.preferences.teachers import PRESETS, Teacher, TeacherSpec


def test_presets_match_bpref() -> None:
    assert PRESETS["oracle"] == TeacherSpec()
    assert PRESETS["noisy"].beta == 1.0
    assert PRESETS["mistake"].eps_mistake == 0.1
    assert PRESETS["skip"].skip == 0.1
    assert PRESETS["myopic"].gamma == 0.9
    assert PRESETS["equal"].equal == 0.1
    with pytest.raises(ValueError, match="unknown teacher 'sloppy'; valid: oracle"):
        Teacher.preset("sloppy")


def test_oracle_prefers_larger_return_and_ties_half() -> None:
    r1 = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    r2 = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    out = Teacher.preset("oracle", 0).label(r1, r2)
    np.testing.assert_array_equal(out.labels, [1.0, 0.0, 0.5])
    assert out.kept.all() and out.n_asked == 3


def test_noisy_teacher_is_softmax_of_beta_returns() -> None:
    n = 40_000
    r1 = np.tile([[0.5, 0.5]], (n, 1))  # R1 = 1
    r2 = np.tile([[0.25, 0.25]], (n, 1))  # R2 = 0.5
    out = Teacher.preset("noisy", 1).label(r1, r2)
    p_second = softmax(1.0 * np.array([1.0, 0.5]))[1]
    assert set(np.unique(out.labels)) == {0.0, 1.0}
    assert np.mean(out.labels == 0.0) == pytest.approx(p_second, abs=0.01)
    # a larger beta is closer to rational
    sharp = Teacher(TeacherSpec(beta=20.0), np.random.default_rng(2)).label(r1, r2)
    assert np.mean(sharp.labels == 1.0) == pytest.approx(
        softmax(20 * np.array([1.0, 0.5]))[0], abs=0.01
    )


def test_myopic_weights_late_steps_more() -> None:
    # undiscounted: R1 = 1.0 > R2 = 0.95; weighted by 0.9^(H-1-t): 0.81 < 0.95
    r1 = np.array([[1.0, 0.0, 0.0]])
    r2 = np.array([[0.0, 0.0, 0.95]])
    assert Teacher.preset("oracle").label(r1, r2).labels[0] == 1.0
    assert Teacher.preset("myopic").label(r1, r2).labels[0] == 0.0
    # exactly at the weights: 0.9^2 * 1 vs 0.9 * 0.9 is a tie
    tie = Teacher.preset("myopic").label(np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.9, 0.0]]))
    assert tie.labels[0] == 0.5


def test_mistake_flips_with_probability_eps() -> None:
    n = 40_000
    rng = np.random.default_rng(0)
    r1 = rng.uniform(0, 1, (n, 5))
    r2 = rng.uniform(0, 1, (n, 5))
    truth = Teacher.preset("oracle").label(r1, r2).labels
    noisy = Teacher.preset("mistake", 3).label(r1, r2).labels
    assert np.mean(truth != noisy) == pytest.approx(0.1, abs=0.006)
    always = Teacher(TeacherSpec(eps_mistake=1.0)).label(r1, r2).labels
    np.testing.assert_array_equal(always, 1.0 - truth)


def test_skip_drops_queries_where_both_returns_are_low() -> None:
    r1 = np.array([[10.0], [0.2], [5.0]])
    r2 = np.array([[6.0], [0.1], [0.0]])
    teacher = Teacher.preset("skip")
    out = teacher.label(r1, r2)
    mean = (10 + 0.2 + 5 + 6 + 0.1 + 0) / 6
    assert teacher.mean_segment_return == pytest.approx(mean)
    np.testing.assert_array_equal(out.kept, [True, False, True])
    assert out.labels[0] == 1.0 and out.labels[2] == 1.0 and math.isnan(out.labels[1])
    assert out.n_asked == 3  # skipped queries still count toward the budget
    # the threshold follows the running mean over every segment seen so far
    out2 = teacher.label(np.array([[0.3]]), np.array([[0.0]]))
    mean2 = (21.3 + 0.3) / 8
    assert teacher.mean_segment_return == pytest.approx(mean2)
    assert out2.kept[0] == (0.3 > 0.1 * mean2)


def test_equal_labels_close_pairs_half() -> None:
    r1 = np.array([[5.0, 5.0], [4.0, 4.0], [1.0, 1.0]])
    r2 = np.array([[5.0, 4.0], [1.0, 1.0], [1.0, 0.9]])
    out = Teacher.preset("equal").label(r1, r2)
    # mean segment return m = (10 + 8 + 2 + 9 + 2 + 1.9) / 6 = 5.483; threshold 0.548:
    # |R1 - R2| = 1.0, 6.0, 0.1
    np.testing.assert_array_equal(out.labels, [1.0, 1.0, 0.5])
    assert out.kept.all()


def test_labels_are_reproducible_under_a_seed() -> None:
    rng = np.random.default_rng(5)
    r1, r2 = rng.normal(size=(100, 4)), rng.normal(size=(100, 4))
    a = Teacher.preset("noisy", 11).label(r1, r2).labels
    b = Teacher.preset("noisy", 11).label(r1, r2).labels
    np.testing.assert_array_equal(a, b)


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="gamma"):
        TeacherSpec(gamma=0.0)
    with pytest.raises(ValueError, match="beta"):
        TeacherSpec(beta=0.0)
    with pytest.raises(ValueError, match=r"\(N, H\)"):
        Teacher().label(np.zeros((2, 3)), np.zeros((2, 4)))
