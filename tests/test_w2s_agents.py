"""The capability ladder, batched training and the training modes (CPU, small sizes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.w2s import (
    LADDER,
    LADDER_ORDER,
    BatchedMLP,
    Ladder,
    Member,
    TrainSettings,
    aux_conf_coefficient,
    capability_gap,
    midpoint,
    run_experiment,
    rung,
    train_members,
)
from envs.w2s import accuracy, make_task

FAST = TrainSettings(steps=150, batch_size=128)
TINY = TrainSettings(steps=30, batch_size=64)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return make_task(0, n_gold=1500, n_train=1500, n_help=1000, n_test=2000)


@pytest.fixture(scope="module")
def small_data():
    return make_task(1, n_gold=300, n_train=300, n_help=200, n_test=300)


def test_ladder_names_and_gaps():
    assert LADDER_ORDER == ("tiny", "small", "medium", "large", "xlarge")
    assert capability_gap("tiny", "xlarge") == 4
    assert midpoint("tiny", "xlarge") == "medium"
    assert midpoint("tiny", "medium") == "small"
    assert midpoint("tiny", "small") is None
    with pytest.raises(ValueError, match="unknown ladder rung 'huge'; valid: tiny"):
        rung("huge")
    # capability never decreases up the ladder
    rungs = [LADDER[n] for n in LADDER_ORDER]
    for lo, hi in zip(rungs, rungs[1:], strict=False):
        assert hi.visible_groups >= lo.visible_groups and hi.noise <= lo.noise
        assert hi.width * hi.depth >= lo.width * lo.depth


def test_capability_ladder_is_ordered(data):
    """Ceiling accuracy (gold training) rises with the rung on the default task."""
    ladder = Ladder(data, seed=0)
    accs = []
    for name in LADDER_ORDER:
        r = rung(name)
        m = train_members(
            [Member(ladder.view(name, "gold"), data.gold.y_harmless.astype(np.float32), seed=1)],
            r.width,
            r.depth,
            TrainSettings(steps=200, batch_size=128),
            device="cpu",
        )
        p = m.predict_proba(ladder.view(name, "test"))[0]
        accs.append(accuracy((p > 0.5).astype(int), data.test.y_harmless))
    assert all(a < b for a, b in zip(accs, accs[1:], strict=False)), accs
    assert accs[0] > 0.65 and accs[-1] > 0.85


def test_batched_training_equals_sequential(data):
    """Members trained together are the models each would be trained alone."""
    ladder = Ladder(data, seed=0)
    x = ladder.view("small", "gold")
    y = data.gold.y_harmless.astype(np.float32)
    xh = ladder.view("small", "help")
    members = [
        Member(x, y, seed=11),
        Member(x[:700], y[:700] * 0.8 + 0.1, seed=12, aux_conf=True),
        Member(x, y, seed=13, x2=xh, target2=data.help.y_helpful.astype(np.float32), weight2=0.5),
    ]
    settings = TrainSettings(steps=60, batch_size=64)
    together = train_members(members, 32, 1, settings, device="cpu")
    test = ladder.view("small", "test")
    p_all = together.predict_proba(test)
    for i, m in enumerate(members):
        alone = train_members([m], 32, 1, settings, device="cpu")
        np.testing.assert_allclose(alone.predict_proba(test)[0], p_all[i], atol=2e-5)
    # the members really differ (different data, seeds and objectives)
    assert np.abs(p_all[0] - p_all[1]).max() > 0.05


def test_batched_mlp_shapes_and_init():
    model = BatchedMLP(5, 8, 2, seeds=[1, 2, 1], device="cpu")
    assert model(torch.zeros(3, 4, 5)).shape == (3, 4)
    w = model.weight[0].detach()
    assert torch.equal(w[0], w[2]) and not torch.equal(w[0], w[1])
    assert float(w.abs().max()) <= 1 / np.sqrt(5)
    assert model.predict_proba(np.zeros((7, 5), np.float32)).shape == (3, 7)
    with pytest.raises(ValueError, match="at least one member"):
        BatchedMLP(5, 8, 2, seeds=[], device="cpu")


def test_aux_conf_ramp():
    assert aux_conf_coefficient(0, 1000) == 0.0
    assert aux_conf_coefficient(50, 1000) == pytest.approx(0.25)
    assert aux_conf_coefficient(100, 1000) == pytest.approx(0.5)
    assert aux_conf_coefficient(900, 1000) == pytest.approx(0.5)


def test_harden_matches_the_weak_label_prior():
    from agents.w2s import _harden

    logits = torch.tensor([[0.3, -1.0, 2.0, 0.1], [5.0, 4.0, 3.0, 2.0]])
    weak = torch.tensor([[0.9, 0.2, 0.8, 0.4], [0.1, 0.2, 0.3, 0.7]])
    # member 0: half the weak labels positive -> the top two logits; member 1: a quarter
    assert _harden(logits, weak).tolist() == [[1, 0, 1, 0], [1, 0, 0, 0]]


def test_aux_conf_does_not_collapse_the_student(small_data):
    data = small_data
    r = run_experiment(
        data, "tiny", "small", conflict="none", aux_conf=True,
        settings=TrainSettings(steps=60, batch_size=64), seed=0, device="cpu",
    )  # fmt: skip
    pred = r.proba["student"] > 0.5
    assert 0.2 < pred.mean() < 0.8


def test_member_validation():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="mismatch"):
        Member(x, np.zeros(5, np.float32), seed=0)
    with pytest.raises(ValueError, match="needs x2 and target2"):
        Member(x, np.zeros(4, np.float32), seed=0, weight2=1.0)
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        Member(x, np.full(4, 1.5, np.float32), seed=0)
    with pytest.raises(ValueError, match="secondary data"):
        Member(x, np.zeros(4, np.float32), seed=0, x2=x, target2=np.zeros(3), weight2=1.0)
    with pytest.raises(ValueError, match="no members"):
        train_members([], 4, 1, device="cpu")


def test_run_experiment_is_deterministic_under_a_seed(small_data):
    data = small_data
    kw = dict(conflict="explicit", intermediate="small", settings=TINY, seed=5, device="cpu")
    a = run_experiment(data, "tiny", "medium", **kw)
    b = run_experiment(data, "tiny", "medium", **kw)
    assert set(a.proba) == {
        "weak",
        "ceiling",
        "student",
        "conflict",
        "intermediate",
        "boot_student",
        "boot_conflict",
    }
    for k in a.proba:
        np.testing.assert_array_equal(a.proba[k], b.proba[k])
    c = run_experiment(data, "tiny", "medium", **{**kw, "seed": 6})
    assert not np.array_equal(a.proba["student"], c.proba["student"])


def test_explicit_conflict_raises_harm_errors_on_conflicting_inputs(data):
    r = run_experiment(
        data, "tiny", "large", conflict="explicit", settings=FAST, seed=0, device="cpu"
    )
    y, c = data.test.y_harmless, data.test.conflict
    pred = {k: (v > 0.5).astype(int) for k, v in r.proba.items()}
    err = {k: 1 - accuracy(pred[k][c], y[c]) for k in ("student", "conflict")}
    err_off = {k: 1 - accuracy(pred[k][~c], y[~c]) for k in ("student", "conflict")}
    assert err["conflict"] > err["student"] + 0.08, err
    assert abs(err_off["conflict"] - err_off["student"]) < 0.04, err_off
    # and the conflict student is more helpful where the objectives disagree
    yh = data.test.y_helpful
    assert accuracy(pred["conflict"][c], yh[c]) > accuracy(pred["student"][c], yh[c]) + 0.08


def test_no_conflict_student_matches_across_conflict_settings(small_data):
    """The no-conflict student does not depend on the conflict mode (same seed, data)."""
    data = small_data
    a = run_experiment(data, "tiny", "small", conflict="none", settings=TINY, seed=2, device="cpu")
    b = run_experiment(
        data, "tiny", "small", conflict="implicit", settings=TINY, seed=2, device="cpu"
    )
    assert "conflict" not in a.proba
    np.testing.assert_allclose(a.proba["student"], b.proba["student"], atol=2e-5)


def test_run_experiment_argument_errors(data):
    with pytest.raises(ValueError, match="must be above weak"):
        run_experiment(data, "large", "small", device="cpu")
    with pytest.raises(ValueError, match="strictly between"):
        run_experiment(data, "tiny", "medium", intermediate="large", device="cpu")
    with pytest.raises(ValueError, match="unknown conflict 'both'"):
        run_experiment(data, "tiny", "medium", conflict="both", device="cpu")
