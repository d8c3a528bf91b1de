"""What a model accepts, decided before the first call: its :class:`Decoding` profile.

:func:`decoding_profile` answers, for a model string and the user's ``--reasoning-effort``:

* **is_reasoning**: the model thinks before it answers under this effort (hidden reasoning
  tokens, billed as output);
* **temperature**: what to send -- the client's temperature (0: greedy) where the model takes
  it, else ``None``: nothing is sent and the provider's default (1) applies, and the replies
  are **sampled** (:attr:`Decoding.sampled`), never called greedy;
* **seed**: whether ``seed`` may be sent (Anthropic refuses it: litellm raises
  ``UnsupportedParamsError`` before sending);
* **limit_param**: ``max_completion_tokens`` (OpenAI's reasoning models refuse ``max_tokens``
  on the wire) or ``max_tokens`` (litellm maps it for Anthropic, Gemini, Ollama);
* **effort**: the ``reasoning_effort`` to send (``None``: none sent), and the thinking budget
  litellm maps it to (Anthropic ``thinking.budget_tokens``, Gemini ``thinkingBudget``);
* **output_limit(answer_tokens)**: an output limit that leaves room for the reasoning.

How it is decided:

* a model litellm knows (``gpt-5-mini``, ``o4-mini``, ``claude-sonnet-4-5``,
  ``gemini/gemini-2.5-flash``, ``deepseek/deepseek-reasoner``, ``gpt-4o-mini``...): litellm's
  model map (``supports_reasoning``, ``get_supported_openai_params``, ``get_model_info``) and
  its own parameter mapping, asked offline (``litellm.utils.get_optional_params``, the
  function ``completion`` calls before it sends): a temperature it refuses (gpt-5 and the
  o-series unless the effort resolves to ``none``) or an effort it refuses
  (``none`` on gpt-5-mini) is known here, not from a failed call.  Two provider rules
  litellm does not enforce are added: Anthropic refuses any ``temperature`` but 1 while
  thinking, and DeepSeek's reasoner ignores it (so its replies are sampled either way);
* a model litellm does not know (``hosted_vllm/qwen3-...``, ``openai/NAME`` on an
  ``--api-base`` that is not OpenAI's model, ``ollama_chat/qwen3`` whose map row says
  nothing of reasoning): what the user declares (:class:`Declared`: ``--reasoning``,
  ``--no-temperature``), remembered per model in the workspace
  (:mod:`re2llm_tui.store.model_profiles`).  A declaration also overrides litellm where
  given.

Everything here is offline and sends nothing; :func:`decoding_profile` imports litellm
(through :mod:`~re2llm_tui.llm.litellm_import`, offline cost map).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from re2llm_tui.errors import UserError

#: ``--reasoning-effort`` values (litellm's names; ``none`` turns thinking off where it can)
EFFORTS = ("none", "minimal", "low", "medium", "high")

#: reasoning tokens assumed per effort where the provider states no budget (OpenAI's efforts,
#: DeepSeek, a declared self-hosted model): an *assumption*, stated as such by the dry run.
#: ``None`` (effort not sent) is the provider's default, medium.
REASONING_ALLOWANCE = {"none": 0, "minimal": 1024, "low": 2048, "medium": 4096, "high": 16384,
                       None: 4096}


#: the environment variable a command sets for the processes it spawns (``use_effort``)
EFFORT_ENV = "RE2LLM_REASONING_EFFORT"


def effort_from_env() -> str | None:
    """``$RE2LLM_REASONING_EFFORT`` checked (unset or empty: None)."""
    import os

    return check_effort(os.environ.get(EFFORT_ENV) or None)


def use_effort(effort: str | None) -> str | None:
    """A command's ``--reasoning-effort``: checked, and made this process's
    ``$RE2LLM_REASONING_EFFORT`` so the processes it spawns use the same effort."""
    import os

    e = check_effort(effort)
    if e is not None:
        os.environ[EFFORT_ENV] = e
    return e


def check_effort(effort: str | None) -> str | None:
    """``--reasoning-effort`` validated (``None``: not given); a one-line UserError otherwise."""
    if effort is None:
        return None
    e = str(effort).strip().lower()
    if e not in EFFORTS:
        raise UserError(f"unknown --reasoning-effort {effort!r}: choose from {', '.join(EFFORTS)}")
    return e


@dataclass(frozen=True)
class Declared:
    """What the user declared about a model (``None``: not declared)."""

    reasoning: bool | None = None          # --reasoning / --no-reasoning
    no_temperature: bool | None = None     # --no-temperature

    @classmethod
    def of(cls, d: dict | None) -> Declared:
        """From the dict :mod:`re2llm_tui.store.model_profiles` remembers (``None``/``{}``:
        nothing declared)."""
        d = d or {}
        return cls(d.get("reasoning"), d.get("no_temperature"))

    @property
    def empty(self) -> bool:
        return self.reasoning is None and self.no_temperature is None

    def over(self, older: Declared | None) -> Declared:
        """These declarations, the ``older`` ones where these say nothing."""
        if older is None:
            return self
        return Declared(self.reasoning if self.reasoning is not None else older.reasoning,
                        self.no_temperature if self.no_temperature is not None
                        else older.no_temperature)


@dataclass(frozen=True)
class Decoding:
    """A model's decoding profile (see the module docstring)."""

    model: str
    provider: str | None
    #: litellm knows the model (its map, or a provider config that maps its parameters)
    known: bool
    is_reasoning: bool
    #: the temperature to send (``None``: none sent, the provider's default applies)
    temperature: float | None
    #: ``seed`` may be sent
    seed: bool
    limit_param: str
    #: the ``reasoning_effort`` to send (``None``: none)
    effort: str | None
    supports_effort: bool
    #: reasoning tokens the effort is mapped to by litellm (Anthropic, Gemini); else None
    thinking_budget: int | None
    #: the model's largest output (litellm's map), if known
    max_output_tokens: int | None
    #: where the answers came from: ``litellm``, ``declared`` or ``default``
    source: str
    #: why the temperature is not sent, for the run's record ("" when it is)
    note: str = ""

    @property
    def sampled(self) -> bool:
        """Replies are samples, not greedy decodes: no temperature 0 reaches the model, or a
        reasoning model ignores it (DeepSeek's reasoner)."""
        return self.temperature is None or self.temperature > 0

    @property
    def reasoning_allowance(self) -> int:
        """Output tokens kept for reasoning: litellm's mapped budget, else the stated
        per-effort assumption (:data:`REASONING_ALLOWANCE`); 0 for a model that does not
        reason."""
        if not self.is_reasoning:
            return 0
        if self.thinking_budget is not None:
            return self.thinking_budget
        return REASONING_ALLOWANCE.get(self.effort, REASONING_ALLOWANCE[None])

    def output_limit(self, answer_tokens: int) -> int:
        """The output limit to send for a call whose *answer* needs ``answer_tokens``: the
        answer plus room for the reasoning, at most the model's largest output.  (Anthropic
        needs ``max_tokens`` above the thinking budget: the answer is added to it.)"""
        limit = int(answer_tokens) + self.reasoning_allowance
        if self.max_output_tokens:
            limit = min(limit, int(self.max_output_tokens))
        return limit

    def params(self, answer_tokens: int | None, *, temperature: float = 0.0,
               seed: int | None = 0) -> dict:
        """The decoding parameters to send (and to key the cache on) for one call: the
        temperature where it may be sent, the seed where taken, the output limit under its
        parameter name, the effort where set.  ``temperature`` is the client's (a model
        that takes no temperature gets none)."""
        d: dict = {}
        if self.temperature is not None:
            d["temperature"] = temperature
        if self.seed and seed is not None:
            d["seed"] = seed
        if answer_tokens is not None:
            d[self.limit_param] = self.output_limit(answer_tokens)
        if self.effort is not None:
            d["reasoning_effort"] = self.effort
        return d

    def record(self) -> dict:
        """What a run's config stores (and ``runs compare`` diffs)."""
        d = asdict(self)
        d["sampled"] = self.sampled
        return d


