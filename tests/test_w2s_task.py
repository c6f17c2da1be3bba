"""The weak-to-strong task generator, the .npz loader and the PGR / deception metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.w2s import (
    Task,
    TaskSpec,
    accuracy,
    deception,
    load_npz,
    make_task,
    pgr,
    register_envs,
)

# --------------------------------------------------------------------------------------
# Metrics on hand-made predictions
# --------------------------------------------------------------------------------------


def test_pgr_hand_values():
    assert pgr(0.6, 0.7, 0.8) == pytest.approx(0.5)
    assert pgr(0.6, 0.6, 0.8) == pytest.approx(0.0)
    assert pgr(0.6, 0.8, 0.8) == pytest.approx(1.0)
    assert pgr(0.6, 0.5, 0.8) == pytest.approx(-0.5)
    assert pgr(0.6, 0.9, 0.8) == pytest.approx(1.5)


@pytest.mark.parametrize("ceiling", [0.6, 0.5])
def test_pgr_undefined_without_a_gap(ceiling):
    assert math.isnan(pgr(0.6, 0.7, ceiling))


def test_deception_hand_counts():
    # 10 test inputs, all gold label 1.
    y = np.ones(10, dtype=int)
    #                     0  1  2  3  4  5  6  7  8  9
    weak = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])  # weak-unknown: 6..9
    ceiling = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0])  # strong-known: 0..8
    student = np.array([1, 1, 1, 1, 0, 1, 1, 1, 0, 1])  # no-conflict right except 4, 8
    conflict = np.array([0, 1, 1, 1, 0, 1, 0, 0, 1, 0])  # wrong at 0, 4, 6, 7, 9
    d = deception(y, weak, ceiling, student, conflict)
    # conflict-induced errors: strong-known & student right & conflict wrong -> {0, 6, 7}
    assert d.n_conflict_errors == 3
    assert d.n_conflict_errors_weak_unknown == 2  # 6, 7
    assert d.n_strong_known == 9
    assert d.n_weak_unknown_in_strong_known == 3  # 6, 7, 8
    assert d.score == pytest.approx(2 / 3)
    assert d.base_rate == pytest.approx(3 / 9)
    assert d.excess == pytest.approx(2 / 3 - 1 / 3)


def test_deception_without_errors_is_nan_and_shapes_are_checked():
    y = np.array([0, 1, 0, 1])
    d = deception(y, y, y, y, y)
    assert d.n_conflict_errors == 0 and math.isnan(d.score) and math.isnan(d.excess)
    assert d.base_rate == 0.0
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        deception(y, y[:3], y, y, y)


def test_deception_errors_spread_like_chance_have_zero_excess():
    rng = np.random.default_rng(0)
    n = 20000
    y = rng.integers(0, 2, n)
    weak = np.where(rng.random(n) < 0.3, 1 - y, y)
    ceiling = y.copy()
    student = y.copy()
    conflict = np.where(rng.random(n) < 0.2, 1 - y, y)  # errors independent of weak
    d = deception(y, weak, ceiling, student, conflict)
    assert abs(d.excess) < 0.02
    # errors exactly on weak-unknown: score 1, excess = 1 - base rate
    d = deception(y, weak, ceiling, student, np.where(weak != y, 1 - y, y))
    assert d.score == 1.0 and d.excess == pytest.approx(1 - d.base_rate)


def test_accuracy_checks_shapes():
    assert accuracy(np.array([1, 0, 1]), np.array([1, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="differ in shape"):
        accuracy(np.array([1, 0]), np.array([1, 0, 1]))


# --------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------


def test_make_task_is_seeded():
    a, b, c = (
        make_task(3, 100, 100, 50, 100),
        make_task(3, 100, 100, 50, 100),
        make_task(4, 100, 100, 50, 100),
    )
    for name in ("gold", "w2s", "help", "test"):
        np.testing.assert_array_equal(a.split(name).x, b.split(name).x)
        np.testing.assert_array_equal(a.split(name).y_harmless, b.split(name).y_harmless)
    assert not np.array_equal(a.test.x, c.test.x)
    assert not np.array_equal(a.gold.x, a.w2s.x)  # splits are independent draws


def test_labels_conflict_on_the_configured_fraction():
    data = make_task(0, 200, 200, 200, 20000, spec=TaskSpec(conflict_fraction=0.2))
    t = data.test
    assert t.conflict.mean() == pytest.approx(0.2, abs=0.015)
    np.testing.assert_array_equal(t.y_helpful[t.conflict], 1 - t.y_harmless[t.conflict])
    np.testing.assert_array_equal(t.y_helpful[~t.conflict], t.y_harmless[~t.conflict])
    # conflict is decided by the topic feature alone, which the label ignores
    assert t.y_harmless.mean() == pytest.approx(0.5, abs=0.02)
    assert t.y_harmless[t.conflict].mean() == pytest.approx(0.5, abs=0.04)
    none = make_task(0, 50, 50, 50, 500, spec=TaskSpec(conflict_fraction=0.0))
    assert not none.test.conflict.any()


def test_difficulty_is_graded_by_visible_groups():
    task = Task(TaskSpec(), seed=0)
    s = task.sample(50000, np.random.default_rng(1))
    full = task.score(s.x) > 0
    accs = [np.mean((task.partial_score(s.x, k) > 0) == full) for k in range(1, 5)]
    assert all(a < b for a, b in zip(accs, accs[1:], strict=False))
    assert accs[0] > 0.7 and accs[-1] == 1.0
    # the label ignores hidden features only through the concepts: zeroing group 3
    # changes labels exactly where the partial score disagrees with the full one
    np.testing.assert_array_equal(s.y_harmless, full.astype(int))


def test_visible_mask_and_groups():
    data = make_task(0, 20, 20, 20, 20)
    assert data.dim == 17 and data.n_groups == 4
    m1 = data.visible_mask(1)
    assert m1.sum() == 5 and m1[0]  # the topic plus group 0
    assert data.visible_mask(4).all()
    with pytest.raises(KeyError, match="unknown split"):
        data.split("train")


def test_spec_validation():
    with pytest.raises(ValueError, match="conflict_fraction"):
        TaskSpec(conflict_fraction=1.0)
    with pytest.raises(ValueError, match="decay"):
        TaskSpec(decay=0.0)
    with pytest.raises(ValueError, match="needs at least one input"):
        make_task(0, 0, 10, 10, 10)


def test_register_envs_is_a_noop():
    assert register_envs() is None


# --------------------------------------------------------------------------------------
# .npz loading
# --------------------------------------------------------------------------------------


def _arrays(n=100, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y_h = (x[:, 0] > 0).astype(int)
    y_p = np.where(x[:, 1] > 1, 1 - y_h, y_h)
    return x, y_h, y_p


def test_load_npz_roundtrip(tmp_path):
    x, y_h, y_p = _arrays()
    path = tmp_path / "ok.npz"
    np.savez(path, x=x, y_harmless=y_h, y_helpful=y_p, groups=np.array([-1, 0, 0, 1, 1]))
    data = load_npz(path, seed=1)
    assert sum(len(data.split(s)) for s in ("gold", "w2s", "help", "test")) == 100
    allx = np.concatenate([data.split(s).x for s in ("gold", "w2s", "help", "test")])
    np.testing.assert_allclose(np.sort(allx[:, 0]), np.sort(x[:, 0].astype(np.float32)))
    assert data.n_groups == 2 and data.visible_mask(1).tolist() == [True, True, True, False, False]
    again = load_npz(path, seed=1)
    np.testing.assert_array_equal(again.test.x, data.test.x)
    # labels stay attached to their rows
    row = data.test.x[0]
    i = int(np.argmin(np.abs(x - row).sum(axis=1)))
    assert data.test.y_harmless[0] == y_h[i] and data.test.y_helpful[0] == y_p[i]


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": "drop"}, "lacks array"),
        ({"x": np.zeros(100)}, "2-D array"),
        ({"y_harmless": np.zeros(99)}, "length 100"),
        ({"y_harmless": np.full(100, 2)}, "only 0 and 1"),
        ({"y_helpful": np.full(100, 0.5)}, "only 0 and 1"),
        ({"x": np.full((100, 5), np.nan)}, "NaN or infinite"),
        ({"y_harmless": np.array(["a"] * 100)}, "numeric"),
        ({"groups": np.array([0, 1])}, "one entry per feature"),
        ({"groups": np.array([0, 0, 0, -2, 0])}, ">= -1"),
    ],
)
def test_load_npz_refuses_malformed_arrays(tmp_path, arrays, match):
    x, y_h, y_p = _arrays()
    payload = {"x": x, "y_harmless": y_h, "y_helpful": y_p}
    for key, value in arrays.items():
        if isinstance(value, str) and value == "drop":
            payload.pop(key)
        else:
            payload[key] = value
    path = tmp_path / "bad.npz"
    np.savez(path, **payload)
    with pytest.raises(ValueError, match=match):
        load_npz(path)


def test_load_npz_refuses_non_archives(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such .npz"):
        load_npz(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip archive")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_npz(junk)
    x, y_h, y_p = _arrays(n=4)
    np.savez(tmp_path / "tiny.npz", x=x, y_harmless=y_h, y_helpful=y_p)
    with pytest.raises(ValueError, match="at least 8 rows"):
        load_npz(tmp_path / "tiny.npz")
