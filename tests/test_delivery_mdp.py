"""The delivery gridworld: structure, exact solver, generator, and the Gymnasium view."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from envs.delivery import (
    COIN_PROPORTIONS,
    GOAL,
    GOAL_WEIGHTS,
    HEIGHTS,
    HOUSE,
    MUD_WEIGHTS,
    ROADBLOCK_WEIGHTS,
    SHEEP,
    SHEEP_WEIGHTS,
    WIDTHS,
    DeliveryEnv,
    DeliveryMDP,
    delivery_board,
    random_mdp,
)

UP, RIGHT, DOWN, LEFT = range(4)


@pytest.fixture
def tiny() -> DeliveryMDP:
    # 0 1 2      goal at 2, sheep at 4; default weights: blank step -1, goal step +49,
    # 3 4 5      sheep step -51
    # 6 7 8
    return DeliveryMDP.from_layout("..G\n.S.\n...")


def test_hand_computed_values_on_3x3(tiny: DeliveryMDP) -> None:
    sol = tiny.solve(gamma=0.9)
    expected_v = {
        0: -1 + 0.9 * 49,  # 43.1
        1: 49.0,
        2: 0.0,
        3: -1 + 0.9 * 43.1,  # 37.79
        4: 0.0,
        5: 49.0,
        6: -1 + 0.9 * 37.79,  # 33.011
        7: -1 + 0.9 * 43.1,
        8: -1 + 0.9 * 49,
    }
    for s, v in expected_v.items():
        assert sol.V[s] == pytest.approx(v, abs=1e-10), s
    assert sol.Q[0, DOWN] == pytest.approx(-1 + 0.9 * 37.79)
    assert sol.Q[0, UP] == pytest.approx(-1 + 0.9 * 43.1)  # bump: stays, still pays gas
    assert sol.Q[3, RIGHT] == pytest.approx(-51.0)  # into the sheep, then absorbed
    assert sol.Q[1, RIGHT] == pytest.approx(49.0)
    # state 6: up and right tie exactly
    assert set(np.flatnonzero(sol.optimal_actions()[6])) == {UP, RIGHT}
    assert sol.greedy_policy()[6].tolist() == [0.5, 0.5, 0.0, 0.0]


def test_structure_features_and_terminals(tiny: DeliveryMDP) -> None:
    assert tiny.next_state[0, UP] == 0 and tiny.next_state[0, RIGHT] == 1
    assert tiny.next_state[1, RIGHT] == 2
    assert tiny.terminal.tolist() == [False, False, True, False, True, False, False, False, False]
    assert tiny.start_states.tolist() == [0, 1, 3, 5, 6, 7, 8]
    assert tiny.features[1, RIGHT].tolist() == [1, 1, 0, 0, 0, 0]  # gas + goal
    assert tiny.features[0, UP].tolist() == [1, 0, 0, 0, 0, 0]  # bump: gas only
    # terminal states are absorbing with zero features
    assert np.all(tiny.next_state[2] == 2) and np.all(tiny.features[2] == 0)
    np.testing.assert_allclose(tiny.reward(), tiny.features @ tiny.weights)


def test_mud_coin_roadblock_and_house_rewards() -> None:
    mdp = DeliveryMDP.from_layout("CRMH.")
    r = mdp.reward()
    assert r[1, LEFT] == 0.0  # coin step: -1 gas + 1 coin
    assert r[0, RIGHT] == -2.0  # roadblock step
    assert r[1, RIGHT] == -2.0  # mud step replaces gas by mud
    assert mdp.features[1, RIGHT].tolist() == [0, 0, 0, 0, 0, 1]
    assert mdp.next_state[2, RIGHT] == 2 and r[2, RIGHT] == -1.0  # house blocks, costs the step
    assert HOUSE not in mdp.grid.ravel()[mdp.start_states]


def test_solve_matches_value_iteration_and_policy_evaluation() -> None:
    for seed in range(6):
        mdp = random_mdp(seed)
        sol = mdp.solve(0.99)
        vi = mdp.value_iteration(0.99, tol=1e-9)
        np.testing.assert_allclose(sol.V, vi.V, atol=1e-7)
        # the greedy policy's exact evaluation is V*
        np.testing.assert_allclose(mdp.evaluate(sol.greedy_policy(), 0.99), sol.V, atol=1e-8)
        # successor features of a deterministic optimal policy give V* for the true weights
        pi = sol.Q.argmax(axis=1)
        np.testing.assert_allclose(mdp.successor_features(pi, 0.99) @ mdp.weights, sol.V, atol=1e-8)
        assert np.all(sol.advantage <= 1e-9)


def test_uniform_policy_value_is_below_optimal() -> None:
    mdp = delivery_board()
    sol = mdp.solve()
    v_rand = mdp.evaluate(mdp.uniform_policy())
    assert np.all(v_rand <= sol.V + 1e-9)
    assert v_rand[mdp.start_states].mean() < sol.V[mdp.start_states].mean() - 10


def test_random_mdp_follows_the_generator_and_is_deterministic() -> None:
    for seed in range(20):
        mdp = random_mdp(seed)
        h, w = mdp.shape
        assert h in HEIGHTS and w in WIDTHS
        assert (mdp.grid == GOAL).sum() == 1
        assert mdp.weights[0] == -1 and mdp.weights[3] == 1
        assert mdp.weights[1] in GOAL_WEIGHTS and mdp.weights[2] in SHEEP_WEIGHTS
        assert mdp.weights[4] in ROADBLOCK_WEIGHTS and mdp.weights[5] in MUD_WEIGHTS
        assert (mdp.grid == SHEEP).sum() <= round(0.3 * (h * w - 1))
        again = random_mdp(seed)
        assert np.array_equal(mdp.grid, again.grid) and np.array_equal(mdp.weights, again.weights)
    assert max(COIN_PROPORTIONS) == 0.2


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="no start state"):
        DeliveryMDP.from_layout("GS")
    with pytest.raises(ValueError, match="unknown cell"):
        DeliveryMDP.from_layout("..X")
    with pytest.raises(ValueError, match="weights must have shape"):
        DeliveryMDP.from_layout("..G", weights=[1, 2])
    with pytest.raises(ValueError, match="gamma"):
        DeliveryMDP.from_layout("..G").solve(gamma=1.0)


def test_gym_env_is_check_env_clean_and_follows_the_mdp() -> None:
    from gymnasium.utils.env_checker import check_env

    import envs  # noqa: F401  (registers the ids)

    env = gym.make("sandbox/Delivery-v0")
    check_env(env.unwrapped)
    assert env.unwrapped.mdp.name == "delivery-board"
    random_env = gym.make("sandbox/Delivery-v0", mdp_seed=4)
    assert np.array_equal(random_env.unwrapped.mdp.grid, random_mdp(4).grid)
    check_env(random_env.unwrapped)
    mdp = DeliveryMDP.from_layout("..G\n.S.\n...")
    env = DeliveryEnv(mdp)
    obs, info = env.reset(seed=0, options={"state": 0})
    assert obs == 0 and info["features"].shape == (6,)
    obs, r, term, trunc, info = env.step(RIGHT)
    assert (obs, r, term) == (1, -1.0, False)
    obs, r, term, trunc, info = env.step(RIGHT)
    assert (obs, r, term) == (2, 49.0, True)
    assert info["features"].tolist() == [1, 1, 0, 0, 0, 0]


def test_sb3_agent_runs_on_the_env() -> None:
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = DeliveryEnv(DeliveryMDP.from_layout("..G\n.S.\n..."), max_steps=20)
    sb3_check(env)
    model = DQN("MlpPolicy", env, learning_starts=10, buffer_size=200, seed=0, device="cpu")
    model.learn(total_timesteps=50)
    action, _ = model.predict(0, deterministic=True)
    assert env.action_space.contains(int(action))
