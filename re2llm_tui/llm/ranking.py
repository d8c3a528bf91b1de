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
* ``generate`` -- free generation of the list, then :func:`re2llm_tui.parsing.parse_ranking`
  (what any remote model does; may yield fewer than ``k`` items and hallucinations).

:data:`DEFAULT_LOCAL_METHOD` was picked by measuring the methods on 100 test sessions of each
dataset (``benchmarks/bench_llm_ranking.py``; figures in the README).  Each method has a
version string that is part of the cache key: change the method, bump its version.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    return lm.tokenize(" " + title + "\n")


def rank_logprob(lm, prompt: str, candidates: list[str], k: int = 10):
    """Candidate log-likelihood scoring (see module docstring).  Caller holds ``lm.lock``."""
    from .local import RankOutput

    prefix = _prefix(lm, prompt)
    first = _log_softmax(lm.decode(prefix, 0, "last"))
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
                      prompt_tokens=n, completion_tokens=evaluated, scores=scores)


def rank_sequential(lm, prompt: str, candidates: list[str], k: int = 10):
    """Sequential constrained choice over the remaining candidates.  Caller holds ``lm.lock``."""
    from .local import RankOutput

    prefix = _prefix(lm, prompt)
    logits = lm.decode(prefix, 0, "last")
    n_past = len(prefix)
    cand = {i: _cand_tokens(lm, t) for i, t in enumerate(candidates)}
    remaining = dict(cand)
    chosen: list[int] = []
    generated = 0
    for step in range(min(k, len(candidates))):
        if step:
            num = lm.tokenize(f"{step + 1}.")
            logits = lm.decode(num, n_past, "last")
            n_past += len(num)
            generated += len(num)
        alive = list(remaining)
        pos = 0
        while True:
            allowed = {remaining[i][pos] for i in alive if len(remaining[i]) > pos}
            tok = max(allowed, key=lambda t: (float(logits[t]), -t))
            alive = [i for i in alive if len(remaining[i]) > pos and remaining[i][pos] == tok]
            pos += 1
            done = [i for i in alive if len(remaining[i]) == pos]
            if done:
                logits = lm.decode([tok], n_past, "last")
                n_past += 1
                generated += 1
                pick = done[0]
                break
            if len(alive) == 1:
                # no choice left: the rest of this title is forced, evaluate it in one batch
                rest = remaining[alive[0]][pos - 1:]
                logits = lm.decode(rest, n_past, "last")
                n_past += len(rest)
                generated += len(rest)
                pick = alive[0]
                break
            logits = lm.decode([tok], n_past, "last")
            n_past += 1
            generated += 1
        chosen.append(pick)
        del remaining[pick]
    return RankOutput(text=format_ranking(candidates[i] for i in chosen), ranking=chosen,
                      prompt_tokens=len(prefix), completion_tokens=generated)


def rank_generate(lm, prompt: str, candidates: list[str], k: int = 10):
    """Free generation + parse_ranking.  Caller holds ``lm.lock``."""
    from ..parsing import parse_ranking
    from .local import RankOutput

    from .client import RANK_MAX_TOKENS

    text, pt, ct = lm.chat([{"role": "user", "content": prompt}], temperature=0.0, seed=0,
                           max_tokens=RANK_MAX_TOKENS)
    parsed = parse_ranking(text, candidates, k)
    return RankOutput(text=text, ranking=list(parsed.ranking), prompt_tokens=pt,
                      completion_tokens=ct)


METHODS: dict[str, Method] = {
    "logprob": Method("logprob", "logprob-v1", rank_logprob,
                      "candidate log-likelihood scoring (mean token log-prob as first item)"),
    "sequential": Method("sequential", "sequential-v1", rank_sequential,
                         "sequential constrained choice over the remaining candidates"),
    "generate": Method("generate", "generate-v1", rank_generate,
                       "free generation, then parse_ranking"),
}
