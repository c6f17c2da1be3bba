"""An epsilon-greedy agent: it maximises the reward it is shown, nothing else."""

from __future__ import annotations

import numpy as np


class EpsilonGreedy:
    def __init__(self, n_arms: int, epsilon: float, rng: np.random.Generator):
        self.epsilon = epsilon
        self.rng = rng
        self.counts = np.zeros(n_arms)
        self.values = np.zeros(n_arms)  # running mean of the observed reward per arm

    def act(self) -> int:
        untried = np.flatnonzero(self.counts == 0)
        if untried.size:
            return int(untried[0])
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(len(self.counts)))
        return int(np.argmax(self.values))

    def update(self, action: int, reward: float) -> None:
        self.counts[action] += 1
        self.values[action] += (reward - self.values[action]) / self.counts[action]
