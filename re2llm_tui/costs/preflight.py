"""Cost preflight: what a command's LLM calls would cost, computed without sending any.

A command lists the requests it would make as :class:`PlannedCall` objects, built from the
same prompts and the same cache keys as :class:`~re2llm_tui.llm.client.LLMClient` uses
(:func:`rank_call`, :func:`complete_call`); :func:`estimate` then gives an
:class:`Estimate`:

* **calls**: requests in total; **cached**: those whose key already has a successful reply
  in the workspace's ``calls`` table (or that repeat an earlier request of the same plan),
  served free; **to pay**: the rest.  Outcomes a command reads from the reward table make no
  request at all (``stored``).
* **prompt tokens**: litellm's ``token_counter`` on the real messages of the calls to pay
  (for a turn whose earlier replies are not known yet, the replies' estimated length is
  added: said in the notes).
* **completion tokens**: per purpose (``rank``, ``reflect:hints``, ...), the median
  completion length of this model's earlier replies in this workspace (3 or more), else the
  request's ``max_tokens`` -- an upper bound, said so.
* **dollars**: litellm's price table (``cost_per_token``, the local copy of the map: no
  network); 0 for the embedded local model; a model litellm has no price for is reported
  as "price unknown", never as $0.
* **time**: the local model's seconds per call measured in this workspace's calls, else the
  figures measured on this class of machine (:mod:`re2llm_tui.costs.run_plan`); a
  remote model: calls x median latency / concurrency (latency from this workspace's calls of
  the model, else an assumed 2 s).

Nothing here sends a request, needs an API key or loads the local model: the model string
is normalised the way :func:`~re2llm_tui.llm.models.check_model` does, minus the key and
reachability checks (:func:`dry_model`; :func:`re2llm_tui.costs.dry_run.dry_client` builds a
client with it).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from re2llm_tui.llm.cache import cache_key
from re2llm_tui.llm.decoding import RANK_MAX_TOKENS, merge_decoding, output_limit_of
from re2llm_tui.llm.litellm_import import import_litellm
from re2llm_tui.llm.models import is_local_model
from re2llm_tui.store.calls import cached_keys, completion_tokens

#: replies measured before their median replaces ``max_tokens`` as the completion estimate
MIN_MEASURED = 3


@dataclass
class PlannedCall:
    """One request a command would send (``key`` None: its messages depend on replies not
    known yet, so it cannot be in the cache)."""

    purpose: str
    messages: list[dict]
    key: str | None = None
    max_tokens: int | None = None
    #: prompt tokens of replies not known yet, added to the counted messages
    extra_prompt_tokens: int = 0
    #: calls of one group run back to back (a session's hints: the local engine reuses the
    #: shared prompt prefix after the first)
    group: str = ""
    #: a ranking: the candidates and how many the reply lists (its expected length)
    listing: tuple[str, ...] = ()
    k: int = 10


@dataclass
class Estimate:
    """What :func:`estimate` found (see the module docstring)."""

    command: str
    model: str
    is_local: bool
    calls: int
    cached: int
    to_pay: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None                  # None: price unknown
    seconds: float
    completion_basis: str = ""
    price_basis: str = ""
    time_basis: str = ""
    upper_bound: bool = False           # calls (and all that follows) are an upper bound
    bound_basis: str = ""
    stored: int = 0                     # outcomes read from the reward table: no request
    notes: list[str] = field(default_factory=list)
    #: where the completion length is only bounded (max_tokens): the length a reply listing
    #: k candidate titles has, and the cost with it (None: nothing to expect differently)
    expected_completion_tokens: int | None = None
    expected_cost: float | None = None

    @property
    def price_known(self) -> bool:
        return self.cost is not None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["price_known"] = self.price_known
        d["cost"] = None if self.cost is None else round(self.cost, 6)
        d["seconds"] = round(self.seconds, 1)
        d["dry_run"] = True
        return d

    def cost_text(self) -> str:
        if self.is_local:
            return "$0 (local model)"
        if self.cost is None:
            return "price unknown"
        return f"${self.cost:.4f}"

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) lines of the estimate, plain text."""
        from re2llm_tui.costs.run_plan import fmt_duration

        bound = " (upper bound)" if self.upper_bound else ""
        out = [("model", self.model),
               ("LLM calls", f"{self.calls:,}{bound}")]
        if self.stored:
            out.append(("outcomes stored (no call)", f"{self.stored:,}"))
        out += [("from the cache (free)", f"{self.cached:,}"),
                ("still to pay", f"{self.to_pay:,}{bound}"),
                ("prompt tokens", (f"{self.prompt_tokens:,} (litellm token_counter on the "
                                   "prompts to pay)")),
                ("completion tokens", (f"{self.completion_tokens:,} "
                                       f"({self.completion_basis or 'none to pay'})")),
                ("cost", self.cost_text() + bound
                 + (" at most" if self.expected_cost is not None and not self.is_local
                    and self.price_known else "")
                 + (f" ({self.price_basis})" if self.price_basis else ""))]
        if self.expected_completion_tokens is not None:
            out.insert(-1, ("expected completion", (
                f"~{self.expected_completion_tokens:,} (ranking replies listing k candidate "
                "titles, counted with litellm's token_counter)")))
            if self.expected_cost is not None and not self.is_local:
                out.append(("expected cost", f"~${self.expected_cost:.4f}{bound}"))
        out.append(("time", f"~{fmt_duration(self.seconds)}{bound} ({self.time_basis})"))
        if self.upper_bound and self.bound_basis:
            out.append(("bound", self.bound_basis))
        return out

    def lines(self) -> list[str]:
        """The estimate as plain lines (the TUI's confirmation)."""
        width = max(len(k) for k, _ in self.rows())
        out = [f"{k.ljust(width)}  {v}" for k, v in self.rows()]
        return out + [f"note: {n}" for n in self.notes]


