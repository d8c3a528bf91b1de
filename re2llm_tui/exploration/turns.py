"""The reflection conversation with the LLM, four turns (Re2LLM, Reflective Exploration):

1. the recommendation itself (a stored no-hint reply of the same model is reused when the
   workspace has one);
2. "none of these is the target: infer the possible mistakes";
3. "the correct answer is <target>: analyse from several aspects why it was missed";
4. "give short imperative hints for trying again, without revealing the target".

Every message is recorded with the reflection as it happens.  Only a reply's answer is
recorded and sent back in the conversation: a reasoning model's thinking
(:mod:`re2llm_tui.llm.thinking`) stays with its call (``calls.reasoning``), so no reflection
row holds thinking text and the next turn does not see it (providers drop earlier turns'
thinking from the context too).

Turns 2-4 are one plan, :func:`next_turn` (the next request given the replies so far):
:func:`reflection_turns` sends it, the cost estimate
(:func:`re2llm_tui.costs.dry_run.explore`) looks each request up in the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from re2llm_tui.data.release import Session
from re2llm_tui.llm.parsing import reply_ranking, target_rank
from re2llm_tui.llm.thinking import answer_of
from re2llm_tui.exploration.checks import check_ok
from re2llm_tui.exploration.config import ReflectConfig
from re2llm_tui.prompts import (
    reflection_analysis_prompt,
    reflection_hints_prompt,
    reflection_mistakes_prompt,
)


async def recommend_turn(db, client, rec, session: Session,
                         config: ReflectConfig) -> tuple[str, int | None]:
    """Turn 1: ``(reply, target rank)`` -- stored or asked, recorded either way."""
    from re2llm_tui.store.runs import stored_baseline

    stored = None
    if config.use_stored_baseline or config.baseline_run is not None:
        stored = stored_baseline(db, session, client.model, run_id=config.baseline_run)
    if stored is not None:
        reply, ranking, source, call_id = stored["reply"], stored["ranking"], stored["source"], None
        method = "generate" if stored.get("reply") else client.rank_method
    else:
        res = await client.rank(session.prompt, session.candidates, k=config.rank_k)
        check_ok(res)
        ranking = list(res.ranking)
        reply = answer_of(res.text) or "\n".join(f"{i}. {session.candidates[c]}"
                                                for i, c in enumerate(ranking, 1))
        source, call_id, method = "llm", res.call_id, client.rank_method
    reply = answer_of(reply)
    # the same rank accounting as score, recommend, rewards and evaluate (reply positions)
    rank = target_rank(reply_ranking(reply, ranking, session.candidates, rank_method=method,
                                     k=config.rank_k), session.target_index)
    rec.message("recommend", "user", session.prompt, turn=1)
    rec.message("recommend", "assistant", reply, turn=1, source=source, call_id=call_id)
    rec.baseline(source, ranking, rank)
    return reply, rank


@dataclass(frozen=True)
class TurnRequest:
    """One reflection turn's request: the conversation to send, its new prompt last."""

    turn: int                   # 2..4
    kind: str                   # mistakes, analysis, hints
    prompt: str
    messages: list[dict]
    decoding: dict

    @property
    def purpose(self) -> str:
        return f"reflect:{self.kind}"


def next_turn(session: Session, config: ReflectConfig, reply: str | None,
              answers: Sequence[str | None]) -> TurnRequest | None:
    """The next request of turns 2-4 after the recommendation ``reply`` and the answers of
    the turns so far (None after turn 4).  A reply not known (``None``: an estimate's call
    not in the cache) is left out of the conversation."""
    kinds = (("mistakes", reflection_mistakes_prompt),
             ("analysis", lambda: reflection_analysis_prompt(session.target)),
             ("hints", lambda: reflection_hints_prompt(config.max_hints)))
    if len(answers) >= len(kinds):
        return None
    messages = [{"role": "user", "content": session.prompt}]
    said = [reply, *answers]
    prompts = [make() for _, make in kinds[:len(answers) + 1]]
    for i, prompt in enumerate(prompts):
        if said[i] is not None:
            messages.append({"role": "assistant", "content": said[i]})
        messages.append({"role": "user", "content": prompt})
    decoding = {"max_tokens": config.turn_max_tokens} if config.turn_max_tokens else {}
    return TurnRequest(len(answers) + 2, kinds[len(answers)][0], prompts[-1], messages,
                       decoding)


async def reflection_turns(client, rec, session: Session, reply: str, config: ReflectConfig,
                           on_turn=None) -> str:
    """Turns 2-4 after the recommendation ``reply`` (:func:`next_turn`, sent); returns
    turn 4's reply (the hints)."""
    answers: list[str] = []
    while (req := next_turn(session, config, reply, answers)) is not None:
        if on_turn is not None:
            on_turn(req.turn)
        rec.message(req.kind, "user", req.prompt, turn=req.turn)
        res = await client.complete(req.messages, purpose=req.purpose, **req.decoding)
        check_ok(res)
        answer = answer_of(res.text)
        answers.append(answer)
        rec.message(req.kind, "assistant", answer, turn=req.turn, source="llm",
                    call_id=res.call_id)
    return answers[-1]
