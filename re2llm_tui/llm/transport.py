"""How a request reaches a model: litellm's ``acompletion``, litellm's ``Router`` over several
``--api-base`` servers, or the local provider's ranking inside the candidate set.

A transport sends one request and returns an :class:`LLMResult` (text, usage, cost, the
server that answered) or raises the provider's exception; retries, the cache and the budget
are the client's business.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from re2llm_tui.llm.errors import EmptyReply
from re2llm_tui.llm.litellm_import import import_litellm
from re2llm_tui.llm.models import is_local_model
from re2llm_tui.llm.results import LLMResult, RankResult

#: the Router's name for the one model it spreads over the servers
_ROUTED = "re2llm-target"


class Transport:
    """Sends requests for a model to its provider, to ``api_bases`` (several: through a
    least-busy ``Router``), or to the in-process local model."""

    def __init__(self, api_bases: Sequence[str] = (), timeout: float = 60.0) -> None:
        self.api_bases = tuple(api_bases)
        self.timeout = timeout
        self._router = None

    def api_key(self) -> str | None:
        if self.api_bases:
            # self-hosted OpenAI-compatible servers usually need no key; pass the env's if any
            for var in ("OPENAI_API_KEY", "HOSTED_VLLM_API_KEY"):
                if os.environ.get(var):
                    return os.environ[var]
            return "no-key"
        return None

    def _get_router(self, model: str):
        if self._router is None:
            litellm = import_litellm()
            key = self.api_key()
            model_list = [{"model_name": _ROUTED,
                           "litellm_params": {"model": model, "api_base": b,
                                              "api_key": key, "timeout": self.timeout,
                                              "max_retries": 0}}
                          for b in self.api_bases]
            self._router = litellm.Router(model_list=model_list, num_retries=0,
                                          routing_strategy="least-busy",
                                          timeout=self.timeout, set_verbose=False)
        return self._router

    async def chat(self, model: str, messages, dec: dict) -> LLMResult:
        """One chat completion with the decoding parameters ``dec``."""
        litellm = import_litellm()
        local = is_local_model(model)
        if local:
            from re2llm_tui.llm import local as local_provider
            local_provider.register()
        kwargs = dict(messages=messages, **dec)
        if len(self.api_bases) > 1:
            router = self._get_router(model)
            resp = await asyncio.wait_for(
                router.acompletion(model=_ROUTED, **kwargs), self.timeout + 5)
        else:
            extra = {}
            if self.api_bases:
                extra = {"api_base": self.api_bases[0], "api_key": self.api_key()}
            coro = litellm.acompletion(model=model, timeout=self.timeout, max_retries=0,
                                       num_retries=0, **extra, **kwargs)
            # the local model runs in a worker thread that cannot be interrupted
            resp = await (coro if local else asyncio.wait_for(coro, self.timeout + 5))
        return result_from(resp, litellm, model, self.api_bases)

    async def local_rank(self, model: str, prompt: str, candidates: Sequence[str], k: int,
                         method: str, dec: dict) -> RankResult:
        """The local provider ranks inside the candidate set (through litellm, like chat)."""
        from re2llm_tui.llm import local as local_provider

        litellm = import_litellm()
        local_provider.register()
        resp = await litellm.acompletion(
            model=model, messages=[{"role": "user", "content": prompt}],
            rank_candidates=list(candidates), rank_k=k, rank_method=method, num_retries=0,
            **dec)
        base = result_from(resp, litellm, model, self.api_bases)
        ranking = (getattr(resp, "_hidden_params", {}) or {}).get("re2llm_ranking")
        if ranking is None:
            raise ValueError("the local provider returned no ranking")
        return RankResult(text=base.text, ranking=[int(i) for i in ranking], hallucinations=[],
                          prompt_tokens=base.prompt_tokens,
                          completion_tokens=base.completion_tokens, model=model,
                          cached_tokens=base.cached_tokens)

    def close(self) -> None:
        """Drop the Router (bound to the loop it ran on); a later call builds a new one."""
        self._router = None


def result_from(resp, litellm, model: str, api_bases: Sequence[str] = ()) -> LLMResult:
    """A litellm response as an :class:`LLMResult`: text, usage, cost (0 for the local
    model), the server that answered.  Raises :class:`EmptyReply` for a reply without text."""
    try:
        text = resp.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        text = None
    if text is None or not str(text).strip():
        raise EmptyReply("the reply has no text")
    usage = getattr(resp, "usage", None)
    pt = int(getattr(usage, "prompt_tokens", 0) or 0)
    ct = int(getattr(usage, "completion_tokens", 0) or 0)
    details = getattr(usage, "prompt_tokens_details", None)
    cached_tokens = int((details.get("cached_tokens") if isinstance(details, dict) else
                         getattr(details, "cached_tokens", 0)) or 0)
    hidden = getattr(resp, "_hidden_params", {}) or {}
    cost = 0.0
    if not is_local_model(model):
        cost = hidden.get("response_cost")
        if cost is None and "response_cost" not in hidden:
            # litellm priced it already when the key is there (None: not in its tables)
            try:
                cost = litellm.completion_cost(completion_response=resp)
            except Exception:  # noqa: BLE001 - model not in the cost tables
                cost = 0.0
    api_base = hidden.get("api_base") or (api_bases[0] if api_bases else None)
    return LLMResult(text=text, cost=float(cost or 0.0), prompt_tokens=pt,
                     completion_tokens=ct, model=model, api_base=api_base,
                     cached_tokens=cached_tokens)
