"""The batched ensemble reward model and query selection (sandbox.rewards)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sandbox.rewards import (
    EnsembleRewardModel,
    query_scores,
    select_queries,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sequential_member(model: EnsembleRewardModel, member: int, x: torch.Tensor) -> torch.Tensor:
    """The same member computed with ordinary per-member layers (an independent path)."""
    h = x
    for i, layer in enumerate(model.layers):
        lin = torch.nn.Linear(layer.weight.shape[1], layer.weight.shape[2])
        with torch.no_grad():
            lin.weight.copy_(layer.weight[member].T)
            lin.bias.copy_(layer.bias[member, 0])
        h = lin(h)
        h = torch.tanh(h) if i == len(model.layers) - 1 else torch.nn.functional.leaky_relu(h)
    return h.squeeze(-1)


@pytest.mark.parametrize("batched", [True, False])
def test_batched_members_equal_member_by_member(batched: bool) -> None:
    model = EnsembleRewardModel(
        7, n_members=3, hidden_sizes=(16, 16, 16), device="cpu", seed=0, batched=batched
    )
    x = torch.randn(11, 5, 7)
    out = model(x)
    assert out.shape == (3, 11, 5)
    for e in range(3):
        torch.testing.assert_close(out[e], _sequential_member(model, e, x), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out[0], out[1])  # members are initialised independently
    assert out.abs().max() < 1  # tanh output
    # predict is the ensemble mean, the same in any chunking
    flat = x.reshape(-1, 7).numpy()
    np.testing.assert_allclose(
        model.predict(flat), out.mean(0).reshape(-1).detach().numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(model.predict(flat, batch_size=4), model.predict(flat), rtol=1e-5)
    with pytest.raises(ValueError, match="expected inputs with 7 features"):
        model(torch.zeros(2, 6))


def test_seed_makes_the_model_reproducible() -> None:
    a = EnsembleRewardModel(4, hidden_sizes=(8,), device="cpu", seed=3)
    b = EnsembleRewardModel(4, hidden_sizes=(8,), device="cpu", seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_pair_loss_is_sum_of_member_bradley_terry_losses() -> None:
    model = EnsembleRewardModel(3, hidden_sizes=(8, 8), device="cpu", seed=1)
    s1, s2 = torch.randn(6, 4, 3), torch.randn(6, 4, 3)
    labels = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 1.0])
    loss, logits, _ = model.pair_loss(s1, s2, labels)
    r1, r2 = model(s1).sum(-1), model(s2).sum(-1)
    p = torch.sigmoid(r1 - r2)
    manual = -(labels * torch.log(p) + (1 - labels) * torch.log(1 - p)).mean(dim=1).sum()
    torch.testing.assert_close(loss, manual, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, r1 - r2)


def test_training_recovers_a_hidden_reward() -> None:
    rng = np.random.default_rng(0)
    w = np.array([1.0, -2.0, 0.5])
    s1, s2 = rng.normal(size=(400, 5, 3)), rng.normal(size=(400, 5, 3))
    labels = ((s1 @ w).sum(1) > (s2 @ w).sum(1)).astype(np.float64)
    model = EnsembleRewardModel(3, hidden_sizes=(32, 32), lr=3e-3, device="cpu", seed=0)
    first = model.train_epoch(s1, s2, labels, rng=rng)
    for _ in range(20):
        acc = model.train_epoch(s1, s2, labels, rng=rng)
    assert acc > 0.9 and acc > first + 0.1
    t1, t2 = rng.normal(size=(300, 5, 3)), rng.normal(size=(300, 5, 3))
    test_labels = ((t1 @ w).sum(1) > (t2 @ w).sum(1)).astype(np.float64)
    assert model.accuracy(t1, t2, test_labels) > 0.85


def _constructed_ensemble() -> EnsembleRewardModel:
    """Members r_e(x) = tanh(c_e * leaky_relu(x)) with c = (0.5, 1, 2)."""
    model = EnsembleRewardModel(1, n_members=3, hidden_sizes=(1,), device="cpu", seed=0)
    with torch.no_grad():
        model.layers[0].weight.fill_(1.0)
        model.layers[0].bias.zero_()
        model.layers[1].weight.copy_(torch.tensor([0.5, 1.0, 2.0]).reshape(3, 1, 1))
        model.layers[1].bias.zero_()
    return model


def test_query_selection_picks_most_uncertain_pairs() -> None:
    model = _constructed_ensemble()
    # pairs of one-step segments: identical (all members indifferent), far apart (members
    # disagree on how sure to be), closer, very close (small disagreement)
    x1 = np.array([0.1, 1.0, 0.3, 0.05]).reshape(4, 1, 1)
    x2 = np.array([0.1, 0.0, 0.0, 0.0]).reshape(4, 1, 1)
    probs = model.preference_probabilities(x1, x2)
    c = np.array([0.5, 1.0, 2.0])[:, None]
    expected = 1 / (1 + np.exp(-(np.tanh(c * x1[:, 0, 0]) - np.tanh(c * x2[:, 0, 0]))))
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    rng = np.random.default_rng(0)
    assert select_queries(probs, 1, "entropy", rng).tolist() == [0]  # p = 0.5 everywhere
    std = expected.std(0)
    assert std[0] == 0 and std[1] > std[2] > std[3] > 0
    assert select_queries(probs, 2, "disagreement", rng).tolist() == [1, 2]
    uniform = select_queries(probs, 2, "uniform", np.random.default_rng(1))
    assert len(set(uniform.tolist())) == 2


def test_query_scores_by_hand_and_errors() -> None:
    probs = np.array([[0.5, 0.9, 0.2], [0.5, 0.1, 0.2]])
    np.testing.assert_allclose(query_scores(probs, "disagreement"), [0.0, 0.4, 0.0])
    h = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p))  # noqa: E731
    np.testing.assert_allclose(query_scores(probs, "entropy"), [np.log(2), h(0.9), h(0.2)])
    with pytest.raises(ValueError, match="unknown query selection 'random'; valid: uniform"):
        select_queries(probs, 1, "random", np.random.default_rng())
    with pytest.raises(ValueError, match="cannot select 4 queries from 3"):
        select_queries(probs, 4, "entropy", np.random.default_rng())
    idx = select_queries(None, 3, "uniform", np.random.default_rng(0), n_candidates=30)
    assert idx.shape == (3,) and len(set(idx.tolist())) == 3