# --------------------------------------------------------------------------- requests

def dry_model(model: str, api_bases: Sequence[str] = ()) -> str:
    """The model string :func:`~re2llm_tui.llm.models.check_model` would return, without
    its key and reachability checks."""
    if is_local_model(model):
        return model
    from re2llm_tui.llm.models import provider_of

    return provider_of(import_litellm(), model, api_bases)[0]


def rank_call(client, prompt: str, candidates: Sequence[str], *, k: int = 10,
              group: str = "", **decoding) -> PlannedCall:
    """The request :meth:`LLMClient.rank` sends for ``prompt`` (same messages, same key)."""
    messages = [{"role": "user", "content": prompt}]
    method = client.rank_method
    if method == "generate":
        decoding.setdefault("max_tokens", RANK_MAX_TOKENS)
        dec = merge_decoding(client.temperature, client.seed, decoding, client.profile)
        return PlannedCall("rank", messages, cache_key(client.model, messages, dec),
                           output_limit_of(dec), group=group, listing=tuple(candidates), k=k)
    from re2llm_tui.llm.ranking import METHODS

    dec = merge_decoding(client.temperature, client.seed, decoding, client.profile)
    extra = {"candidates": list(candidates), "k": k, "method": method,
             "method_version": METHODS[method].version}
    return PlannedCall("rank", messages, cache_key(client.model, messages, dec, extra),
                       RANK_MAX_TOKENS, group=group, listing=tuple(candidates), k=k)


def complete_call(client, messages: Sequence[dict], *, purpose: str = "chat",
                  known: bool = True, extra_prompt_tokens: int = 0, group: str = "",
                  **decoding) -> PlannedCall:
    """The request :meth:`LLMClient.complete` sends (``known=False``: its messages are a
    stand-in, so it has no cache key)."""
    messages = [dict(m) for m in messages]
    dec = merge_decoding(client.temperature, client.seed, decoding, client.profile)
    key = cache_key(client.model, messages, dec) if known else None
    return PlannedCall(purpose, messages, key, output_limit_of(dec),
                       extra_prompt_tokens=extra_prompt_tokens, group=group)


