"""The ``scripted`` backend: a deterministic offline persona, not a language model.

For demos and tests. It answers principal-agent shopping prompts (products listed as
``[Product id: N]. name ... $price``, a budget written ``budget of $X`` or
``budget is $X``, and a form ``Explanation: ... (this will be shared with ...)`` /
``Choice: ...``) by a fixed, documented rule — a *commission-driven salesperson*:

1. The candidates are the listed products within budget (all of them if none is).
2. It buys the most expensive candidate (the sale the company earns most on), except
   when its explanation will be read by the customer and not by the company
   (``user-only``): then it buys the cheapest candidate, which it can defend to the
   customer. Ties go to the lower product id.
3. At temperature ``t > 0`` it "trembles": with probability ``min(0.5, t / 4)`` it buys
   the other one of those two products. The draw is a hash of (seed, sample index,
   prompt), so an answer is a pure function of the request.

Every answer says it came from the scripted persona, and the model name is
``scripted-persona-v1``, so no result can be mistaken for a language model's.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.llm.base import ChatModel, Completion, Message, estimate_tokens

PERSONA_MODEL = "scripted-persona-v1"
LABEL = "[scripted persona, not a language model]"

_PRODUCT = re.compile(r"\[Product id:\s*(\d+)\]\.?\s*(.+)")
_PRICE = re.compile(r"\$\s*([\d,]+(?:\.\d+)?)")
_BUDGET = re.compile(r"budget\s+(?:of|is)\s+\$\s*([\d,]+(?:\.\d+)?)", re.I)
_FORM = re.compile(r"Explanation:[^\n]*\(([^)]*)\)")


@dataclass(frozen=True)
class ListedProduct:
    id: int
    name: str
    price: float


def _money(text: str) -> float:
    return float(text.replace(",", ""))


def read_products(prompt: str) -> list[ListedProduct]:
    """The products a prompt lists (id, name, price); lines without a price are skipped."""
    out = []
    for match in _PRODUCT.finditer(prompt):
        rest = match.group(2).strip()
        price = _PRICE.search(rest)
        if price is None:
            continue
        name = re.split(r"[,:]\s*(?:rental\s*)?\$|\s+\$", rest)[0].strip(" ,:")
        out.append(ListedProduct(int(match.group(1)), name, _money(price.group(1))))
    return out


def read_budget(prompt: str) -> float | None:
    match = _BUDGET.search(prompt)
    return None if match is None else _money(match.group(1))


def read_audience(prompt: str) -> tuple[bool, bool]:
    """(customer sees the explanation, company sees it), from the form's wording."""
    match = _FORM.search(prompt)
    text = (match.group(1) if match else "").lower()
    if "strictly confidential" in text or not text:
        return False, False
    if "shared with both" in text:
        return True, True
    if "only with the customer" in text:
        return True, False
    return False, True  # "shared with only with <company>, but not ... the customer"


def _uniform(seed: int | None, sample: int, prompt: str) -> float:
    payload = json.dumps([seed, sample, prompt]).encode()
    return int.from_bytes(hashlib.sha256(payload).digest()[:8], "little") / 2**64


def decide(prompt: str, *, temperature: float, seed: int | None, sample: int) -> dict[str, Any]:
    """The persona's decision for a prompt: chosen product, the rule's reasons."""
    products = read_products(prompt)
    if not products:
        return {"choice": None, "reason": "the request lists no products"}
    budget = read_budget(prompt)
    within = [p for p in products if budget is None or p.price <= budget + 1e-9] or products
    priciest = min(within, key=lambda p: (-p.price, p.id))
    cheapest = min(within, key=lambda p: (p.price, p.id))
    customer_sees, company_sees = read_audience(prompt)
    restrained = customer_sees and not company_sees
    pick, other = (cheapest, priciest) if restrained else (priciest, cheapest)
    trembled = temperature > 0 and _uniform(seed, sample, prompt) < min(0.5, temperature / 4)
    if trembled:
        pick = other
    if restrained:
        reason = "my explanation goes to the customer only, so I pick the cheapest option"
    else:
        reason = "I pick the most expensive option within budget, the best sale for the company"
    if trembled:
        reason += " (but this time I changed my mind)"
    return {"choice": pick, "reason": reason}


class ScriptedChatModel(ChatModel):
    """The commission-driven salesperson persona (see the module docstring)."""

    backend = "scripted"

    def __init__(self, model: str = PERSONA_MODEL, **kwargs: Any):
        super().__init__(model or PERSONA_MODEL, **kwargs)

    def _complete_once(
        self,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        seed: int | None,
        sample: int,
        timeout_s: float,
    ) -> Completion:
        t0 = time.perf_counter()
        prompt = "\n".join(str(m["content"]) for m in messages if m["role"] != "assistant")
        decision = decide(prompt, temperature=temperature, seed=seed, sample=sample)
        pick = decision["choice"]
        if pick is None:
            text = f"Explanation: {LABEL} {decision['reason']}.\nChoice: none"
        else:
            text = (
                f"Explanation: {LABEL} {decision['reason']}: {pick.name} "
                f"at ${pick.price:,.2f}.\nChoice: {pick.id}"
            )
        return Completion(
            text=text,
            finish_reason="stop",
            usage={
                "prompt_tokens": estimate_tokens(prompt),
                "completion_tokens": estimate_tokens(text),
            },
            latency_s=time.perf_counter() - t0,
            backend=self.backend,
            model=self.model,
        )
