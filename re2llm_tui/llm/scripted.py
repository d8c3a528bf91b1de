"""A scripted litellm provider: a TEST DOUBLE, for tests only.

Replies come from a Python callable ``reply(messages) -> str``.  Register it under a
provider name and use that name in the model string::

    from re2llm_tui.llm.scripted import register_scripted
    calls = register_scripted("scripted", lambda messages: "1. Some Title")
    client = LLMClient(db, model="scripted/any")

The product never selects this provider by itself: it is reachable only through a model
string that names the provider a test registered.  ``reply`` may raise an exception to
simulate a provider error (e.g. ``litellm.RateLimitError``), and may return a value
computed from the conversation (multi-turn chats see every message).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable


class ScriptLog:
    """What the scripted provider saw: every call's messages and optional params."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict] = []

    def __len__(self) -> int:
        return len(self.calls)

    def add(self, model, messages, params) -> None:
        with self.lock:
            self.calls.append({"model": model, "messages": [dict(m) for m in messages],
                               "params": dict(params)})


def make_provider(reply: Callable[[list], str], log: ScriptLog, latency: float = 0.0,
                  cost_per_call: float = 0.0):
    """A ``litellm.CustomLLM`` instance answering with ``reply(messages)``."""
    from litellm import CustomLLM, Usage

    def _answer(model, messages, kwargs):
        params = kwargs.get("optional_params") or {}
        log.add(model, messages, params)
        text = reply(list(messages))
        response = kwargs["model_response"]
        response.choices[0].message.content = text
        response.choices[0].finish_reason = "stop"
        response.model = model
        pt = sum(len(str(m.get("content", "")).split()) for m in messages)
        ct = len(str(text).split())
        setattr(response, "usage", Usage(prompt_tokens=pt, completion_tokens=ct,
                                         total_tokens=pt + ct))
        if cost_per_call:
            response._hidden_params["response_cost"] = cost_per_call
        return response

    class ScriptedLLM(CustomLLM):
        def completion(self, model, messages, *args, **kwargs):
            if latency:
                time.sleep(latency)
            return _answer(model, messages, kwargs)

        async def acompletion(self, model, messages, *args, **kwargs):
            if latency:
                await asyncio.sleep(latency)
            return _answer(model, messages, kwargs)

    return ScriptedLLM()


def register_scripted(provider: str, reply: Callable[[list], str], *, latency: float = 0.0,
                      cost_per_call: float = 0.0) -> ScriptLog:
    """Register (or replace) ``provider`` in litellm; returns the log of calls it receives."""
    from re2llm_tui.llm.litellm_import import import_litellm

    litellm = import_litellm()
    log = ScriptLog()
    handler = make_provider(reply, log, latency, cost_per_call)
    entries = [e for e in (litellm.custom_provider_map or []) if e.get("provider") != provider]
    entries.append({"provider": provider, "custom_handler": handler})
    litellm.custom_provider_map = entries
    return log
