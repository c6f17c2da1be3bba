"""An LLM agent for text environments: observation -> chat messages -> completion text.

The agent is thin on purpose: everything about talking to a model (backends, retries,
timeouts, caching, concurrency, token accounting) is :mod:`sandbox.llm`'s. The agent
decides what the model is shown (the observation as one user message, optionally after
a system prompt), how many samples are drawn per observation, and at what temperature.

    agent = LLMAgent(make_chat_model("scripted"), temperature=0.2, seed=0)
    obs, info = env.reset(seed=0)
    completions = agent.sample(obs, n=30, concurrency=8)
    env.step(completions[0].text)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sandbox.llm import ChatModel, ChatRequest, Completion


@dataclass
class LLMAgent:
    """Turns observations into requests to a :class:`~sandbox.llm.ChatModel`.

    ``seed`` is passed with every request (the replay backend draws recordings under it;
    the openai backend derives a per-sample seed from it); ``sample`` indices number the
    independent draws for one observation.
    """

    model: ChatModel
    temperature: float = 0.2
    max_tokens: int = 512
    seed: int | None = None
    system_prompt: str | None = None

    def messages(self, observation: str) -> list[dict[str, str]]:
        """The chat messages for one observation (the paper sends the brief as one user turn)."""
        out = []
        if self.system_prompt:
            out.append({"role": "system", "content": self.system_prompt})
        out.append({"role": "user", "content": str(observation)})
        return out

    def request(self, observation: str, sample: int = 0) -> ChatRequest:
        return ChatRequest(
            messages=tuple(self.messages(observation)),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
            sample=sample,
        )

    def act(self, observation: str, sample: int = 0) -> Completion:
        """One completion; a failure comes back as a failed Completion (``error`` set)."""
        return self.model.complete_safe(self.request(observation, sample))

    def act_many(
        self,
        observations: Sequence[str],
        samples: Sequence[int] | None = None,
        concurrency: int = 8,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Completion]:
        """Completions for many (observation, sample index) pairs, ``concurrency`` in flight."""
        if samples is None:
            samples = range(len(observations))
        if len(samples) != len(observations):
            raise ValueError(f"{len(observations)} observations but {len(samples)} sample indices")
        requests = [self.request(o, s) for o, s in zip(observations, samples, strict=True)]
        return self.model.complete_many(requests, concurrency=concurrency, progress=progress)

    def sample(self, observation: str, n: int, concurrency: int = 8) -> list[Completion]:
        """``n`` independent completions for one observation (samples 0..n-1)."""
        return self.act_many([observation] * n, list(range(n)), concurrency=concurrency)
