"""Delivery gridworld hot paths: regret labelling of segment pairs, and solving an MDP.

1. Labelling 1,000,000 segment pairs (length 3) with the noiseless regret model on the 10x10
   delivery board, vectorized (numpy fancy indexing), against a straightforward per-pair
   Python loop (``label_pairs_loop``, timed on a slice and scaled per pair). Both give the
   same labels (checked).
2. Value iteration on a 15x10 random MDP: the vectorized sweep over the (S, A) arrays
   against a per-state, per-action Python loop doing the same number of sweeps; plus the
   exact policy-iteration ``solve`` the study uses.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import best_of, write_result
from envs.delivery import delivery_board, random_mdp
from sandbox.preferences.segment_models import label_pairs, label_pairs_loop, sample_segment_pairs


def bench_labelling(n_pairs: int, n_loop: int) -> dict[str, float]:
    mdp = delivery_board()
    sol = mdp.solve(0.999)
    rewards = mdp.reward()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, n_pairs, 3, rng)
    sample_s = time.perf_counter() - t0
    labels = label_pairs("regret", pairs, rewards, 0.0, rng, sol.V, 0.999)
    vec_s = best_of(lambda: label_pairs("regret", pairs, rewards, 0.0, rng, sol.V, 0.999), 3)
    sub = pairs[:n_loop]
    loop_labels = label_pairs_loop("regret", sub, rewards, sol.V, 0.999)
    if not np.array_equal(loop_labels, labels[:n_loop]):
        raise AssertionError("the vectorized and the loop labels differ")
    loop_s = best_of(lambda: label_pairs_loop("regret", sub, rewards, sol.V, 0.999), 1)
    vec_per_pair = vec_s / n_pairs
    loop_per_pair = loop_s / n_loop
    return {
        "label_pairs": n_pairs,
        "label_loop_pairs_timed": n_loop,
        "label_vectorized_s": round(vec_s, 4),
        "label_vectorized_pairs_per_s": round(1.0 / vec_per_pair),
        "label_loop_pairs_per_s": round(1.0 / loop_per_pair),
        "label_speedup": round(loop_per_pair / vec_per_pair, 1),
        "sample_pairs_s": round(sample_s, 4),
    }


def value_iteration_loop(mdp, gamma: float, sweeps: int) -> np.ndarray:
    """Textbook value iteration, one state and one action at a time (the reference)."""
    next_state = mdp.next_state.tolist()
    reward = mdp.reward().tolist()
    v = [0.0] * mdp.n_states
    for _ in range(sweeps):
        new = [0.0] * mdp.n_states
        for s in range(mdp.n_states):
            best = -float("inf")
            for a in range(mdp.n_actions):
                q = reward[s][a] + gamma * v[next_state[s][a]]
                if q > best:
                    best = q
            new[s] = best
        v = new
    return np.array(v)


def bench_solve(repeats: int) -> dict[str, float]:
    mdp = random_mdp(np.random.SeedSequence([7, 0]), height=15, width=10)
    gamma = 0.999
    vi = mdp.value_iteration(gamma, tol=1e-8)
    sweeps = vi.iterations
    vec_s = best_of(lambda: mdp.value_iteration(gamma, tol=1e-8), repeats)
    loop_v = value_iteration_loop(mdp, gamma, sweeps)
    if not np.allclose(loop_v, vi.V, atol=1e-6):
        raise AssertionError("the loop and the vectorized value iteration differ")
    loop_s = best_of(lambda: value_iteration_loop(mdp, gamma, sweeps), 1)
    pi_s = best_of(lambda: mdp.solve(gamma), repeats)
    if not np.allclose(mdp.solve(gamma).V, vi.V, atol=1e-6):
        raise AssertionError("policy iteration and value iteration differ")
    return {
        "solve_mdp": f"{mdp.shape[0]}x{mdp.shape[1]}",
        "vi_sweeps": sweeps,
        "vi_vectorized_ms": round(vec_s * 1e3, 3),
        "vi_loop_ms": round(loop_s * 1e3, 3),
        "vi_speedup": round(loop_s / vec_s, 1),
        "policy_iteration_solve_ms": round(pi_s * 1e3, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke check)")
    args = parser.parse_args(argv)
    n_pairs, n_loop, repeats = (50_000, 5_000, 3) if args.quick else (1_000_000, 50_000, 5)
    payload = {**bench_labelling(n_pairs, n_loop), **bench_solve(repeats), "quick": args.quick}
    write_result("delivery", payload)


if __name__ == "__main__":
    main()