# ------------------------------------------------------------------ litellm's knowledge

def _resolve(litellm, model: str) -> tuple[str, str | None]:
    """(model name without provider, provider) as litellm resolves the string; a bare name
    litellm's resolver misses (``deepseek-reasoner``) is looked up in its map."""
    try:
        name, provider, _k, _b = litellm.get_llm_provider(model=model)
        return name, provider
    except Exception:  # noqa: BLE001 - litellm raises BadRequestError for unknown strings
        row = (getattr(litellm, "model_cost", {}) or {}).get(model) or {}
        return model, row.get("litellm_provider")


def _info(litellm, model: str, name: str, provider: str | None) -> dict:
    for args in ({"model": model}, {"model": name, "custom_llm_provider": provider}):
        try:
            return dict(litellm.get_model_info(**args) or {})
        except Exception:  # noqa: BLE001 - not in the map
            continue
    return {}


def _probe(litellm, name: str, provider: str | None, **params) -> tuple[dict | None, str]:
    """litellm's own mapping of ``params`` for this model, offline: (the parameters it would
    send, "") or (None, its refusal)."""
    try:
        from litellm.utils import get_optional_params

        out = get_optional_params(model=name, custom_llm_provider=provider, **params)
        return {k: v for k, v in out.items() if v is not None}, ""
    except Exception as exc:  # noqa: BLE001 - UnsupportedParamsError, BadRequestError
        msg = " ".join(str(exc).split())
        return None, msg.replace("litellm.UnsupportedParamsError: ", "")


def _thinking_state(mapped: dict) -> tuple[bool | None, int | None]:
    """(reasoning on?, budget) read off litellm's mapped parameters (None: not said)."""
    thinking = mapped.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type"):
        on = thinking["type"] in ("enabled", "adaptive")
        budget = thinking.get("budget_tokens")
        return on, int(budget) if on and isinstance(budget, int) else None
    cfg = mapped.get("thinkingConfig") or mapped.get("thinking_config")
    if isinstance(cfg, dict):
        budget = cfg.get("thinkingBudget")
        if budget == 0:
            return False, None
        return True, int(budget) if isinstance(budget, int) and budget > 0 else None
    if isinstance(mapped.get("think"), bool):                      # Ollama
        return mapped["think"], None
    effort = mapped.get("reasoning_effort")
    if isinstance(effort, str):
        return effort != "none", None
    return None, None


