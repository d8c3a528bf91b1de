"""Loopback servers that speak each reasoning model's wire format (test doubles, 127.0.0.1).

One :class:`WireServer` per test, ``kind`` chooses the format:

* ``openai``: ``POST .../chat/completions`` as OpenAI serves gpt-5 / o-series: a model in
  ``reasoning_models`` refuses ``temperature`` != 1 and ``max_tokens`` with OpenAI's exact
  400 bodies (``invalid_request_error``), and reports
  ``usage.completion_tokens_details.reasoning_tokens`` (``reasoning_tokens``, default 300);
  a ``max_completion_tokens`` that the reasoning alone uses up gives ``finish_reason
  "length"`` and an empty ``content``, as OpenAI does;
* ``deepseek``: the same path, the thinking in ``message.reasoning_content`` (DeepSeek's API,
  vLLM with a reasoning parser);
* ``vllm_think``: the same path, the thinking as a leading ``<think>...</think>`` in the
  content (Qwen3 / R1 on vLLM or llama.cpp without a reasoning parser);
* ``anthropic``: ``POST .../v1/messages``: ``thinking`` + ``text`` content blocks when the
  request enables thinking, Anthropic's usage fields (``input_tokens``, ``output_tokens``,
  cache fields), and its 400 bodies for a temperature other than 1 while thinking and for
  ``max_tokens`` not above ``thinking.budget_tokens``;
* ``ollama``: ``POST /api/chat`` (``ollama_chat/``): ``message.thinking`` when the request
  says ``"think": true``, none with ``false``, and -- with ``think`` unset -- the thinking
  inline as ``<think>`` in the content (how thinking models came back before the field);
  ``prompt_eval_count`` / ``eval_count`` as usage.

Replies are scripted: ``answer_fn(prompt) -> str`` gives the final answer for the last user
message, ``thinking_fn(prompt) -> str`` the thinking (default: a numbered draft and an
imperative line, the text a parser must never read).  Every request is kept in
``server.requests`` as ``(path, body)`` so tests can check what reached the server.

    with WireServer("anthropic", answer_fn=lambda p: "1. Heat") as srv:
        srv.base_url      # "http://127.0.0.1:PORT" (anthropic, ollama) or ".../v1"
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

KINDS = ("openai", "deepseek", "vllm_think", "anthropic", "ollama")

#: OpenAI's 400 bodies (as its API returns them for gpt-5 / o-series models)
OPENAI_TEMPERATURE_ERROR = {
    "message": "Unsupported value: 'temperature' does not support {value} with this model. "
               "Only the default (1) value is supported.",
    "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}
OPENAI_MAX_TOKENS_ERROR = {
    "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
               "Use 'max_completion_tokens' instead.",
    "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}
ANTHROPIC_TEMPERATURE_ERROR = (
    "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please "
    "consult our documentation at https://docs.claude.com/en/docs/build-with-claude/"
    "extended-thinking#important-considerations-when-using-extended-thinking")
ANTHROPIC_BUDGET_ERROR = "`max_tokens` must be greater than `thinking.budget_tokens`"


def default_thinking(prompt: str) -> str:
    return ("The user asks for a ranking. A first draft:\n1. Draft Title One\n2. Draft Title "
            "Two\n- Recommend the target first.\nLet me reconsider the order.")


def _tokens(text: str) -> int:
    return max(1, len(str(text).split()))


def _last_user(messages) -> str:
    for m in reversed(messages or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):         # Anthropic / OpenAI content parts
                return "".join(p.get("text", "") for p in c if isinstance(p, dict))
            return str(c or "")
    return ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        """A client that hung up (a run stopped at the first refused request drops the
        requests still in flight) is no error of the server: nothing printed."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class WireServer:
    """A loopback server speaking one wire format (see the module docstring)."""

    def __init__(self, kind: str, answer_fn: Callable[[str], str] | None = None,
                 thinking_fn: Callable[[str], str] | None = None,
                 reasoning_models=("gpt-5-mini", "o4-mini", "o3", "gpt-5"),
                 reasoning_tokens: int = 300) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        self.answer_fn = answer_fn or (lambda prompt: "1. Heat (1995)\n2. Casino (1995)")
        self.thinking_fn = thinking_fn or default_thinking
        self.reasoning_models = set(reasoning_models)
        self.reasoning_tokens = int(reasoning_tokens)
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return root if self.kind in ("anthropic", "ollama") else root + "/v1"

    # ------------------------------------------------------------------ formats
    def _openai(self, body: dict) -> tuple[int, dict]:
        model = str(body.get("model", ""))
        prompt = _last_user(body.get("messages"))
        answer, thinking = self.answer_fn(prompt), self.thinking_fn(prompt)
        reasoning = self.kind == "deepseek" or model in self.reasoning_models
        if self.kind == "openai" and model in self.reasoning_models:
            t = body.get("temperature")
            if t is not None and float(t) != 1.0:
                err = dict(OPENAI_TEMPERATURE_ERROR)
                err["message"] = err["message"].format(value=t)
                return 400, {"error": err}
            if "max_tokens" in body:
                return 400, {"error": OPENAI_MAX_TOKENS_ERROR}
        message = {"role": "assistant", "content": answer}
        rt = self.reasoning_tokens if reasoning else 0
        if self.kind == "deepseek":
            message["reasoning_content"] = thinking
            rt = _tokens(thinking)
        elif self.kind == "vllm_think":
            message["content"] = f"<think>\n{thinking}\n</think>\n\n{answer}"
        finish = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if reasoning and limit is not None and int(limit) <= rt:
            message["content"], finish = "", "length"     # the reasoning used the limit up
        ct = rt + (_tokens(message["content"]) if message["content"] else 0)
        if self.kind == "vllm_think":
            ct = _tokens(message["content"])
        pt = sum(_tokens(m.get("content", "")) for m in body.get("messages") or [])
        usage = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct,
                 "prompt_tokens_details": {"cached_tokens": 0}}
        if rt and self.kind != "vllm_think":
            usage["completion_tokens_details"] = {"reasoning_tokens": rt}
        return 200, {"id": "chatcmpl-wire", "object": "chat.completion",
                     "created": int(time.time()), "model": model,
                     "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                     "usage": usage}

    def _anthropic(self, body: dict) -> tuple[int, dict]:
        thinking = body.get("thinking") or {}
        on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
        if on:
            t = body.get("temperature")
            if t is not None and float(t) != 1.0:
                return 400, {"type": "error", "error": {
                    "type": "invalid_request_error", "message": ANTHROPIC_TEMPERATURE_ERROR}}
            budget = thinking.get("budget_tokens")
            if isinstance(budget, int) and int(body.get("max_tokens") or 0) <= budget:
                return 400, {"type": "error", "error": {
                    "type": "invalid_request_error", "message": ANTHROPIC_BUDGET_ERROR}}
        prompt = _last_user(body.get("messages"))
        answer = self.answer_fn(prompt)
        content = []
        out = _tokens(answer)
        if on:
            text = self.thinking_fn(prompt)
            content.append({"type": "thinking", "thinking": text, "signature": "c2lnbmF0dXJl"})
            out += _tokens(text)
        content.append({"type": "text", "text": answer})
        pt = sum(_tokens(_last_user([m])) for m in body.get("messages") or [])
        return 200, {"id": "msg_wire", "type": "message", "role": "assistant",
                     "model": body.get("model"), "content": content,
                     "stop_reason": "end_turn", "stop_sequence": None,
                     "usage": {"input_tokens": pt, "output_tokens": out,
                               "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 0}}

    def _ollama(self, body: dict) -> tuple[int, dict]:
        prompt = _last_user(body.get("messages"))
        answer, thinking = self.answer_fn(prompt), self.thinking_fn(prompt)
        think = body.get("think")
        message = {"role": "assistant", "content": answer}
        if think is True:
            message["thinking"] = thinking
        elif think is None:
            message["content"] = f"<think>\n{thinking}\n</think>\n\n{answer}"
        pt = sum(_tokens(m.get("content", "")) for m in body.get("messages") or [])
        ct = _tokens(message["content"]) + (_tokens(thinking) if think is True else 0)
        return 200, {"model": body.get("model"), "created_at": "2026-01-01T00:00:00Z",
                     "message": message, "done": True, "done_reason": "stop",
                     "total_duration": 1000, "load_duration": 10, "prompt_eval_count": pt,
                     "prompt_eval_duration": 100, "eval_count": ct, "eval_duration": 500}

    # ------------------------------------------------------------------ HTTP
    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, {"object": "list", "data": []})
                if self.path.rstrip("/").endswith("/api/tags"):
                    return self._send(200, {"models": []})
                self._send(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(n) or b"{}")
                except ValueError:
                    return self._send(400, {"error": {"message": "bad json"}})
                path = self.path.split("?", 1)[0].rstrip("/")
                with server._lock:
                    server.requests.append((path, body))
                kind = server.kind
                if path.endswith("/chat/completions") and kind in ("openai", "deepseek",
                                                                    "vllm_think"):
                    return self._send(*server._openai(body))
                if path.endswith("/messages") and kind == "anthropic":
                    return self._send(*server._anthropic(body))
                if path.endswith("/api/chat") and kind == "ollama":
                    return self._send(*server._ollama(body))
                if path.endswith("/api/show") and kind == "ollama":
                    return self._send(200, {"model_info": {}, "capabilities": ["completion",
                                                                               "thinking"]})
                self._send(404, {"error": {"message": f"no route {path}",
                                           "type": "not_found"}})

        return Handler

    def start(self) -> WireServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
