"""litellm against loopback servers that speak each reasoning model's wire format
(tests/wire_servers.py): what reaches the server, and where the reasoning comes back.

What these tests pin down is what the client's wiring relies on (see the notes of issue 20):
the answer in ``message.content``, the thinking in ``message.reasoning_content`` (litellm
moves a ``<think>`` block there for hosted_vllm/ and ollama_chat/, and Anthropic's thinking
blocks too, which also stay in ``thinking_blocks``), reasoning tokens in
``usage.completion_tokens_details.reasoning_tokens``.  Whatever the format,
:func:`~re2llm_tui.llm.thinking.split_message` gives the scripted answer and the thinking.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from wire_servers import (
    ANTHROPIC_TEMPERATURE_ERROR,
    OPENAI_MAX_TOKENS_ERROR,
    WireServer,
    default_thinking,
)

from re2llm_tui.llm.litellm_import import import_litellm
from re2llm_tui.llm.thinking import reasoning_tokens_of, split_message, split_reply

ANSWER = "1. Heat (1995)\n2. Casino (1995)\n3. Se7en (1995)"
MESSAGES = [{"role": "user", "content": "Rank these movies."}]


def _complete(srv: WireServer, model: str, **kw):
    litellm = import_litellm()
    return asyncio.run(litellm.acompletion(
        model=model, api_base=srv.base_url, api_key="wire-test", messages=MESSAGES,
        timeout=20, max_retries=0, num_retries=0, **kw))


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _scripted(prompt: str) -> str:
    assert prompt == MESSAGES[0]["content"], "the server sees the user's prompt"
    return ANSWER


# (server kind, litellm model string, extra kwargs, where the reasoning arrives)
CASES = [
    ("openai", "openai/gpt-5-mini", {"max_tokens": 4000, "reasoning_effort": "low"}, None),
    ("deepseek", "deepseek/deepseek-reasoner", {"max_tokens": 4000}, "reasoning_content"),
    ("vllm_think", "hosted_vllm/qwen3-8b", {"max_tokens": 4000, "temperature": 0.0},
     "reasoning_content"),
    ("anthropic", "anthropic/claude-sonnet-4-5", {"max_tokens": 2000, "reasoning_effort": "low"},
     "thinking_blocks"),
    ("ollama", "ollama_chat/qwen3", {"max_tokens": 4000, "reasoning_effort": "low"},
     "reasoning_content"),
    ("ollama", "ollama_chat/qwen3", {"max_tokens": 4000}, "reasoning_content"),
]


@pytest.mark.parametrize("kind,model,kw,field", CASES,
                         ids=[f"{c[0]}-{c[1]}-{len(c[2])}" for c in CASES])
def test_litellm_talks_to_each_wire_format_and_the_answer_splits_off(kind, model, kw, field):
    with WireServer(kind, answer_fn=_scripted) as srv:
        resp = _complete(srv, model, **kw)
        path, sent = srv.requests[-1]
    msg = resp.choices[0].message
    reply = split_message(msg)
    assert reply.answer == ANSWER, f"{kind}: the answer is the scripted one, nothing more"
    assert "Draft Title" not in reply.answer
    if field is None:
        assert reply.reasoning == ""          # OpenAI hides the reasoning: tokens only
        assert reasoning_tokens_of(resp.usage) == 300
    else:
        assert reply.reasoning.strip() == default_thinking("").strip()
        assert getattr(msg, "reasoning_content", None), "litellm's normalised field is set"
        if field == "thinking_blocks":
            assert msg.thinking_blocks[0]["type"] == "thinking"
    # litellm's content alone (no field) holds no thinking either
    assert split_reply(msg.content).answer.strip() == ANSWER
    # what reached the server
    if kind == "openai":
        assert path == "/v1/chat/completions"
        assert sent["reasoning_effort"] == "low" and sent["max_completion_tokens"] == 4000
        assert "max_tokens" not in sent and "temperature" not in sent
    elif kind == "anthropic":
        assert path == "/v1/messages"
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        assert sent["max_tokens"] == 2000
    elif kind == "ollama":
        assert path == "/api/chat" and sent["options"]["num_predict"] == 4000
        assert sent.get("think") is (True if "reasoning_effort" in kw else None)


def test_openai_reasoning_model_refuses_temperature_and_max_tokens_on_the_wire():
    with WireServer("openai") as srv:
        url = srv.base_url + "/chat/completions"
        code, body = _post(url, {"model": "gpt-5-mini", "messages": MESSAGES,
                                 "temperature": 0.0})
        assert code == 400 and body["error"]["type"] == "invalid_request_error"
        assert body["error"]["param"] == "temperature" and body["error"]["code"] == \
            "unsupported_value"
        assert "does not support 0.0 with this model" in body["error"]["message"]
        code, body = _post(url, {"model": "gpt-5-mini", "messages": MESSAGES,
                                 "max_tokens": 512})
        assert code == 400 and body["error"] == OPENAI_MAX_TOKENS_ERROR
        # a chat model takes both
        code, body = _post(url, {"model": "gpt-4o-mini", "messages": MESSAGES,
                                 "temperature": 0.0, "max_tokens": 512})
        assert code == 200 and "completion_tokens_details" not in body["usage"]
        # litellm itself refuses temperature 0 for gpt-5-mini before sending anything
        from litellm.exceptions import UnsupportedParamsError

        n = len(srv.requests)
        with pytest.raises(UnsupportedParamsError, match="temperature"):
            _complete(srv, "openai/gpt-5-mini", temperature=0.0)
        assert len(srv.requests) == n


def test_a_limit_the_reasoning_uses_up_leaves_an_empty_answer():
    with WireServer("openai", reasoning_tokens=300) as srv:
        resp = _complete(srv, "openai/gpt-5-mini", max_tokens=200)
    assert resp.choices[0].finish_reason == "length"
    assert (resp.choices[0].message.content or "") == ""
    assert reasoning_tokens_of(resp.usage) == 300 and resp.usage.completion_tokens == 300


def test_anthropic_refuses_temperature_while_thinking():
    import litellm

    with WireServer("anthropic") as srv:
        with pytest.raises(litellm.BadRequestError, match="temperature` may only be set to 1"):
            _complete(srv, "anthropic/claude-sonnet-4-5", max_tokens=2000, temperature=0.0,
                      reasoning_effort="low")
        code, body = _post(srv.base_url + "/v1/messages", {
            "model": "claude-sonnet-4-5", "messages": MESSAGES, "max_tokens": 2000,
            "temperature": 0.5, "thinking": {"type": "enabled", "budget_tokens": 1024}})
        assert code == 400 and body["error"]["message"] == ANTHROPIC_TEMPERATURE_ERROR
        # without thinking: no thinking block, temperature 0 taken, no reasoning tokens
        resp = _complete(srv, "anthropic/claude-sonnet-4-5", max_tokens=512, temperature=0.0)
    assert split_message(resp.choices[0].message).reasoning == ""
    assert reasoning_tokens_of(resp.usage) == 0


@pytest.mark.parametrize("kind", ["openai", "deepseek", "vllm_think"])
def test_the_raw_body_the_fast_path_reads_splits_to_the_same_answer(kind):
    """The fast transport reads the JSON itself: content + reasoning_content give the same
    answer litellm's message does."""
    with WireServer(kind, answer_fn=_scripted) as srv:
        code, body = _post(srv.base_url + "/chat/completions", {
            "model": "gpt-5-mini" if kind == "openai" else "m", "messages": MESSAGES,
            "max_completion_tokens": 4000})
    assert code == 200
    reply = split_message(body["choices"][0]["message"])
    assert reply.answer == ANSWER
    assert (reply.reasoning != "") == (kind != "openai")
    assert reasoning_tokens_of(body["usage"]) == {"openai": 300, "deepseek": len(default_thinking("").split()),
                                                  "vllm_think": 0}[kind]
