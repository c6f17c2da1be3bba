"""A rational-choice shopping agent: the economic baseline for principal-agent tasks.

The agent weighs the customer's and the company's utility of each product and pays a
reputational cost when its explanation reveals a betrayal to someone who will read it:

    U(p) = alpha * u_customer(p) + (1 - alpha) * u_company(p)
           - kappa           * P(customer reads) * [p is not the customer's first choice]
           - kappa_principal * P(company reads)  * [p is not the company's product]

``P(x reads)`` is 1 when the condition shows x the explanation and ``leak`` otherwise.
Products over budget are never bought. The choice is Boltzmann-rational over products
(softmax of ``U / temperature``; ``temperature = 0`` is the argmax, ties split evenly),
so the override rate is a smooth function of the parameters. With the defaults
(``kappa_principal = 0``) information asymmetry moves behaviour one way: the agent
overrides the customer more when the customer will not see why.

The agent reads the scenario from the environment's ``info`` (products with
``customer_utility`` / ``company_utility`` and ``price``, ``budget``,
``customer_first``, ``company_favourite``, ``customer_sees``, ``principal_sees``) and
answers in the task's form, so its answers go through the same parser as a model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import softmax


@dataclass(frozen=True)
class EconomicAgent:
    """Utility-maximising shopper with a reputational cost (see the module docstring)."""

    alpha: float = 0.5
    kappa: float = 0.5
    kappa_principal: float = 0.0
    leak: float = 0.0
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.leak <= 1.0:
            raise ValueError(f"leak must be in [0, 1], got {self.leak}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")

    def utilities(self, info: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(product ids, utility of each); over-budget products get ``-inf``."""
        products = sorted(info["products"], key=lambda p: p["id"])
        ids = np.array([p["id"] for p in products])
        cu = np.array([p["customer_utility"] for p in products], dtype=np.float64)
        co = np.array([p["company_utility"] for p in products], dtype=np.float64)
        p_customer = 1.0 if info["customer_sees"] else self.leak
        p_company = 1.0 if info["principal_sees"] else self.leak
        override = (ids != info["customer_first"]).astype(np.float64)
        disloyal = (ids != info["company_favourite"]).astype(np.float64)
        u = (
            self.alpha * cu
            + (1.0 - self.alpha) * co
            - self.kappa * p_customer * override
            - self.kappa_principal * p_company * disloyal
        )
        price = np.array([p["price"] for p in products], dtype=np.float64)
        affordable = price <= float(info["budget"]) + 1e-9
        if affordable.any():
            u = np.where(affordable, u, -np.inf)
        return ids, u

    def probabilities(self, info: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(product ids, probability of buying each)."""
        ids, u = self.utilities(info)
        if self.temperature == 0:
            best = u == u.max()
            return ids, best / best.sum()
        finite = np.isfinite(u)
        p = np.zeros_like(u)
        p[finite] = softmax(u[finite] / self.temperature)
        return ids, p

    def choose(self, info: Mapping[str, Any], rng: np.random.Generator) -> int:
        ids, p = self.probabilities(info)
        return int(ids[rng.choice(len(ids), p=p)])

    def act(self, info: Mapping[str, Any], rng: np.random.Generator) -> str:
        """The filled-in form for one trial."""
        ids, u = self.utilities(info)
        choice = self.choose(info, rng)
        name = next(p["name"] for p in info["products"] if p["id"] == choice)
        value = float(u[list(ids).index(choice)])
        return (
            f"Explanation: [economic agent, not a language model] I buy {name}: weighing "
            f"the customer's and the company's utility and who reads this explanation, "
            f"its utility is {value:.3f} (best {float(np.max(u)):.3f}).\n"
            f"Choice: {choice}"
        )
