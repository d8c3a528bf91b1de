"""The checks a proposed hint must pass before it joins the KB, cheapest first.

1. **leak** (:func:`re2llm_tui.exploration.leak.leak_of`): it must not reveal the target;
2. **duplicate**: not the text of a hint already in the KB (any status, so a hint a person
   rejected does not come back);
3. **non-redundancy, embeddings**: cosine similarity (all-MiniLM-L6-v2) to every accepted or
   candidate hint below ``sim_threshold``; the most similar hint is kept as provenance;
4. **effectiveness**: the original prompt with the hint appended is ranked again; the hint
   is kept if the target enters the top ``effect_k`` (``effect_mode="enter"``) or, with
   ``effect_mode="improve"``, if NDCG@``effect_k`` improves;
5. **non-redundancy, as the paper**: the LLM is asked whether the hint conveys an idea
   similar to one of the existing hints (the ``llm_compare_n`` most similar by embedding).

A survivor is added to the KB (``candidate``, or ``accepted`` with ``auto_accept``) with its
provenance; every re-ask and question is recorded with the reflection.
"""

from __future__ import annotations

import re

from re2llm_tui.data.release import Session
from re2llm_tui.rank_metrics import ndcg_at
from re2llm_tui.llm.parsing import reply_ranking, target_rank
from re2llm_tui.llm.thinking import answer_of
from re2llm_tui.exploration.config import HintCheck, ReflectConfig
from re2llm_tui.exploration.leak import leak_of
from re2llm_tui.kb import KnowledgeBase
from re2llm_tui.prompts import recommend_prompt, redundancy_prompt


class Failed(Exception):
    """An LLM call failed after its retries (the session is marked failed, the run goes on)."""


def check_ok(res) -> None:
    if not res.ok:
        raise Failed(res.error)


def parse_yes_no(reply: str, n: int) -> tuple[bool | None, int | None]:
    """(similar?, 1-based number) from a "Yes, 3" / "No" reply; (None, None) if unclear.
    A thinking block before the answer is skipped (its "yes" or "no" is not the answer)."""
    reply = answer_of(reply)
    m = re.match(r"\W*(yes|no)\b", reply or "", re.I)
    if not m:
        return None, None
    if m.group(1).lower() == "no":
        return False, None
    num = re.search(r"\d+", reply[m.end():])
    k = int(num.group(0)) if num else None
    return True, k if k is not None and 1 <= k <= n else None


async def check_hint(kb: KnowledgeBase, client, rec, session: Session, config: ReflectConfig, c: HintCheck,
                     rank: int | None, ndcg_without: float, *, encoder=None,
                     common: frozenset[str] = frozenset()) -> None:
    """Run the checks on ``c`` in order; its ``verdict`` says where it stopped (``added``
    when it survived).  ``rec`` is the reflection's
    :class:`~re2llm_tui.store.reflections.ReflectionWriter`; ``kb`` the dataset's
    :class:`~re2llm_tui.kb.KnowledgeBase`, which a survivor joins."""
    from re2llm_tui import embeddings

    c.leak = leak_of(c.text, session.target, common)
    if c.leak:
        c.verdict = "leak"
        return
    dup = kb.find_duplicate(c.text)
    if dup is not None:
        c.verdict, c.similar_id, c.similarity = "duplicate", dup.id, 1.0
        return
    existing = kb.hints(("accepted", "candidate"))
    sims = None
    if existing:
        vecs = embeddings.encode([c.text, *[h.text for h in existing]], db=kb.db, encoder=encoder)
        sims = embeddings.cosine_matrix(vecs[:1], vecs[1:])[0]
        best = int(sims.argmax())
        c.similar_id, c.similarity = existing[best].id, round(float(sims[best]), 4)
        if c.similarity >= config.sim_threshold:
            c.verdict = "redundant"
            return
    if not await _effective(client, rec, session, config, c, rank, ndcg_without):
        c.verdict = "ineffective"
        return
    if config.llm_redundancy and existing and await _llm_says_redundant(
            client, rec, config, c, existing, sims):
        c.verdict = "redundant"
        return
    effect = {"rank_without": c.rank_without, "rank_with": c.rank_with,
              "ndcg_without": c.ndcg_without, "ndcg_with": c.ndcg_with,
              "k": config.effect_k, "mode": config.effect_mode}
    hint = kb.add(c.text, status="accepted" if config.auto_accept else "candidate",
                  source="reflection", session_id=session.id, reflection_id=rec.id,
                  effect=effect, similar_id=c.similar_id, similarity=c.similarity)
    c.hint_id, c.verdict = hint.id, "added"


async def _effective(client, rec, session: Session, config: ReflectConfig, c: HintCheck,
                     rank: int | None, ndcg_without: float) -> bool:
    """Re-ask with the hint appended to the original prompt; record both outcomes."""
    hinted = recommend_prompt(session.prompt, c.text)
    res = await client.rank(hinted, session.candidates, k=config.rank_k)
    rec.message("effect", "user", hinted, proposal=c.idx)
    rec.message("effect", "assistant", answer_of(res.text), proposal=c.idx,
                source="llm", call_id=res.call_id)
    check_ok(res)
    c.rank_without, c.ndcg_without = rank, round(ndcg_without, 6)
    c.rank_with = target_rank(reply_ranking(res.text, res.ranking, session.candidates,
                                            rank_method=client.rank_method, k=config.rank_k),
                              session.target_index)
    c.ndcg_with = round(ndcg_at(c.rank_with, config.effect_k), 6)
    entered = c.rank_with is not None and c.rank_with <= config.effect_k
    return entered if config.effect_mode == "enter" else c.ndcg_with > c.ndcg_without


async def _llm_says_redundant(client, rec, config: ReflectConfig, c: HintCheck, existing,
                              sims) -> bool:
    """The paper's redundancy check: ask the LLM, showing the most similar existing hints."""
    order = sorted(range(len(existing)), key=lambda i: -float(sims[i]))[:config.llm_compare_n]
    shown = [existing[i] for i in order]
    prompt = redundancy_prompt([h.text for h in shown], c.text)
    rec.message("redundancy", "user", prompt, proposal=c.idx)
    res = await client.complete([{"role": "user", "content": prompt}],
                                purpose="reflect:redundancy", max_tokens=16)
    answer = answer_of(res.text)
    rec.message("redundancy", "assistant", answer, proposal=c.idx,
                source="llm", call_id=res.call_id)
    check_ok(res)
    c.llm_reply = " ".join(answer.split())[:200]
    similar, number = parse_yes_no(answer, len(shown))
    if similar:
        c.llm_similar_id = shown[number - 1].id if number else shown[0].id
        return True
    return False
