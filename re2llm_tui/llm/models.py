"""Which model answers: model strings, the embedded demo model, ``--api-base`` servers, and
the checks run before any work (:func:`check_model`, one-line :class:`UserError`).

* ``model``: a litellm model string (``gpt-4o-mini``, ``anthropic/...``, ``ollama/...``,
  ``hosted_vllm/...``, or a custom provider registered with ``litellm.custom_provider_map``);
  default ``$RE2LLM_MODEL``, else the embedded local model ``local/smollm2-135m``
  (:mod:`re2llm_tui.llm.local`).  Keys come from the provider's usual environment variables
  and are never stored.
* ``api_bases``: one OpenAI-compatible server, or several (each request to the least busy:
  :class:`~re2llm_tui.llm.transport.LeastBusy`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from re2llm_tui.errors import UserError
from re2llm_tui.llm.litellm_import import import_litellm

#: the embedded demo model (SmolLM2-135M-Instruct, in-process via llama-cpp-python)
DEFAULT_MODEL = "local/smollm2-135m"
LOCAL_PROVIDER = "local"
MODEL_ENV = "RE2LLM_MODEL"

DEMO_NOTICE = (
    "Using the embedded demo model SmolLM2-135M (135M parameters, CPU, in-process): a weak "
    "recommender (HR@10 0.24 games / 0.22 movies on 100 test sessions; random 0.20). Plug in "
    "a real model with --model "
    "(or RE2LLM_MODEL), e.g. --model gpt-5-mini with OPENAI_API_KEY set, --model "
    "anthropic/claude-sonnet-4-5 with ANTHROPIC_API_KEY (--reasoning-effort low for "
    "extended thinking), --model ollama_chat/qwen3, or "
    "--model hosted_vllm/<name> --api-base http://host:8000/v1 (repeat --api-base to spread "
    "calls over several servers; --reasoning for a thinking model such as Qwen3 or R1)."
)


def resolve_model(model: str | None) -> str:
    """``--model``, then ``$RE2LLM_MODEL``, then the embedded demo model."""
    m = (model or os.environ.get(MODEL_ENV) or "").strip()
    return m or DEFAULT_MODEL


def is_local_model(model: str) -> bool:
    return model.split("/", 1)[0] == LOCAL_PROVIDER


def default_concurrency(model: str, api_bases: Sequence[str]) -> int:
    """Calls in flight at once when ``--concurrency`` is not given."""
    if is_local_model(model):
        return 1            # one in-process model, one core
    if api_bases:
        return 4 * len(api_bases)
    return 8


def default_rank_method(model: str) -> str:
    """How ``rank`` turns a prompt into a ranking: the local model chooses among the
    candidates (:mod:`re2llm_tui.llm.ranking`); any other model generates a reply."""
    if is_local_model(model):
        from re2llm_tui.llm.ranking import DEFAULT_LOCAL_METHOD
        return DEFAULT_LOCAL_METHOD
    return "generate"


def safe_base(url: str | None) -> str | None:
    """An api_base without user info (never store credentials)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url


def check_reachable(url: str, timeout: float = 3.0) -> None:
    """A TCP connect to an ``--api-base``; one-line UserError if nothing listens."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--api-base {url!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UserError(f"--api-base {safe_base(url)} is unreachable ({reason})") from None


def check_model(model: str, api_bases: Sequence[str], rank_method: str | None = None) -> str:
    """Validate the model string, its keys, ``--api-base`` and ``rank_method`` before any work
    (one-line :class:`UserError`).  Returns the model string to use: a bare name served by
    an OpenAI-compatible ``--api-base`` becomes ``openai/NAME``."""
    local = is_local_model(model)
    if rank_method:
        from re2llm_tui.llm.ranking import METHODS
        if rank_method not in METHODS:
            raise UserError(f"unknown ranking method {rank_method!r}: "
                            f"choose from {', '.join(METHODS)}")
        if not local and rank_method != "generate":
            raise UserError(f"ranking method {rank_method!r} needs the local model; "
                            "remote models rank with 'generate'")
    if local:
        if api_bases:
            raise UserError("--api-base needs --model (the model name the server serves, "
                            "e.g. --model hosted_vllm/my-model)")
        from re2llm_tui.llm.local import check_local_model
        check_local_model(model)
        return model
    litellm = import_litellm()
    from re2llm_tui.llm import local as _local_mod

    _local_mod.register()  # the local provider is known to litellm too
    model, provider = provider_of(litellm, model, api_bases)
    for base in api_bases:
        check_reachable(base)
    if provider in getattr(litellm, "_custom_providers", []):
        return model
    if not api_bases:
        try:
            env = litellm.validate_environment(model=model)
        except Exception:  # noqa: BLE001 - unknown to litellm's key table
            env = {"keys_in_environment": True}
        # a missing *_API_BASE is not a key: litellm has a default (ollama: localhost)
        missing_keys = [k for k in (env.get("missing_keys") or [])
                        if not k.endswith("_API_BASE")]
        if not env.get("keys_in_environment", True) and (
                missing_keys or not env.get("missing_keys")):
            missing = ", ".join(missing_keys) or "an API key"
            raise UserError(f"model {model!r} needs {missing} in the environment "
                            "(keys are read from environment variables only)")
    return model


def provider_of(litellm, model: str, api_bases: Sequence[str]) -> tuple[str, str]:
    """(model, provider) as litellm knows them; a one-line UserError for an unknown string."""
    try:
        from litellm.utils import custom_llm_setup

        custom_llm_setup()  # make providers in litellm.custom_provider_map known
    except ImportError:  # pragma: no cover - older litellm
        pass
    try:
        _model, provider, _key, _base = litellm.get_llm_provider(model=model)
    except Exception:  # noqa: BLE001 - litellm raises BadRequestError for unknown strings
        if api_bases and "/" not in model:
            # a bare name served by an OpenAI-compatible server
            return f"openai/{model}", "openai"
        raise UserError(
            f"unknown model string {model!r}: use litellm's form, e.g. gpt-4o-mini, "
            "anthropic/claude-3-5-haiku-latest, ollama/llama3.1, hosted_vllm/NAME with "
            f"--api-base, or {DEFAULT_MODEL}") from None
    return model, provider