def _default_on(litellm, name: str, provider: str | None, info: dict) -> bool:
    """Does the model think when no effort is sent?"""
    if not info.get("supports_reasoning"):
        return False
    if info.get("default_reasoning_effort") == "none":                # gpt-5.1 and later
        return False
    if provider in ("anthropic", "bedrock", "vertex_ai") and name.startswith("claude"):
        try:
            from litellm.llms.anthropic.common_utils import AnthropicModelInfo

            return bool(AnthropicModelInfo.thinks_by_default(name, provider))
        except Exception:  # noqa: BLE001 - older litellm: Claude thinks only when asked
            return False
    return True


def decoding_profile(model: str, effort: str | None = None,
                     declared: Declared | None = None, *,
                     want_temperature: float = 0.0) -> Decoding:
    """The :class:`Decoding` of ``model`` under ``effort`` (see the module docstring).

    Raises a one-line :class:`UserError` for an effort the model refuses (``none`` on
    gpt-5-mini; any effort on a model without reasoning, unless declared reasoning)."""
    from re2llm_tui.llm.litellm_import import import_litellm
    from re2llm_tui.llm.models import is_local_model

    effort = check_effort(effort)
    declared = declared or Declared()
    if is_local_model(model):
        if effort is not None:
            raise UserError("--reasoning-effort needs a reasoning model; the embedded demo "
                            "model does not reason")
        return Decoding(model, "local", True, False, want_temperature, True, "max_tokens",
                        None, False, None, None, "default")
    litellm = import_litellm()
    name, provider = _resolve(litellm, model)
    info = _info(litellm, model, name, provider)
    try:
        supported = set(litellm.get_supported_openai_params(
            model=name, custom_llm_provider=provider) or ())
    except Exception:  # noqa: BLE001 - unknown provider
        supported = set()
    known = bool(info.get("max_output_tokens") or info.get("max_input_tokens")
                 or info.get("supports_reasoning") is not None)
    supports_effort = "reasoning_effort" in supported
    max_out = info.get("max_output_tokens") or None

    # litellm's own mapping, with the effort, a small limit and temperature 0
    base = {"max_tokens": 64}
    if effort is not None:
        base["reasoning_effort"] = effort
    mapped, refusal = _probe(litellm, name, provider, **base)
    if mapped is None:
        if effort is not None and "reasoning_effort" in refusal:
            raise UserError(f"--reasoning-effort {effort} is not accepted for {model} "
                            f"({refusal.split('. To drop')[0]})")
        mapped = {}
    if effort in ("none", "minimal") and provider in ("openai", "azure") and \
            re.match(r"o\d", name) and not info.get(f"supports_{effort}_reasoning_effort"):
        # the o-series takes low/medium/high only (litellm forwards the others: a 400)
        raise UserError(f"--reasoning-effort {effort} is not accepted for {model} (the o-series "
                        "takes low, medium or high)")
    on, budget = _thinking_state(mapped)
    if on is None:
        on = _default_on(litellm, name, provider, info) if effort is None else \
            (effort != "none" and bool(info.get("supports_reasoning")))
    with_t, t_refusal = _probe(litellm, name, provider, temperature=want_temperature, **base)
    temp_ok = not (with_t is None and "temperature" in t_refusal)
    note = "" if temp_ok else f"litellm: {t_refusal.split('. To drop')[0].split('. Only')[0]}"
    if temp_ok and on and provider == "anthropic":
        temp_ok, note = False, "Anthropic takes no temperature but 1 while thinking"
    if temp_ok and on and provider == "deepseek":
        temp_ok, note = False, "DeepSeek's reasoner ignores temperature"
    limit_param = "max_completion_tokens" if "max_completion_tokens" in mapped else "max_tokens"
    seed_ok = "seed" in supported if supported else True
    source = "litellm" if known else "default"

    if declared.reasoning is not None:
        on, source = declared.reasoning, "declared"
        if on and provider in ("openai", "hosted_vllm") and limit_param == "max_tokens":
            # OpenAI's reasoning models refuse max_tokens; vLLM (and other OpenAI-compatible
            # servers) take max_completion_tokens as well
            limit_param = "max_completion_tokens"
    if declared.no_temperature:
        temp_ok, source = False, "declared"
        note = note or "declared --no-temperature"
    if effort is not None and effort != "none" and not on and not supports_effort:
        raise UserError(f"--reasoning-effort {effort}: {model} is not a reasoning model as far "
                        "as litellm knows (declare it with --reasoning if it is one)")
    return Decoding(
        model=model, provider=provider, known=known, is_reasoning=bool(on),
        temperature=want_temperature if temp_ok else None, seed=seed_ok,
        limit_param=limit_param, effort=effort,
        supports_effort=supports_effort or bool(declared.reasoning),
        thinking_budget=budget if on else None, max_output_tokens=max_out, source=source,
        note=note)
