"""Population.step(): pull toward targets, DeGroot averaging, bounded confidence, noise."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from sandbox.population import Population


def test_zero_rates_do_not_move_values():
    x = np.array([[0.0, 1.0], [2.0, -1.0], [5.0, 5.0]])
    pop = Population(x.copy(), seed=0)
    pop.step()
    pop.step(pull_targets=[(np.ones(2), 0.0)], social="degroot", social_rate=0.0)
    pop.step(social="bounded_confidence", social_rate=0.0, confidence=1.0)
    np.testing.assert_array_equal(pop.values, x)
    assert pop.steps == 3


def test_pull_toward_targets():
    pop = Population(np.array([[0.0], [4.0]]))
    pop.step(pull_targets=[(np.array([2.0]), 0.25)])
    np.testing.assert_allclose(pop.values, [[0.5], [3.5]])
    # two pulls add up; a per-annotator (N, d) target is allowed
    pop.step(pull_targets=[(np.array([[1.0], [1.0]]), 0.5), (np.array([0.0]), 0.5)])
    np.testing.assert_allclose(
        pop.values, [[0.5 + 0.5 * 0.5 - 0.5 * 0.5], [3.5 - 0.5 * 2.5 - 0.5 * 3.5]]
    )
    # full pull lands exactly on the target
    pop.step(pull_targets=[(np.array([7.0]), 1.0)])
    np.testing.assert_allclose(pop.values, [[7.0], [7.0]])


def test_degroot_all_to_all_hand_computed():
    pop = Population(np.array([[0.0], [3.0], [6.0]]))
    pop.step(social="degroot", social_rate=0.5)
    # means of the others: 4.5, 3, 1.5
    np.testing.assert_allclose(pop.values, [[2.25], [3.0], [3.75]])
    # the population mean is conserved by all-to-all averaging and values contract
    for _ in range(60):
        pop.step(social="degroot", social_rate=0.5)
    np.testing.assert_allclose(pop.values, 3.0, atol=1e-9)


def test_degroot_on_a_network_hand_computed():
    g = nx.path_graph(3)  # 0 - 1 - 2
    pop = Population(np.array([[0.0, 0.0], [2.0, 2.0], [4.0, 0.0]]), network=g)
    pop.step(social="degroot", social_rate=1.0)
    np.testing.assert_allclose(pop.values, [[2.0, 2.0], [2.0, 0.0], [2.0, 2.0]])


def test_degroot_weighted_network_and_isolated_node():
    g = nx.Graph()
    g.add_nodes_from(range(3))
    g.add_edge(0, 1, weight=3.0)
    pop = Population(np.array([[0.0], [4.0], [10.0]]), network=g)
    pop.step(social="degroot", social_rate=0.5)
    np.testing.assert_allclose(pop.values, [[2.0], [2.0], [10.0]])  # node 2 has no neighbours


def test_network_nodes_must_be_indices():
    with pytest.raises(ValueError, match="network nodes must be exactly"):
        Population(np.zeros((3, 1)), network=nx.path_graph(4))


@pytest.mark.parametrize("d", [1, 2])
def test_bounded_confidence_all_to_all(d):
    base = np.array([0.0, 1.0, 10.0, 10.5])
    x = np.zeros((4, d))
    x[:, 0] = base
    pop = Population(x)
    pop.step(social="bounded_confidence", social_rate=1.0, confidence=2.0)
    # clusters {0, 1} and {10, 10.5} do not see each other
    expected = np.zeros((4, d))
    expected[:, 0] = [1.0, 0.0, 10.5, 10.0]
    np.testing.assert_allclose(pop.values, expected)


def test_bounded_confidence_isolated_annotator_stays():
    pop = Population(np.array([[0.0], [0.5], [5.0]]))
    pop.step(social="bounded_confidence", social_rate=0.5, confidence=1.0)
    np.testing.assert_allclose(pop.values, [[0.25], [0.25], [5.0]])


def test_bounded_confidence_chunked_matches_bruteforce():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    pop = Population(x.copy(), create_agents=False)
    pop.step(social="bounded_confidence", social_rate=0.3, confidence=1.2)
    dist = np.linalg.norm(x[:, None] - x[None], axis=2)
    close = (dist <= 1.2) & ~np.eye(300, dtype=bool)
    cnt = close.sum(1)
    mean = np.where(cnt[:, None] > 0, close @ x / np.maximum(cnt, 1)[:, None], x)
    np.testing.assert_allclose(pop.values, x + 0.3 * (mean - x), rtol=1e-12, atol=1e-12)


def test_bounded_confidence_on_network_and_infinite_confidence_is_degroot():
    g = nx.cycle_graph(4)
    x = np.array([[0.0], [0.5], [3.0], [3.2]])
    pop = Population(x.copy(), network=g)
    pop.step(social="bounded_confidence", social_rate=1.0, confidence=1.0)
    # neighbours: 0:{1,3} 1:{0,2} 2:{1,3} 3:{2,0}; within 1.0 only: 0:{1} 1:{0} 2:{3} 3:{2}
    np.testing.assert_allclose(pop.values, [[0.5], [0.0], [3.2], [3.0]])

    a = Population(x.copy(), network=g)
    b = Population(x.copy(), network=g)
    a.step(social="bounded_confidence", social_rate=0.4, confidence=float("inf"))
    b.step(social="degroot", social_rate=0.4)
    np.testing.assert_allclose(a.values, b.values)


def test_noise_is_gaussian_and_seeded():
    pop = Population(np.zeros((20_000, 2)), seed=3, create_agents=False)
    pop.step(noise=0.5)
    assert abs(pop.values.std() - 0.5) < 0.01
    again = Population(np.zeros((20_000, 2)), seed=3, create_agents=False)
    again.step(noise=0.5)
    np.testing.assert_array_equal(pop.values, again.values)


def test_step_argument_validation():
    pop = Population(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="unknown social mode 'voter'"):
        pop.step(social="voter")
    with pytest.raises(ValueError, match=r"social_rate must lie in \[0, 1\]"):
        pop.step(social="degroot", social_rate=1.5)
    with pytest.raises(ValueError, match=r"pull_targets\[0\] rate"):
        pop.step(pull_targets=[(np.zeros(2), -0.1)])
    with pytest.raises(ValueError, match=r"pull_targets\[0\] target must have shape"):
        pop.step(pull_targets=[(np.zeros(3), 0.1)])
    with pytest.raises(ValueError, match="noise"):
        pop.step(noise=-1.0)


def test_a_mesa_network_space_is_accepted():
    import mesa

    g = nx.path_graph(3)
    pop = Population(np.array([[0.0], [2.0], [4.0]]), network=mesa.space.NetworkGrid(g))
    pop.step(social="degroot", social_rate=1.0)
    np.testing.assert_allclose(pop.values, [[2.0], [2.0], [2.0]])
