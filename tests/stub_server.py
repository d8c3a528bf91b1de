"""A loopback OpenAI-compatible chat server for tests and benchmarks (a test double).

It answers ``POST /v1/chat/completions`` (and ``GET /v1/models``) on 127.0.0.1 with a
configurable latency, and can inject faults to exercise the client's retry logic:

* ``"429"``: rate limited (``Retry-After: 0``, or the ``retry_after`` attribute), ``"500"``: internal error, ``"401"``: bad key
  (must not be retried), ``"404"``: the model does not exist (as vLLM says it),
* ``"timeout"``: sleeps ``hang_s`` before answering (longer than the client's timeout),
* ``"garbage"``: status 200 with a body that is not JSON.
* ``"400"``: OpenAI's 400 ``invalid_request_error`` for an unsupported parameter (a request
  the provider refuses as invalid: the run stops at once).
* ``"length"``: status 200, ``finish_reason "length"`` and an empty answer (a reasoning
  model spent its output limit thinking: a failed call, not retried).

Hostile servers (attributes, or the same flags of ``main``), for every request while set:

* ``usage``: what the reply's ``"usage"`` holds, verbatim (negative, 1e30, "12", None ...;
  :data:`OMIT` drops the key); default: counted from the words.
* ``content``: the message's ``"content"``, verbatim (a list of parts, an object, a number).
* ``reply_bytes``: a valid completion whose text is this many bytes (a 50 MB reply).
* ``endless``: status 200 and a chunked body that never ends (until the client goes, or
  ``endless_limit`` bytes as a safety net); ``bytes_sent`` counts what went out.
* ``basic_auth = ("user", "pw")``: every request needs HTTP Basic with these credentials
  (401 otherwise); ``auth_headers`` keeps each request's ``Authorization`` header(s).

Faults come from a FIFO (``server.inject("429", "500")``: the next two requests fail that
way), from a per-message-content plan (``fail_first={"text": 2}``), or for every request
(``StubServer(fail_all="500")``, ``--fail-all 500``: a misconfigured or broken server).  Replies come from
``reply_fn(messages) -> str`` (default: a deterministic echo of the last message's hash).
Every request is counted in ``server.requests`` (by the hash of its messages) so tests can
check that no call was repeated.

In-process (thread)::

    with StubServer(latency=0.05) as srv:
        srv.base_url  # "http://127.0.0.1:PORT/v1"

As a separate process (benchmarks, to keep the server off the client's GIL)::

    python tests/stub_server.py --latency 0.05     # prints the port on the first line
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

FAULTS = ("429", "500", "401", "404", "400", "timeout", "garbage", "empty", "length")
#: the default of ``usage`` / ``content``: what a well-behaved server sends
AUTO = object()
#: ``usage = OMIT``: a reply without a ``"usage"`` key
OMIT = "omit"


def messages_hash(messages) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def default_reply(messages) -> str:
    last = messages[-1]["content"] if messages else ""
    return "echo " + hashlib.sha256(str(last).encode()).hexdigest()[:12]


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        """A client that hung up (a run stopped at the first refused request drops the
        requests still in flight) is no error of the server: nothing printed."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class StubServer:
    """An OpenAI-compatible loopback server running in a background thread."""

    def __init__(self, latency: float = 0.0, reply_fn: Callable | None = None,
                 hang_s: float = 5.0, port: int = 0, model_name: str = "stub-model",
                 fail_all: str | None = None) -> None:
        if fail_all is not None and fail_all not in FAULTS:
            raise ValueError(f"unknown fault {fail_all!r}; choose from {FAULTS}")
        self.latency = latency
        self.fail_all = fail_all      # every request fails this way
        self.reply_fn = reply_fn or default_reply
        self.hang_s = hang_s
        self.model_name = model_name
        self._faults: collections.deque[str] = collections.deque()
        self.fail_first: dict[str, list[str]] = {}
        self.retry_after = "0"        # the Retry-After header of a "429" fault
        self.lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.n_requests = 0
        self.n_faults = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict] = []
        # hostile behaviours (see the module docstring)
        self.usage = AUTO
        self.content = AUTO
        self.reply_bytes: int | None = None
        self.endless = False
        self.endless_limit = 2 << 30
        self.bytes_sent = 0
        self.basic_auth: tuple[str, str] | None = None
        self.auth_headers: list[str | None] = []
        self._httpd = _Server(("127.0.0.1", port), self._handler_class())
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def inject(self, *faults: str) -> None:
        """The next ``len(faults)`` requests fail in these ways, in order."""
        for f in faults:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}; choose from {FAULTS}")
        with self.lock:
            self._faults.extend(faults)

    def fail_content(self, needle: str, *faults: str) -> None:
        """Requests whose last message contains ``needle`` fail with ``faults`` (in order)."""
        with self.lock:
            self.fail_first.setdefault(needle, []).extend(faults)

    def _next_fault(self, messages) -> str | None:
        with self.lock:
            last = str(messages[-1].get("content", "")) if messages else ""
            for needle, faults in self.fail_first.items():
                if faults and needle in last:
                    return faults.pop(0)
            if self._faults:
                return self._faults.popleft()
        return self.fail_all

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # one segment per reply: no Nagle/delayed-ACK stalls of ~40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._quickack()

            def _quickack(self):
                # ACK at once: clients that write headers and body separately would
                # otherwise wait for the delayed ACK (~40 ms) before sending the body
                if hasattr(socket, "TCP_QUICKACK"):
                    try:
                        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                    except OSError:
                        pass

            def handle_one_request(self):
                self._quickack()
                super().handle_one_request()

            def _send(self, code: int, body: bytes, ctype="application/json", headers=None):
                self.send_response_only(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self._headers_buffer.append(b"\r\n")
                self._headers_buffer.append(body)   # headers and body in one write
                self.wfile.write(b"".join(self._headers_buffer))
                self._headers_buffer = []

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    body = {"object": "list", "data": [
                        {"id": server.model_name, "object": "model", "owned_by": "stub"}]}
                    self._send(200, json.dumps(body).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self._quickack()
                raw = self.rfile.read(length)
                try:
                    req = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, b'{"error": {"message": "bad json"}}')
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                messages = req.get("messages") or []
                key = messages_hash(messages)
                # every Authorization header sent (two would show as "A, B")
                auth = ", ".join(self.headers.get_all("Authorization") or []) or None
                with server.lock:
                    server.auth_headers.append(auth)
                if server.basic_auth is not None and auth != _basic(*server.basic_auth):
                    self._send(401, b'{"error": {"message": "basic auth required"}}',
                               headers={"WWW-Authenticate": 'Basic realm="stub"'})
                    return
                with server.lock:
                    server.n_requests += 1
                    server.requests[key] += 1
                    server.bodies.append(req)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(req, messages, key)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self, req, messages, key):
                fault = server._next_fault(messages)
                if server.latency:
                    time.sleep(server.latency)
                if fault is None and getattr(server, "always_429", None) is not None:
                    fault = "429"           # --always-429 SECONDS: every request is refused
                if fault is not None:
                    with server.lock:
                        server.n_faults += 1
                if fault == "429":
                    self._send(429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                               headers={"Retry-After": getattr(server, "always_429", None)
                                        or server.retry_after})
                    return
                if fault == "401":
                    self._send(401, b'{"error": {"message": "invalid api key", "type": "auth"}}')
                    return
                if fault == "404":
                    self._send(404, json.dumps({"error": {
                        "message": f"The model `{req.get('model')}` does not exist.",
                        "type": "NotFoundError", "code": 404}}).encode())
                    return
                if fault == "400":
                    self._send(400, json.dumps({"error": {
                        "message": "Unsupported parameter: 'seed' is not supported with this "
                                   "model.", "type": "invalid_request_error", "param": "seed",
                        "code": "unsupported_parameter"}}).encode())
                    return
                if fault == "500":
                    self._send(500, b'{"error": {"message": "internal error", "type": "server"}}')
                    return
                if fault == "timeout":
                    time.sleep(server.hang_s)
                if fault == "garbage":
                    self._send(200, b"<html>this is not json")
                    return
                if server.endless:
                    self._endless(req, key)
                    return
                text = "" if fault in ("empty", "length") else server.reply_fn(messages)
                if server.reply_bytes is not None:
                    text = ("x" * 63 + " ") * (server.reply_bytes // 64) + \
                        "x" * (server.reply_bytes % 64)
                p_tok = sum(len(str(m.get("content", "")).split()) for m in messages)
                c_tok = len(text.split())
                body = {
                    "id": f"chatcmpl-{key}", "object": "chat.completion",
                    "created": int(time.time()), "model": req.get("model", server.model_name),
                    "choices": [{"index": 0,
                                 "finish_reason": "length" if fault == "length" else "stop",
                                 "message": {"role": "assistant",
                                             "content": text if server.content is AUTO
                                             else server.content}}],
                    "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok,
                              "total_tokens": p_tok + c_tok},
                }
                if server.usage is OMIT:
                    del body["usage"]
                elif server.usage is not AUTO:
                    body["usage"] = server.usage
                try:
                    self._send(200, json.dumps(body).encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _endless(self, req, key):
                """200, chunked: the start of a completion whose text never ends."""
                self.send_response_only(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                head = json.dumps({"id": f"chatcmpl-{key}", "object": "chat.completion",
                                   "model": req.get("model", server.model_name)})
                first = head[:-1] + ', "choices": [{"index": 0, "message": {"content": "'
                chunk = b"x" * 65536
                pieces = [first.encode()]
                try:
                    while server.bytes_sent < server.endless_limit:
                        data = pieces.pop() if pieces else chunk
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        with server.lock:
                            server.bytes_sent += len(data)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                self.close_connection = True

        return Handler

    def start(self) -> "StubServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "StubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--fail-all", choices=FAULTS, default=None,
                    help="every request fails this way")
    ap.add_argument("--always-429", metavar="SECONDS", default=None,
                    help="answer every request 429 with this Retry-After")
    ap.add_argument("--usage", help="the replies' usage, as JSON (or 'omit')")
    ap.add_argument("--content", help="the replies' message content, as JSON")
    ap.add_argument("--reply-bytes", type=int, help="replies whose text is this many bytes")
    ap.add_argument("--endless", action="store_true", help="a chunked body that never ends")
    ap.add_argument("--basic-auth", help="USER:PW that every request must send (HTTP Basic)")
    args = ap.parse_args(argv)
    srv = StubServer(latency=args.latency, port=args.port, fail_all=args.fail_all)
    if args.usage is not None:
        srv.usage = OMIT if args.usage == OMIT else json.loads(args.usage)
    if args.content is not None:
        srv.content = json.loads(args.content)
    srv.reply_bytes = args.reply_bytes
    srv.endless = args.endless
    if args.basic_auth:
        srv.basic_auth = tuple(args.basic_auth.split(":", 1))
    srv.always_429 = args.always_429
    print(srv.port, flush=True)
    try:
        srv._httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
