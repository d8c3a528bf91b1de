"""What a call returns (:class:`LLMResult`, :class:`RankResult`) and a client's totals
(:class:`Stats`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class LLMResult:
    """One call's outcome.  ``error`` is ``None`` on success."""

    text: str = ""
    cached: bool = False
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    call_id: int | None = None
    error: str | None = None
    model: str = ""
    api_base: str | None = None
    attempts: int = 0
    cached_tokens: int = 0      # prompt tokens served from the engine's/provider's prefix cache
    #: the server's usage was missing or implausible: tokens and cost were counted from the
    #: request and its output limit (:mod:`~re2llm_tui.llm.replies`)
    usage_estimated: bool = False
    #: the model's thinking, kept apart from ``text`` (the answer; :mod:`~re2llm_tui.llm.thinking`)
    reasoning: str = ""
    #: reasoning tokens the provider reported (part of ``completion_tokens``)
    reasoning_tokens: int = 0
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RankResult(LLMResult):
    """A ranking call: ``ranking`` holds distinct candidate indices, best first."""

    ranking: list[int] = field(default_factory=list)
    hallucinations: list[str] = field(default_factory=list)


@dataclass
class Stats:
    """Totals over the calls of one client (cache hits are free)."""

    calls: int = 0          # requests actually sent (finished, ok or failed)
    cache_hits: int = 0
    failed: int = 0
    retries: int = 0
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0  # summed over sent requests
    usage_estimated: int = 0  # calls whose usage was counted from the request
    reasoning_tokens: int = 0  # of completion_tokens, spent thinking (as reported)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def count_sent(self, res: LLMResult) -> None:
        """Add one request that was sent (ok or failed)."""
        self.calls += 1
        self.failed += 0 if res.ok else 1
        self.retries += max(0, res.attempts - 1)
        self.cost += res.cost
        self.prompt_tokens += res.prompt_tokens
        self.completion_tokens += res.completion_tokens
        self.latency_s += res.latency_s
        self.usage_estimated += 1 if res.usage_estimated else 0
        self.reasoning_tokens += res.reasoning_tokens

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["tokens"] = self.tokens
        return d
