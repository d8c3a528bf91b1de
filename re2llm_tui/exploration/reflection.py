"""Reflective Exploration (Re2LLM, Sec. "Reflective Exploration Module").

For a session the LLM misses (the target is not in its top ``miss_k``), a four-turn
conversation with the same LLM:

1. the recommendation itself (a stored baseline reply is reused when the workspace has one);
2. "none of these is the target: infer the possible mistakes";
3. "the correct answer is <target>: analyse from several aspects why it was missed";
4. "give short imperative hints for trying again, without revealing the target".

The turns live in :mod:`~re2llm_tui.exploration.turns`, the parsing of turn 4 in
:mod:`~re2llm_tui.exploration.hints`, and the checks each hint then passes, cheapest first,
in :mod:`~re2llm_tui.exploration.checks` (the leak check in
:mod:`~re2llm_tui.exploration.leak`):

* **leak check** (:func:`leak_of`): the hint must not name the target or a distinctive part
  of its title;
* **duplicate**: not the text of a hint already in the KB (any status, so a hint a person
  rejected does not come back);
* **non-redundancy, embeddings**: cosine similarity (all-MiniLM-L6-v2) to every accepted or
  candidate hint below ``sim_threshold``; the most similar hint is recorded as provenance;
* **effectiveness**: the original prompt with the hint appended is ranked again; the hint
  is kept if the target enters the top ``effect_k`` (``effect_mode="enter"``) or, with
  ``effect_mode="improve"``, if NDCG@``effect_k`` improves; both ranks and NDCGs are stored;
* **non-redundancy, as the paper**: the LLM is asked whether the hint conveys an idea
  similar to one of the existing hints (the ``llm_compare_n`` most similar by embedding).

Survivors become ``candidate`` hints (``accepted`` with ``auto_accept``).  Every message of
every conversation (the four turns, each effectiveness re-ask, each redundancy question) is
stored in ``reflection_turns``; every proposed hint and the outcome of each check in
``reflection_hints``; the hints added point back to their reflection and session.

:func:`explore` runs this over a split, resumably (sessions already reflected, or already
hit by the baseline, with the same model and prompt version are skipped), and stops cleanly
when the client raises :class:`~re2llm_tui.llm.client.BudgetExceeded`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

from re2llm_tui.data.dataset import Dataset, require

from re2llm_tui.data.release import Session
from re2llm_tui.errors import UserError
from re2llm_tui.rank_metrics import ndcg_at
from re2llm_tui.exploration.checks import Failed, check_hint
from re2llm_tui.exploration.config import (  # noqa: F401 - the public names of exploration
    EFFECT_MODES,
    ExploreProgress,
    ExploreSummary,
    HintCheck,
    ReflectConfig,
    SessionOutcome,
)
from re2llm_tui.exploration.hints import parse_hints
from re2llm_tui.exploration.leak import leak_of  # noqa: F401
from re2llm_tui.exploration.turns import recommend_turn, reflection_turns
from re2llm_tui.kb import KnowledgeBase
from re2llm_tui.prompts import REFLECTION_VERSION
from re2llm_tui.store.reflections import (  # noqa: F401 - readers re-exported
    ReflectionWriter,
    explored_sessions,
    reflection_record,
    reflections_of,
)


# --------------------------------------------------------------------------- one session

def _finish(rec: ReflectionWriter, status: str, checks, error: str | None = None) -> None:
    rec.finish(status, {
        "n_proposed": len(checks),
        "n_leak": sum(c.verdict == "leak" for c in checks),
        "n_ineffective": sum(c.verdict == "ineffective" for c in checks),
        "n_redundant": sum(c.verdict in ("redundant", "duplicate") for c in checks),
        "n_added": sum(c.verdict == "added" for c in checks),
    }, error)


def _close_pending(rec: ReflectionWriter, checks, verdict: str) -> None:
    """Record every hint whose checks never ran with ``verdict``."""
    for c in checks:
        if c.verdict == "pending":
            c.verdict = verdict
            rec.proposal(asdict(c))


async def reflect_session(db, client, session: Session, config: ReflectConfig | None = None, *,
                          kb: KnowledgeBase, encoder=None, common: frozenset[str] = frozenset(),
                          on_stage: Callable[[str], None] | None = None) -> SessionOutcome:
    """Reflect on one session (see the module docstring); the KB (``kb``: the handle the
    caller made from its Dataset) gets the surviving hints.

    Raises :class:`~re2llm_tui.control.RunStop` (after marking the reflection ``stopped``);
    an LLM call that fails after its retries marks the reflection ``failed`` and returns.
    """
    from re2llm_tui.control import RunStop

    config = config or ReflectConfig()
    config.validate()
    stage = on_stage or (lambda s: None)
    rec = ReflectionWriter(db, dataset=session.domain, session_id=session.id,
                           model=client.model, prompt_version=REFLECTION_VERSION,
                           params={**asdict(config),
                                   **getattr(client, "decoding_record", dict)()})
    out = SessionOutcome(session.id, "running", rec.id)
    checks: list[HintCheck] = out.checks
    try:
        stage("baseline")
        reply, rank = await recommend_turn(db, client, rec, session, config)
        out.baseline_rank = rank
        if rank is not None and rank <= config.miss_k:
            _finish(rec, "hit", [])
            out.status = "hit"
            return out
        hints_reply = await reflection_turns(client, rec, session, reply, config,
                                             on_turn=lambda t: stage(f"turn {t}"))
        checks.extend(HintCheck(i, t) for i, t in enumerate(
            parse_hints(hints_reply, config.max_hints), 1))
        for c in checks:
            rec.proposal(asdict(c))
        ndcg_without = ndcg_at(rank, config.effect_k)
        for c in checks:
            stage(f"check {c.idx}/{len(checks)}")
            await check_hint(kb, client, rec, session, config, c, rank, ndcg_without,
                             encoder=encoder, common=common)
            rec.proposal(asdict(c))
        _finish(rec, "done", checks)
        out.status = "done"
        return out
    except Failed as exc:
        _close_pending(rec, checks, "failed")
        _finish(rec, "failed", checks, error=str(exc))
        out.status, out.error = "failed", str(exc)
        return out
    except BaseException as exc:
        import asyncio

        _close_pending(rec, checks, "stopped")
        status = "stopped" if isinstance(exc, (RunStop, KeyboardInterrupt,
                                                asyncio.CancelledError)) else "failed"
        _finish(rec, status, checks, error=" ".join(str(exc).split()) or type(exc).__name__)
        out.status = status
        raise


# --------------------------------------------------------------------------- many sessions

async def explore(db, client, ds: Dataset, *, split: str = "train", sessions: int | None = None,
                  session_id: str | None = None, config: ReflectConfig | None = None,
                  encoder=None,
                  on_progress: Callable[[ExploreProgress], None] | None = None) -> ExploreSummary:
    """Reflect on the sessions of a split the model misses, in order, until ``sessions``
    missed ones were reflected on or failed (all of the split if None), or just ``session_id``.

    Resumable: sessions finished earlier with the same model and prompt version are skipped.
    A :class:`BudgetExceeded` from the client ends the run cleanly (``summary.stopped``).
    Every session examined failing on its LLM calls raises
    :class:`~re2llm_tui.llm.outcomes.NothingWorked` (one line, the most common error).
    """
    from re2llm_tui.control import RunStop

    config = config or ReflectConfig()
    config.validate()
    ds = require(ds)
    dataset = ds.name
    if sessions is not None and sessions < 1:
        raise UserError(f"--sessions must be >= 1 (got {sessions})")
    todo = [ds.session(session_id)] if session_id else ds.iter_sessions(split)  # read as used
    kb = KnowledgeBase(db, ds)                  # seeded once, received by every session
    summary = ExploreSummary(dataset=dataset, model=client.model)
    done_before = explored_sessions(db, dataset, client.model, REFLECTION_VERSION)
    total = 1 if session_id else sessions
    stats0 = (client.stats.calls, client.stats.cache_hits, client.stats.cost,
              client.stats.failed)

    def report(sid: str, stage: str) -> None:
        if on_progress:
            on_progress(ExploreProgress(summary.reflected, total, sid, stage, summary))

    for session in todo:
        if sessions is not None and summary.reflected + summary.failed >= sessions:
            break
        if session.id in done_before:
            summary.already += 1
            continue
        try:
            outcome = await reflect_session(db, client, session, config, kb=kb, encoder=encoder,
                                            on_stage=lambda s, sid=session.id: report(sid, s))
        except RunStop as exc:
            summary.stopped = str(exc)
            report(session.id, "stopped")
            break
        summary.outcomes.append(outcome)
        summary.examined += 1
        if outcome.status == "hit":
            summary.hits += 1
        elif outcome.status == "failed":
            summary.failed += 1
        else:
            summary.reflected += 1
        for c in outcome.checks:
            summary.proposed += 1
            summary.leak += c.verdict == "leak"
            summary.ineffective += c.verdict == "ineffective"
            summary.redundant += c.verdict in ("redundant", "duplicate")
            summary.added += c.verdict == "added"
        report(session.id, outcome.status)
    summary.calls = client.stats.calls - stats0[0]
    summary.cache_hits = client.stats.cache_hits - stats0[1]
    summary.cost = client.stats.cost - stats0[2]
    if not summary.stopped:
        _check_outcomes(summary, ok_calls=summary.calls - (client.stats.failed - stats0[3])
                        + summary.cache_hits)
    return summary


def _check_outcomes(summary: ExploreSummary, ok_calls: int) -> None:
    """:class:`~re2llm_tui.llm.outcomes.NothingWorked` when no call of the run worked and
    every session examined failed on one (each reflection is already marked ``failed`` with
    its error); a session that failed after some turns worked is a partial failure."""
    from re2llm_tui.llm.outcomes import CallOutcomes, check_outcomes

    failed = [o.error or "unknown error" for o in summary.outcomes if o.status == "failed"]
    worked = sum(o.status in ("hit", "done") for o in summary.outcomes) + max(0, ok_calls)
    n = len(failed)
    check_outcomes(CallOutcomes.of(ok=worked, errors=failed), what="reflections",
                   marked=f"{n} reflection{'s' if n != 1 else ''}")
