"""Parse an LLM reply into a ranked list of candidates.

Accepts numbered or bulleted lines, markdown bold, quotes, trailing years or platforms,
entity-encoded or not.  A reasoning model's thinking block is split off first
(:func:`~re2llm_tui.llm.thinking.answer_of`).  Each item is matched to the 50 candidates exactly after
normalisation, then by a conservative fuzzy match; duplicates are dropped from the
*ranking*, and items that match nothing are kept as *hallucinations* for reporting.  Never
raises on any string.

Rank accounting (:func:`target_rank`, the one function every caller scores with):

* ``reply`` (the default, :data:`DEFAULT_RANK_BY`): the target's rank is its 1-based position
  among the reply's *listed items* (:attr:`ParsedRanking.positions`); invented titles and
  repeats keep their slots, and only the target's first occurrence counts.  This is the
  release's reward and the usual reading of "position in the LLM's list".
* ``candidates``: its position in the matched-only ranking (hallucinations and duplicates
  dropped first): a target listed 7th after two invented titles counts 5th.

A listed item is a line that matches a candidate or is reported as a hallucination; a
preamble ("Here are my recommendations:") is not one.  The local engine decodes inside the
candidate set, so its reply is its ranking and both accountings agree
(:func:`reply_ranking`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Sequence

from re2llm_tui.data.release import unescape
from re2llm_tui.llm.thinking import answer_of

_LIST_PREFIX = re.compile(
    r"""^\s*(?:
        \d{1,3}\s*[.):\]]\s+                 # 1.  1)  1:
      | \d{1,3}[.)](?=[A-Z"“'])              # 1.Title (bold markers removed)
      | [a-zA-Z]\)\s+                        # a)
      | \[\d{1,3}\]\s*
      | \#{1,6}\s*
      | [-*+•·‣–—]\s+
      | (?:rank|no\.?|number)\s*\d{1,3}\s*[:.)-]\s*
    )""",
    re.X | re.I,
)
_MARKUP = re.compile(r"(\*\*|__|\*|`|~~)")
_QUOTES = "\"'“”‘’«»"
_TRAILERS = [
    re.compile(r"\s*\((?:19|20)\d\d\)\s*$"),                       # (1995)
    re.compile(r"\s*[-–—:]\s*(?:because|this|it|a|an|the)\b.*$", re.I),  # - because ...
    re.compile(r"\s+\((?:[^()]{0,40})\)\s*$"),                    # (PS4) (Xbox 360)
]
_WORD = re.compile(r"[a-z0-9]+")
FUZZY_CUTOFF = 0.88
MAX_ITEMS = 200


def normalize(title: str) -> str:
    """Lower-case, entity-decoded, punctuation-free, whitespace-collapsed title key."""
    return " ".join(_WORD.findall(unescape(title).lower()))


#: how a target's rank is counted (see the module docstring)
RANK_BY = ("reply", "candidates")
DEFAULT_RANK_BY = "reply"


def check_rank_by(rank_by: str | None) -> str:
    """``rank_by`` validated (``None``: the default); a one-line :class:`UserError` otherwise."""
    if rank_by is None:
        return DEFAULT_RANK_BY
    if rank_by not in RANK_BY:
        from re2llm_tui.errors import UserError

        raise UserError(f"unknown --rank-by {rank_by!r}: choose {' or '.join(RANK_BY)}")
    return rank_by


@dataclass
class ParsedRanking:
    ranking: list[int] = field(default_factory=list)        # candidate indices, best first
    hallucinations: list[str] = field(default_factory=list)  # items matching no candidate
    items: list[str] = field(default_factory=list)          # every cleaned item, in order
    duplicates: int = 0
    #: per listed item, in reply order: the candidate index it matched (repeats too), or
    #: None for a hallucinated title
    positions: list[int | None] = field(default_factory=list)

    @classmethod
    def of_ranking(cls, ranking: Sequence[int]) -> ParsedRanking:
        """The answer of an engine that ranks inside the candidate set: the list is the reply."""
        ranking = [int(i) for i in ranking]
        return cls(ranking=ranking, positions=list(ranking))

    # -- per-reply counts read by metrics.summarize (valid-output rate and friends)
    @property
    def listed(self) -> int:
        """Listed items (matched or hallucinated)."""
        return len(self.positions)

    @property
    def valid(self) -> int:
        """Listed items that match a candidate (a repeat matches too)."""
        return sum(1 for p in self.positions if p is not None)

    @property
    def distinct(self) -> int:
        """Distinct candidates in the ranking (at most its ``k``)."""
        return len(self.ranking)


def split_items(reply: str) -> list[str]:
    """Cleaned list items of a reply (one per line; a single line split on ';')."""
    if not isinstance(reply, str):
        return []
    text = reply.replace("\r", "\n")
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) == 1 and ";" in lines[0] and not _LIST_PREFIX.match(lines[0]):
        lines = [p for p in lines[0].split(";") if p.strip()]
    out = []
    for line in lines[:MAX_ITEMS]:
        item = clean_item(line)
        if item:
            out.append(item)
    return out


def clean_item(line: str) -> str:
    item = _LIST_PREFIX.sub("", _MARKUP.sub("", line).strip(), count=1).strip()
    item = _MARKUP.sub("", item).strip()
    item = item.strip(_QUOTES + " \t").rstrip(".,;").strip(_QUOTES + " ")
    return unescape(item)


def _variants(item: str) -> list[str]:
    """The item, then with trailing years/platforms/explanations removed."""
    out = [item]
    cur = item
    for rx in _TRAILERS:
        nxt = rx.sub("", cur).strip()
        if nxt and nxt != cur:
            out.append(nxt)
            cur = nxt
    # "Title - by Director" / "Title: explanation" (only if the rest is long)
    return out


class CandidateMatcher:
    """Match free-text items to a fixed candidate list."""

    def __init__(self, candidates: Sequence[str]):
        self.candidates = list(candidates)
        self.keys = [normalize(c) for c in self.candidates]
        self.exact: dict[str, int] = {}
        for i, k in enumerate(self.keys):
            self.exact.setdefault(k, i)

    def match(self, item: str) -> int | None:
        for variant in _variants(item):
            key = normalize(variant)
            if not key:
                continue
            if key in self.exact:
                return self.exact[key]
        key = normalize(item)
        if len(key) < 4:
            return None
        # a candidate that the item starts with / contains wholly (item adds a platform or a note)
        best, best_len = None, 0
        for i, ck in enumerate(self.keys):
            if len(ck) >= 6 and (key.startswith(ck + " ") or key.endswith(" " + ck)):
                if len(ck) > best_len:
                    best, best_len = i, len(ck)
        if best is not None:
            return best
        # the item is a prefix of exactly one candidate (model truncated a long title)
        pref = [i for i, ck in enumerate(self.keys) if len(key) >= 12 and ck.startswith(key)]
        if len(pref) == 1:
            return pref[0]
        close = difflib.get_close_matches(key, self.keys, n=2, cutoff=FUZZY_CUTOFF)
        if close and (len(close) == 1 or close[0] != close[1]):
            return self.keys.index(close[0])
        return None


def parse_ranking(reply: str, candidates: Sequence[str], k: int = 10) -> ParsedRanking:
    """Ranked distinct candidate indices (at most ``k``) from a free-text reply.

    Only the answer is read: a model's thinking (``<think>...</think>``, see
    :mod:`re2llm_tui.llm.thinking`) is split off first, so numbered titles inside it are
    never ranked; a reply already split comes through unchanged."""
    result = ParsedRanking()
    try:
        reply = answer_of(reply)
        matcher = CandidateMatcher(candidates)
        seen: set[int] = set()
        for item in split_items(reply):
            result.items.append(item)
            idx = matcher.match(item)
            if idx is None:
                if _looks_like_title(item):
                    result.hallucinations.append(item)
                    result.positions.append(None)
                continue
            result.positions.append(idx)
            if idx in seen:
                result.duplicates += 1
                continue
            seen.add(idx)
            if len(result.ranking) < k:
                result.ranking.append(idx)
    except Exception:  # pragma: no cover - defensive: a parser must never crash a run
        return result
    return result


def reply_ranking(text: str, ranking: Sequence[int], candidates: Sequence[str], *,
                  rank_method: str = "generate", k: int = 10) -> ParsedRanking:
    """A ranking call's answer as a :class:`ParsedRanking` with its reply positions.

    A generated reply (``rank_method`` ``generate``: every remote model) is parsed from its
    text, exactly as the client parsed it; the local engine's other methods decode inside
    the candidate set, so their reply *is* ``ranking`` (10 distinct real candidates).
    Cached results carry no positions, so this reads the text, never a stored field.
    """
    if rank_method != "generate":
        return ParsedRanking.of_ranking(ranking)
    return parse_ranking(text, candidates, k)


def target_rank(parsed: ParsedRanking, target_index: int,
                rank_by: str = DEFAULT_RANK_BY) -> int | None:
    """1-based rank of the target (``None``: not listed) under ``rank_by``.

    ``reply``: the position of the target's first occurrence among the listed items;
    ``candidates``: its position in the matched-only, de-duplicated ranking.
    """
    order = parsed.ranking if check_rank_by(rank_by) == "candidates" else parsed.positions
    for pos, idx in enumerate(order, 1):
        if idx == target_index:
            return pos
    return None


def _looks_like_title(item: str) -> bool:
    """Skip preambles ("Here are my recommendations:") when reporting hallucinations."""
    return len(item) <= 200 and not item.rstrip().endswith(":")
