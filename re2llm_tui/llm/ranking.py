"""How a ranking call gets ``k`` distinct real candidates, each chosen by the model.

A 135M model asked to "list 10 recommendations" mostly invents or repeats titles, so for
the embedded local model the ranking is decoded *inside* the candidate set:

* ``logprob`` -- candidate log-likelihood scoring: the chat prompt plus ``"1."`` is evaluated
  once; each candidate title (``" title\\n"``) is scored by its mean token log-probability as
  the first list item; the ``k`` best are the ranking.
* ``sequential`` -- sequential constrained choice: greedy decoding of a numbered list where,
  at each token, only tokens that continue one of the not-yet-chosen candidates are allowed
  (a token trie, equivalent to a grammar of the remaining titles); after each title the
  list number is appended and the chosen title is removed.
* ``generate`` -- free generation of the list, then :func:`re2llm_tui.llm.parsing.parse_ranking`
  (what any remote model does; may yield fewer than ``k`` items and hallucinations).

:data:`DEFAULT_LOCAL_METHOD` was picked by measuring the methods on 100 test sessions of each
dataset (``benchmarks/bench_llm_ranking.py``; figures in the README).  Each method has a
version string that is part of the cache key: change the method, bump its version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

#: picked by measurement on 100 test sessions of each dataset (random: HR@10 .200, NDCG@10 .091):
#: sequential games .240/.166, movies .220/.117; logprob games .320/.159, movies .160/.083.
#: No difference is significant (paired bootstrap); sequential has the higher NDCG@10 on
#: both datasets, is not below random on either, and takes half the time.
DEFAULT_LOCAL_METHOD = "sequential"


@dataclass(frozen=True)
class Method:
    name: str
    version: str
    fn: Callable
    description: str


@dataclass
class RankOutput:
    """What a ranking method returns (the local engine's answer to a ranking call)."""

    text: str
    ranking: list[int]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    scores: list[float] = field(default_factory=list)
    #: prompt tokens whose KV cache was reused (not decoded); ``prompt_tokens`` is the total
    cached_tokens: int = 0


def format_ranking(titles) -> str:
    """The reply text of a ranking: a numbered list, one title per line."""
    return "\n".join(f"{i}. {t}" for i, t in enumerate(titles, 1))


def _log_softmax(row):
    import numpy as np

    m = row.max()
    return row - (m + np.log(np.exp(row - m).sum()))


def _prefix(lm, prompt: str) -> list[int]:
    text = lm.chat_prompt([{"role": "user", "content": prompt}]) + "1."
    return lm.tokenize(text, special=True)


def _cand_tokens(lm, title: str) -> list[int]:
    return lm.tokenize_cached(" " + title + "\n")


def rank_logprob(lm, prompt: str, candidates: list[str], k: int = 10):
    """Candidate log-likelihood scoring (see module docstring).  Caller holds ``lm.lock``."""
    prefix = _prefix(lm, prompt)
    last, reused = lm.prefill(prefix, "last")
    first = _log_softmax(last)
    n = len(prefix)
    scores: list[float] = []
    seen: dict[tuple, float] = {}
    evaluated = 0
    for title in candidates:
        toks = _cand_tokens(lm, title)
        key = tuple(toks)
        if key in seen:
            scores.append(seen[key])
            continue
        total = float(first[toks[0]])
        if len(toks) > 1:
            rows = lm.decode(toks[:-1], n, "all")
            evaluated += len(toks) - 1
            for row, tok in zip(rows, toks[1:]):
                total += float(_log_softmax(row)[tok])
        seen[key] = total / len(toks)
        scores.append(seen[key])
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))[:k]
    return RankOutput(text=format_ranking(candidates[i] for i in order), ranking=order,
                      prompt_tokens=n, completion_tokens=evaluated, scores=scores,
                      cached_tokens=reused)


