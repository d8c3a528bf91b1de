"""``--dry-run``: the LLM calls ``recommend``, ``explore``, ``train`` and ``evaluate`` would
make, built by the code those commands run, counted and priced by
:func:`re2llm_tui.costs.preflight.estimate`.  Nothing is sent, no key is needed, the local
model is not loaded.

* ``recommend``: one ranking per selected session (the release prompt, the hint appended).
* ``train``: the reward table's missing (session, action) outcomes of the training sessions
  (phase 1, ``--prefill``); outcomes already stored cost no call.  With ``--no-prefill`` PPO
  pays only for the pairs it visits: the table's missing outcomes are then an upper bound.
* ``evaluate``: the outcomes the rows read (no hint, random, agent, best train hint; every
  action with the oracle), and the candidate-order shuffles of ``--permutations``.
* ``explore``: how many turns a session takes depends on the LLM's replies (a baseline hit
  ends it; each proposed hint is re-asked and checked), so the count is an upper bound:
  every session examined is taken as missed, with ``--max-hints`` hints each passing to the
  LLM checks.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from re2llm_tui.costs import preflight
from re2llm_tui.costs.preflight import (
    Estimate,
    PlannedCall,
    complete_call,
    count_tokens,
    estimate,
    rank_call,
    typical_completion,
)
from re2llm_tui.store.calls import cached_reply

# --------------------------------------------------------------------------- the client

def dry_client(db_path=None, model: str | None = None, api_bases: Sequence[str] = (),
               **options):
    """An :class:`~re2llm_tui.llm.client.LLMClient` whose model string is normalised as
    :meth:`~re2llm_tui.llm.client.LLMClient.check` would (a bare name served by
    ``--api-base`` becomes ``openai/NAME``; an unknown string is a one-line UserError), but
    with no key check, no connection to ``--api-base`` and no local model loaded."""
    from re2llm_tui.llm.client import LLMClient

    client = LLMClient(db_path, model=model, api_bases=api_bases, **options)
    method = options.get("rank_method")
    if method:
        from re2llm_tui.errors import UserError
        from re2llm_tui.llm.ranking import METHODS

        if method not in METHODS:
            raise UserError(f"unknown ranking method {method!r}: choose from {', '.join(METHODS)}")
        if not client.is_local and method != "generate":
            raise UserError(f"ranking method {method!r} needs the local model; "
                            "remote models rank with 'generate'")
    client.model = preflight.dry_model(client.model, client.api_bases)
    return client


# --------------------------------------------------------------------------- recommend

def recommend_calls(client, sessions, hint: str | None = None, k: int = 10,
                    samples: int = 1) -> list[PlannedCall]:
    """The rankings :func:`~re2llm_tui.evaluation.recommend.recommend_async` asks for
    (``samples``: each session's request that many times, under its samples' keys)."""
    from re2llm_tui.llm.decoding import sample_decoding
    from re2llm_tui.prompts import recommend_prompt

    hint_text = (hint or "").strip() or None
    return [rank_call(client, recommend_prompt(s.prompt, hint_text), s.candidates, k=k,
                      **sample_decoding(j))
            for s in sessions for j in range(samples)]


def recommend(client, db, sessions, *, dataset: str, hint: str | None = None,
              k: int = 10, workers: int = 1, samples: int = 1) -> Estimate:
    notes = [f"--samples {samples}: {len(sessions)} sessions x {samples} samples"] \
        if samples > 1 else []
    return estimate("recommend", client, db, recommend_calls(client, sessions, hint, k, samples),
                    dataset=dataset, workers=workers, notes=notes)


# --------------------------------------------------------------------------- reward table

def reward_calls(client, source, wanted: np.ndarray | None = None) -> list[PlannedCall]:
    """The rankings :meth:`LLMRewards.compute` asks for: the source's missing outcomes, a
    session at a time (``source``: a :class:`~re2llm_tui.utilization.rewards.LLMRewards`)."""
    from re2llm_tui.llm.decoding import sample_decoding
    from re2llm_tui.prompts import recommend_prompt
    from re2llm_tui.utilization.rewards import K, session_major

    out = []
    for i, a in session_major(source.missing_pairs(wanted)):
        s = source.sessions[i]
        for j in range(getattr(source, "samples", 1)):    # --samples N: N requests each
            out.append(rank_call(client, recommend_prompt(s.prompt,
                                                          source.actions[a][1] or None),
                                 s.candidates, k=K, group=s.id, **sample_decoding(j)))
    return out


def _stored(source, wanted: np.ndarray | None) -> int:
    known = np.isfinite(source.ndcg)
    return int((known & wanted).sum() if wanted is not None else known.sum())


def train(client, db, ds, *, limit: int | None = None, prefill: bool = True,
          rank_by: str = "reply", workers: int = 1, samples: int = 1) -> Estimate:
    """Phase 1 of :func:`~re2llm_tui.utilization.training.train`: the missing outcomes of
    the reward table of :func:`~re2llm_tui.utilization.training.plan_training`, the plan
    training itself runs."""
    from re2llm_tui.utilization import training

    plan = training.plan_training(db, client, ds, limit=limit, rank_by=rank_by,
                                  samples=samples)
    sessions, actions, source = plan.sessions, plan.actions, plan.source
    planned = reward_calls(client, source)
    notes = [f"reward table: {len(sessions)} sessions x {len(actions)} actions"
             + (f" x {samples} samples" if samples > 1 else "")]
    return estimate("train", client, db, planned, dataset=ds.name, workers=workers,
                    stored=_stored(source, None), upper_bound=not prefill,
                    bound_basis="--no-prefill: PPO pays only for the pairs it visits; at most "
                                "the table's missing outcomes" if not prefill else "",
                    notes=notes)


def evaluate(client, db, ds, split: str = "test", *, limit: int | None = None,
             sample: int | None = None, seed: int = 0, oracle: bool = True,
             train_run: int | None = None, permutations: int = 0, rank_by: str = "reply",
             workers: int = 1, samples: int = 1) -> Estimate:
    """The outcomes :func:`~re2llm_tui.evaluation.compare.evaluate` computes: those of
    :func:`~re2llm_tui.evaluation.compare.plan_evaluation`, the plan it runs."""
    from re2llm_tui.evaluation import compare
    from re2llm_tui.utilization.rewards import LLMRewards

    sessions = ds.select(split, limit=limit, sample=sample, seed=seed)
    # the agent's choices matter only when not every action is asked anyway
    plan = compare.plan_evaluation(db, client, ds, sessions, seed=seed, oracle=oracle,
                                   train_run=train_run, rank_by=rank_by, samples=samples,
                                   choose_agent=bool(not oracle or permutations))
    actions, agent, needed = plan.actions, plan.agent, plan.needed
    n, n_actions = len(sessions), len(actions)
    notes: list[str] = list(plan.notes)
    source = LLMRewards(client, sessions, actions, dataset=ds.name, db=db, rank_by=rank_by,
                        samples=samples)
    planned = reward_calls(client, source, needed)
    stored = _stored(source, needed)
    if permutations:
        from re2llm_tui.evaluation.order import permuted, shuffles

        rows = [np.zeros(n, dtype=np.int64)] + ([np.asarray(agent)] if agent is not None else [])
        wanted = np.zeros((n, n_actions), dtype=bool)
        for acts in rows:
            wanted[np.arange(n), acts] = True
        for p, perms in enumerate(shuffles(sessions, permutations, seed)):
            shuffled = [permuted(s, perm) for s, perm in zip(sessions, perms)]
            src = LLMRewards(client, shuffled, actions, dataset=ds.name, db=db, rank_by=rank_by,
                             context_tag=f"order=shuffle{seed}:{p}")
            planned += reward_calls(client, src, wanted)
            stored += _stored(src, wanted)
        notes.append(f"--permutations {permutations}: the no-hint"
                     + (" and agent rows" if agent is not None else " row")
                     + " asked again on each shuffle")
    notes = [f"{n} sessions x {n_actions} actions"
             + (f" x {samples} samples" if samples > 1 else "")
             + ("" if oracle else " (no oracle: only the rows' actions)")] + notes
    return estimate("evaluate", client, db, planned, dataset=ds.name, workers=workers,
                    stored=stored, notes=notes)


# --------------------------------------------------------------------------- explore

def explore(client, db, ds, *, split: str = "train", sessions: int | None = None,
            session_id: str | None = None, config=None) -> Estimate:
    """An upper bound of :func:`~re2llm_tui.exploration.reflection.explore`'s calls."""
    from re2llm_tui.exploration.config import ReflectConfig
    from re2llm_tui.kb import KnowledgeBase
    from re2llm_tui.exploration.hints import parse_hints
    from re2llm_tui.exploration.turns import next_turn
    from re2llm_tui.llm.parsing import reply_ranking, target_rank
    from re2llm_tui.llm.thinking import answer_of
    from re2llm_tui.store.reflections import explored_sessions
    from re2llm_tui.prompts import REFLECTION_VERSION, recommend_prompt, redundancy_prompt
    from re2llm_tui.store.runs import stored_baseline

    config = config or ReflectConfig()
    config.validate()
    todo = [ds.session(session_id)] if session_id else ds.iter_sessions(split)
    done_before = explored_sessions(db, ds.name, client.model, REFLECTION_VERSION)
    todo = (s for s in todo if s.id not in done_before)      # read only as far as needed
    todo = list(todo if sessions is None else itertools.islice(todo, sessions))
    existing = [h.text for h in KnowledgeBase(db, ds).hints(("accepted", "candidate"))]
    turn_max = config.turn_max_tokens
    rank_tokens, _ = typical_completion(db, client.model, "rank", None)
    turn_tokens = {kind: typical_completion(db, client.model, f"reflect:{kind}", turn_max)[0]
                   for kind in ("mistakes", "analysis", "hints")}
    # a proposed hint's length: the measured hint replies split over max-hints, else 25
    hint_tokens = max(8, turn_tokens["hints"] // max(1, config.max_hints)) \
        if turn_max is None or turn_tokens["hints"] < turn_max else 25
    stand_in = "hint " * hint_tokens
    planned: list[PlannedCall] = []
    stored = hits = replayed = 0
    for s in todo:
        # turn 1: a stored baseline, a cached reply, or a call whose reply is not known yet
        baseline = None
        if config.use_stored_baseline or config.baseline_run is not None:
            baseline = stored_baseline(db, s, client.model, run_id=config.baseline_run)
        reply = ranking = None
        if baseline is None:
            call = rank_call(client, s.prompt, s.candidates, k=config.rank_k, group=s.id)
            planned.append(call)
            hit = cached_reply(db, call.key)
            if hit is not None:
                reply, ranking, method = hit["response"], hit["ranking"], client.rank_method
        else:
            stored += 1
            reply, ranking = baseline["reply"], baseline["ranking"]
            method = "generate" if baseline.get("reply") else client.rank_method
        if reply is not None or ranking:
            # the conversation carries answers only, as exploration/turns.py sends it
            reply = answer_of(reply) or "\n".join(f"{i}. {s.candidates[c]}"
                                                 for i, c in enumerate(ranking or [], 1))
            rank = target_rank(reply_ranking(reply, ranking or [], s.candidates,
                                             rank_method=method, k=config.rank_k),
                               s.target_index)
            if rank is not None and rank <= config.miss_k:
                hits += 1              # the real run stops here: a hit is not reflected on
                continue
        # turns 2-4, exploration's own step function: exact requests (and cache look-ups)
        # while every earlier reply is known
        extra = 0 if reply is not None else rank_tokens
        known = reply is not None
        hints_reply = None
        answers: list[str | None] = []
        while (req := next_turn(s, config, reply or "", answers)) is not None:
            call = complete_call(client, req.messages, purpose=req.purpose, known=known,
                                 extra_prompt_tokens=extra, group=s.id, **req.decoding)
            planned.append(call)
            answer = cached_reply(db, call.key) if known else None
            if answer is not None:
                replayed += 1
                said = answer_of(answer["response"])
                hints_reply = said if req.kind == "hints" else None
            else:
                said, known = None, False
                extra += turn_tokens[req.kind]
            answers.append(said)
        # the checks: the real hints when turn 4's reply is known, else stand-ins
        texts = parse_hints(hints_reply, config.max_hints) if hints_reply is not None else \
            [stand_in] * config.max_hints
        for text_ in texts:
            hinted = recommend_prompt(s.prompt, text_)
            check = rank_call(client, hinted, s.candidates, k=config.rank_k, group=s.id)
            if hints_reply is None:
                check.key = None       # its hint is not known: it cannot be in the cache
            planned.append(check)
            if config.llm_redundancy and existing:
                shown = existing[:config.llm_compare_n]
                planned.append(complete_call(
                    client, [{"role": "user", "content": redundancy_prompt(shown, text_)}],
                    purpose="reflect:redundancy", known=False, group=s.id,   # shown: by MiniLM
                    max_tokens=16))
    checks = 2 if config.llm_redundancy and existing else 1
    per_session = 4 + config.max_hints * checks
    notes = [(f"{len(todo)} session(s) to examine ({len(done_before)} reflected before with "
              "this model are skipped)")]
    if stored:
        notes.append(f"{stored} baseline reply(ies) reused from stored runs (no call)")
    if hits:
        notes.append(f"{hits} session(s) whose known baseline already hits the target: "
                     "not reflected on, no further call")
    if replayed:
        notes.append(f"{replayed} reflection turn(s) found in the cache (an interrupted run's "
                     "sessions): later turns are counted exactly")
    notes.append("turns after the first are priced with the earlier replies' estimated "
                 f"length; each proposed hint taken as {hint_tokens} tokens")
    est = estimate("explore", client, db, planned, dataset=ds.name, stored=stored,
                   upper_bound=True,
                   bound_basis=f"at most {per_session} calls per session (1 baseline + 3 "
                               f"reflection turns + {config.max_hints} hint(s) x {checks} "
                               "LLM check(s)) x sessions: a session the baseline already hits "
                               "costs 1 call, a hint failing an earlier check costs fewer",
                   notes=notes)
    return est


def print_estimate(est: Estimate, con, *, title: str = "") -> None:
    """The estimate as a small table (every value through :func:`re2llm_tui.safe_text.text`)."""
    from rich.table import Table

    from re2llm_tui.safe_text import text

    t = Table(title=text(title or f"{est.command} --dry-run: nothing sent", oneline=True),
              show_header=False)
    t.add_column(style="bold")
    t.add_column()
    for label, value in est.rows():
        t.add_row(text(label), text(value))
    con.print(t)
    for note in est.notes:
        con.print(text(f"note: {note}"))


__all__ = ["Estimate", "count_tokens", "dry_client", "evaluate", "explore", "print_estimate", "recommend",
           "recommend_calls", "reward_calls", "train"]