# --------------------------------------------------------------------------- workspace

def typical_completion(db, model: str, purpose: str, max_tokens: int | None,
                       effort: str | None = None) -> tuple[int, str]:
    """(completion tokens per call, how it was found: ``"measured N"`` or ``"max_tokens"``)
    for ``model``'s ``purpose`` calls at reasoning ``effort`` (``None``: none sent)."""
    rows = completion_tokens(db, model, purpose, effort)
    if len(rows) >= MIN_MEASURED:
        return round(statistics.median(rows)), f"measured {len(rows)}"
    return int(max_tokens or RANK_MAX_TOKENS), "max_tokens"


def _completion_basis(found: dict[str, tuple[int, str]]) -> str:
    """One line saying how each purpose's completion length was found."""
    measured = [f"{p} {n} (median of {how.split()[1]} replies)"
                for p, (n, how) in found.items() if how.startswith("measured")]
    bound = [f"{p} {n}" for p, (n, how) in found.items() if how == "max_tokens"]
    parts = []
    if measured:
        parts.append("measured here: " + ", ".join(measured))
    if bound:
        parts.append("max_tokens, an upper bound (no replies of this model measured "
                     "here): " + ", ".join(bound))
    return "; ".join(parts)


def listing_tokens(model: str, calls: Sequence[PlannedCall], sample: int = 20) -> float:
    """Tokens per listed line of a ranking reply (``"3. Title"``), the mean over the
    candidates of up to ``sample`` distinct candidate lists among ``calls``."""
    lists = list(dict.fromkeys(c.listing for c in calls if c.listing))[:sample]
    if not lists:
        return 0.0
    tokens = lines = 0
    for cands in lists:
        text = "\n".join(f"{i}. {t}" for i, t in enumerate(cands, 1))
        tokens += count_tokens(model, [{"role": "assistant", "content": text}])
        lines += len(cands)
    return tokens / lines


def count_tokens(model: str, messages: Sequence[dict]) -> int:
    """litellm's ``token_counter`` on ``messages``."""
    return int(import_litellm().token_counter(model=model, messages=list(messages)))


def price(model: str, prompt_tokens: int, completion_tokens: int) -> tuple[float | None, str]:
    """(dollars, basis) from litellm's price table; (None, why) when it has no price."""
    if is_local_model(model):
        return 0.0, ""
    litellm = import_litellm()
    try:
        p, c = litellm.cost_per_token(model=model, prompt_tokens=int(prompt_tokens),
                                      completion_tokens=int(completion_tokens))
    except Exception:  # noqa: BLE001 - litellm raises for a model not in its table
        return None, "litellm's price table has no entry for this model"
    return float(p) + float(c), "litellm's price table"


# --------------------------------------------------------------------------- the estimate