def _choose_title(lm, remaining: dict[int, list[int]], logits, n_past: int):
    """Greedy choice of one title among ``remaining``, token by token (the trie walk).

    Each chosen token is decoded (alone, as always) while more than one title can still
    follow; returns ``(pick, n_past, decoded, end)`` where ``end`` holds the title's last
    tokens, *not* decoded yet: their logits only matter if another title follows.
    """
    alive = list(remaining)
    pos = decoded = 0
    while True:
        allowed = {remaining[i][pos] for i in alive if len(remaining[i]) > pos}
        tok = max(allowed, key=lambda t: (float(logits[t]), -t))
        alive = [i for i in alive if len(remaining[i]) > pos and remaining[i][pos] == tok]
        pos += 1
        done = [i for i in alive if len(remaining[i]) == pos]
        if done:
            return done[0], n_past, decoded, [tok]
        if len(alive) == 1:
            # no choice left: the rest of this title is forced
            return alive[0], n_past, decoded, remaining[alive[0]][pos - 1:]
        logits = lm.decode([tok], n_past, "last")
        n_past += 1
        decoded += 1


def rank_sequential(lm, prompt: str, candidates: list[str], k: int = 10):
    """Sequential constrained choice over the remaining candidates.  Caller holds ``lm.lock``.

    The end of a title is decoded only if another title follows: alone when it is a single
    token (as it always was: a lone token's KV cells differ slightly from a batch's), else in
    one batch with the next list number (multi-token batches give the same cells however they
    are split, so the ranking is the same as decoding them one after the other).
    """
    prefix = _prefix(lm, prompt)
    logits, reused = lm.prefill(prefix, "last")
    n_past = len(prefix)
    remaining = {i: _cand_tokens(lm, t) for i, t in enumerate(candidates)}
    chosen: list[int] = []
    generated = 0
    pending: list[int] = []          # a title's end, decoded with the next list number
    for step in range(min(k, len(candidates))):
        if step:
            todo = pending + lm.tokenize_cached(f"{step + 1}.")
            logits = lm.decode(todo, n_past, "last")
            n_past += len(todo)
            generated += len(todo) - len(pending)
            pending = []
        pick, n_past, decoded, end = _choose_title(lm, remaining, logits, n_past)
        generated += decoded + len(end)
        last = step == min(k, len(candidates)) - 1
        if len(end) == 1 and not last:
            logits = lm.decode(end, n_past, "last")
            n_past += 1
        elif not last:
            pending = end
        chosen.append(pick)
        del remaining[pick]
    return RankOutput(text=format_ranking(candidates[i] for i in chosen), ranking=chosen,
                      prompt_tokens=len(prefix), completion_tokens=generated,
                      cached_tokens=reused)


def rank_generate(lm, prompt: str, candidates: list[str], k: int = 10):
    """Free generation + parse_ranking.  Caller holds ``lm.lock``."""
    from re2llm_tui.llm.decoding import RANK_MAX_TOKENS
    from re2llm_tui.llm.parsing import parse_ranking

    out = lm.chat_output([{"role": "user", "content": prompt}], temperature=0.0, seed=0,
                         max_tokens=RANK_MAX_TOKENS)
    parsed = parse_ranking(out.text, candidates, k)
    return RankOutput(text=out.text, ranking=list(parsed.ranking),
                      prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
                      cached_tokens=out.cached_tokens)


#: v2 (all three): the engine decodes prompts in 64-token chunks and never leaves one token
#: alone in a batch (a lone token's KV cells differ slightly).  v1 decoded 512-token chunks,
#: so a prompt of 512k+1 tokens ended with a lone token: 12 of the 25,200 (session, action)
#: prompts of the release data (train+test, 21 actions), of which 2 of the 10 measured
#: got another sequential ranking.  Every other prompt ranks exactly as in v1.
METHODS: dict[str, Method] = {
    "logprob": Method("logprob", "logprob-v2", rank_logprob,
                      "candidate log-likelihood scoring (mean token log-prob as first item)"),
    "sequential": Method("sequential", "sequential-v2", rank_sequential,
                         "sequential constrained choice over the remaining candidates"),
    "generate": Method("generate", "generate-v2", rank_generate,
                       "free generation, then parse_ranking"),
}
