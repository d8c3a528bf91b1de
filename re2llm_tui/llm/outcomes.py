"""Did anything work?  The one judgement of a run's call outcomes.

A run in which every LLM call failed (a misconfigured model, a broken server, requests that
could not be sent at all) must not end ``done`` with a table of zeros and exit 0.  Every
stage that makes calls -- ``recommend``, ``evaluate``, ``train``'s reward table, ``explore``
and the app's jobs -- hands its outcomes to :func:`check_outcomes`::

    outcomes = CallOutcomes.of(ok=3, errors=["HTTP 404 ...", None, ...])
    check_outcomes(outcomes, run="run 7")   # raises NothingWorked when nothing worked

:class:`NothingWorked` is a :class:`~re2llm_tui.errors.UserError` with exit code 1 (the run
failed; 2 stays for input and configuration refused before any work, such as a refused key,
:class:`~re2llm_tui.llm.errors.AuthFailed`): the CLI prints its one line, a job process
reports it as its error, and the app shows it as a notification.  Partial failure (some
calls ok) is no failure: the caller keeps its count of failed calls.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from re2llm_tui.errors import UserError

#: the exit code of a run in which nothing worked
NOTHING_WORKED_EXIT = 1

# litellm's / the fast transport's exception class names -> the HTTP status they stand for
_STATUS_OF = {
    "BadRequestError": "400", "AuthenticationError": "401", "PermissionDeniedError": "403",
    "NotFoundError": "404", "UnprocessableEntityError": "422", "RateLimitError": "429",
    "InternalServerError": "500", "BadGatewayError": "502",
    "ServiceUnavailableError": "503",
}
_KINDS = {"Timeout": "timeout", "TimeoutError": "timeout", "ReadTimeout": "timeout",
          "ConnectTimeout": "timeout", "APIConnectionError": "connection error",
          "ClientConnectorError": "connection error", "ConnectionError": "connection error",
          "ServerDisconnectedError": "connection error", "EmptyReply": "empty reply"}
#: a failure of the connection itself, whatever class a library wrapped it in (litellm reports a
#: reset as an InternalServerError, which is no HTTP 500: no server answered)
_CONNECTION = re.compile(r"Connection reset|Connection refused|Connection aborted|"
                         r"Server disconnected|RemoteProtocolError|Errno (?:104|111|32)\b", re.I)
_HTTP = re.compile(r"\b(?:HTTP|status(?: code)?:?)\s*([1-5]\d\d)\b", re.I)
_FROM = re.compile(r"\s*\(HTTP \d{3} from [^)]*\)\s*$")
_MESSAGE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"')
#: at most this many characters of the server's message in the line
MESSAGE_CHARS = 80


class NothingWorked(UserError):
    """Every call of a run failed (or none could be sent); the run is marked ``failed``."""

    exit_code = NOTHING_WORKED_EXIT


def short_error(error: str | None) -> str:
    """A stored call error (``ClassName: message``) as a short label: the HTTP status (or the
    kind of failure) and the server's own message, e.g. ``404 The model `m` does not
    exist.`` or ``connection error``.  Equal failures get equal labels, so they can be
    counted."""
    text = " ".join(str(error or "").split())
    if not text:
        return "unknown error"
    name, _, rest = text.partition(": ")
    if not rest or " " in name:
        name, rest = "", text
    if name == "OutputLimitReached":
        return "cut off by the output limit before any answer (lower --reasoning-effort)"
    status = _STATUS_OF.get(name.rsplit(".", 1)[-1], "")
    m = _HTTP.search(text)
    if m:
        status = m.group(1)
    kind = _KINDS.get(name.rsplit(".", 1)[-1], "")
    if _CONNECTION.search(text) and not m:
        status, kind = "", "connection error"
    msg = _FROM.sub("", rest)
    found = _MESSAGE.search(msg)
    if found:
        try:
            msg = json.loads(f'"{found.group(1)}"')
        except ValueError:
            msg = found.group(1)
    else:
        # litellm: "litellm.NotFoundError: NotFoundError: OpenAIException - <message>"
        msg = msg.rsplit("Exception - ", 1)[-1]
        msg = re.sub(r"^(?:litellm\.)?\w+(?:Error|Exception): (?:\w+(?:Error|Exception): )?",
                     "", msg)
    msg = " ".join(str(msg).split())
    if len(msg) > MESSAGE_CHARS:
        msg = msg[:MESSAGE_CHARS - 3] + "..."
    head = status or kind or name or ""
    if head and msg and msg != head:
        return f"{head} {msg}"
    return head or msg or "unknown error"


@dataclass
class CallOutcomes:
    """What a run's calls came to: how many worked, and the failures by their error."""

    ok: int = 0
    errors: Counter = field(default_factory=Counter)     # short_error label -> count

    @classmethod
    def of(cls, *, ok: int = 0, errors: Iterable[str | None] = (),
           failed: int | None = None) -> "CallOutcomes":
        """``ok`` outcomes that worked; ``errors``: one stored error per failed call (``None``
        entries count as ok).  ``failed``: the failed calls when they are known to be more
        than the errors given (the rest count as ``unknown error``)."""
        out = cls(ok=int(ok))
        for e in errors:
            if e is None:
                out.ok += 1
            else:
                out.errors[short_error(e)] += 1
        if failed is not None and failed > out.failed:
            out.errors["unknown error"] += failed - out.failed
        return out

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def nothing_worked(self) -> bool:
        """Every call failed (at least one was tried, none worked)."""
        return self.ok <= 0 and self.failed > 0

    def line(self, what: str = "calls") -> str:
        """``all 20 calls failed (most common: 404 model not found x20)``; with a single
        call: ``the only call failed (ReplyTooLarge ...)``."""
        label, n = self.errors.most_common(1)[0] if self.errors else ("unknown error", 0)
        if self.failed == 1:
            return f"the only {what.rstrip('s')} failed ({label})"
        return f"all {self.failed} {what} failed (most common: {label} x{n})"


def check_outcomes(outcomes: CallOutcomes, *, what: str = "calls",
                   marked: str | None = None) -> None:
    """Raise :class:`NothingWorked` when nothing worked; ``marked`` names what was marked
    failed (``"run 7"``), said at the end of the line."""
    if outcomes.nothing_worked():
        raise NothingWorked(outcomes.line(what) + (f"; {marked} marked failed" if marked else ""))


def failed_call_errors(db, *, since_id: int, model: str | None = None,
                       run_id: int | None = None) -> list[str]:
    """The errors of the failed calls logged after call ``since_id`` (of ``model``, or of
    ``run_id``): what a stage that does not keep its calls' errors reads back."""
    from re2llm_tui.store.calls import failed_errors

    return failed_errors(db, since_id=since_id, model=model, run_id=run_id)