def estimate(command: str, client, db, planned: Sequence[PlannedCall], *, dataset: str = "",
             workers: int = 1, stored: int = 0, upper_bound: bool = False,
             bound_basis: str = "", notes: Sequence[str] = ()) -> Estimate:
    """Count, price and time ``planned`` (see the module docstring).  Reads the workspace
    ``db`` only."""
    from re2llm_tui.costs.run_plan import REMOTE_CALL_S, measured_speed

    model = client.model
    local = is_local_model(model)
    profile = getattr(client, "profile", None)
    reasoning = bool(profile is not None and profile.is_reasoning)
    effort = profile.effort if profile is not None else None
    notes = list(notes)
    in_cache = cached_keys(db, (c.key for c in planned))
    seen: set[str] = set()
    to_pay: list[PlannedCall] = []
    cached = 0
    for c in planned:
        if c.key is not None and (c.key in in_cache or c.key in seen):
            cached += 1           # a hit, or a repeat of a request this plan already makes
            continue
        if c.key is not None:
            seen.add(c.key)
        to_pay.append(c)

    prompt_tokens = sum(count_tokens(model, c.messages) + c.extra_prompt_tokens for c in to_pay)
    completion_tokens = 0
    found: dict[str, tuple[int, str]] = {}
    per_purpose: dict[tuple[str, int | None], int] = {}
    for c in to_pay:
        k = (c.purpose, c.max_tokens)
        if k not in per_purpose:
            per_purpose[k], how = typical_completion(db, model, c.purpose, c.max_tokens,
                                                     effort)
            found.setdefault(c.purpose, (per_purpose[k], how))
        completion_tokens += per_purpose[k]

    if not to_pay:
        cost, price_basis = 0.0, "nothing to pay"
    else:
        cost, price_basis = price(model, prompt_tokens, completion_tokens)
    # rankings bounded by max_tokens only: what a reply listing k titles costs
    bounded = [c for c in to_pay if c.listing and found.get(c.purpose, (0, ""))[1] ==
               "max_tokens"]
    expected_completion = expected_cost = None
    if bounded:
        per_line = listing_tokens(model, bounded)
        # a reasoning model also bills its hidden reasoning: the stated per-effort assumption
        room = profile.reasoning_allowance if reasoning else 0

        def listed(c: PlannedCall) -> int:
            est = round(min(c.k, len(c.listing)) * per_line) + room
            return min(est, c.max_tokens) if c.max_tokens else est

        expected_completion = int(completion_tokens - sum(per_purpose[(c.purpose, c.max_tokens)]
                                                          for c in bounded)
                                  + sum(listed(c) for c in bounded))
        expected_cost = price(model, prompt_tokens, expected_completion)[0]
        if reasoning:
            source = (f"litellm's thinking budget for effort {effort}"
                      if profile.thinking_budget is not None else
                      f"an assumption for effort {effort or 'not set (medium)'}, "
                      "capabilities.REASONING_ALLOWANCE")
            notes.append(f"{model} is a reasoning model: its hidden reasoning is billed as "
                         f"output; the expected figure assumes {room} reasoning tokens per "
                         f"ranking ({source}; no replies of this model at this effort "
                         "measured here)")
    if reasoning and to_pay:
        limits = sorted({c.max_tokens for c in to_pay if c.max_tokens})
        if limits:
            notes.append(f"the upper bound is the output limit sent ({profile.limit_param} "
                         f"{', '.join(str(x) for x in limits)}, reasoning included)")

    speed = measured_speed(db, model, dataset, is_local=local, concurrency=client.concurrency)
    if local:
        groups: dict[str, int] = {}
        for i, c in enumerate(to_pay):
            g = c.group or f"call-{i}"
            groups[g] = groups.get(g, 0) + 1
        seconds = sum(speed.session_s(n) for n in groups.values()) / max(1, workers)
        time_basis = (f"local model, {speed.source}: {speed.first_s:.1f} s per call"
                      + (f", {speed.reuse_s:.1f} s per further hint of a session"
                         if any(n > 1 for n in groups.values()) else "")
                      + (f", {workers} workers" if workers > 1 else ""))
    else:
        seconds = len(to_pay) * speed.first_s / max(1, workers)
        lat = speed.first_s * max(1, client.concurrency)
        src = speed.source if speed.source != "an assumed remote latency" else \
            f"assumed {REMOTE_CALL_S:g} s per call (no calls of this model measured here)"
        time_basis = (f"calls x {lat:.2f} s latency / {client.concurrency} in flight"
                      + (f" / {workers} client processes" if workers > 1 else "")
                      + f"; latency {src}")
    return Estimate(command=command, model=model, is_local=local, calls=len(planned),
                    cached=cached, to_pay=len(to_pay), prompt_tokens=int(prompt_tokens),
                    completion_tokens=int(completion_tokens), cost=cost, seconds=seconds,
                    completion_basis=_completion_basis(found), price_basis=price_basis,
                    time_basis=time_basis, upper_bound=upper_bound, bound_basis=bound_basis,
                    stored=stored, notes=notes,
                    expected_completion_tokens=expected_completion, expected_cost=expected_cost)
