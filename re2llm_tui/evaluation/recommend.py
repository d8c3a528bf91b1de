"""``recommend``: the LLM ranks each session's candidates; the outcome is scored and stored.

For every session the release prompt is built (:func:`prompts.recommend_prompt`, with the
hint appended when given, as the paper does), sent through :class:`LLMClient.rank`, parsed
and scored; each session's outcome is a ``run_items`` row written as soon as it is known.

* Resumable: a run of the same (dataset, split, model, prompt version, hint, sessions,
  ranking method, decoding) that did not finish (``running``/``stopped``) is continued: its
  stored sessions are kept, failed ones are retried, the rest are done.  Every finished LLM
  call is in the cache, so rerunning a finished run is served from it.
* A failed call (after retries) is stored with its error and scored as a miss; the run goes
  on and ``n_failed`` counts it.  Garbage replies are kept in ``reply`` for inspection.  A
  run in which every call failed ends ``failed`` with one line naming the most common error
  (:mod:`re2llm_tui.llm.outcomes`), as does a run ended by any error (a refused key, the
  workspace); the run records its process (``runs.pid``) while it is written.
* ``--max-cost`` / ``--max-calls`` (:class:`BudgetExceeded`) and a stop request stop the run cleanly
  (status ``stopped``, metrics over the sessions done so far).
* The target's rank is counted by :func:`~re2llm_tui.llm.parsing.target_rank` under
  ``rank_by`` (reply positions by default), which is one of the run's params: a run is never
  resumed under the other accounting.  The metrics include the replies' validity.
* ``samples`` (``--samples N``, for a model whose replies are samples): every session's
  request is asked N times, each under its own cache key (sample ``i`` > 0 adds the key-only
  decoding entry ``sample=i``, never sent; sample 0 keeps the key of a run without
  ``--samples``, so its calls are shared).  The ``run_items`` row keeps sample 0 in its
  columns (so ``runs compare`` pairs sessions as before) and all N outcomes in ``samples``
  (JSON: ``target_rank``, ``error``, ``call_id``, ``ranking`` and the reply's counts); the
  item's ``error`` is the first failed sample's, so resuming retries it (its cached samples
  free).  The metrics are the mean over samples with the between-sample spread
  (:func:`~re2llm_tui.evaluation.metrics.summarize`); ``samples`` is in the run's params
  when N > 1 (a run of one sample keeps today's params).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Sequence

from re2llm_tui.control import RunStop
from re2llm_tui.data.release import Session
from re2llm_tui.llm.client import LLMClient
from re2llm_tui.llm.parsing import DEFAULT_RANK_BY

from re2llm_tui.llm.decoding import MAX_SAMPLES, check_samples, sample_decoding  # noqa: F401


def samples_note(client, samples: int) -> str:
    """One sentence for a summary when ``samples`` > 1 and the model decodes greedily
    (its samples are identical unless the server samples anyway); '' otherwise."""
    if samples <= 1 or client.sampled:
        return ""
    return (f"{client.model} decodes greedily (temperature {client.temperature}): its "
            f"{samples} samples per request are identical unless the server samples anyway")


@dataclass
class Progress:
    """Sent to the progress callback after every session."""

    done: int
    total: int
    cache_hits: int
    failed: int
    cost: float
    calls: int


@dataclass
class RecommendResult:
    run_id: int
    status: str                   # done | stopped
    total: int
    done: int
    failed: int
    cache_hits: int
    calls: int
    cost: float
    metrics: dict | None
    resumed: bool = False
    stopped_reason: str | None = None
    ranks: dict = field(default_factory=dict)


def _params(client: LLMClient, sessions: Sequence[Session], k: int) -> dict:
    ids = ",".join(s.id for s in sessions)
    return {"k": k, "rank_method": client.rank_method, "temperature": client.temperature,
            "seed": client.seed, "n_sessions": len(sessions),
            "sessions_sha": hashlib.sha256(ids.encode()).hexdigest()[:16],
            # sampled replies, effort, output limit: only for a model that does not decode
            # greedily as before (its params, and resuming its runs, are unchanged)
            **getattr(client, "decoding_record", dict)()}


def _find_resumable(db, *, dataset, split, model, prompt_version, hint_text, params) -> int | None:
    """The newest unfinished run of these settings (stopped, failed, or marked running by a
    process that is gone); a run another live process is writing is left to it."""
    from re2llm_tui.store.runs import writer_alive

    for row in db.query(
            "SELECT id, status, pid FROM runs WHERE kind='recommend' AND dataset=? AND split=? "
            "AND model IS ? AND prompt_version IS ? AND hint_text IS ? AND params=? "
            "AND status IN ('running','stopped','failed') ORDER BY id DESC",
            [dataset, split, model, prompt_version, hint_text,
             json.dumps(params, sort_keys=True)]):
        if not writer_alive(row):
            return row["id"]
    return None


async def recommend_async(sessions: Sequence[Session], client: LLMClient, *, dataset: str,
                          split: str, hint: str | None = None, hint_id: int | None = None,
                          name: str | None = None, k: int = 10, resume: bool = True,
                          progress: Callable[[Progress], None] | None = None,
                          rank_by: str = DEFAULT_RANK_BY,
                          selection: dict | None = None,
                          client_procs: int = 1, samples: int = 1) -> RecommendResult:
    """Rank every session with ``client`` and store the run (see module docstring).

    ``client_procs`` > 1: the sessions still to do are ranked by that many spawned client
    processes (:mod:`re2llm_tui.runtime.client_procs`), sessions with identical requests in the same
    one; the run, its resume and its metrics are the same.

    Raises :class:`~re2llm_tui.llm.outcomes.NothingWorked` (the run marked ``failed``) when
    every session's call failed; any other error also leaves the run ``failed``."""
    from re2llm_tui.llm.parsing import check_rank_by
    from re2llm_tui.prompts import prompt_version
    from re2llm_tui.store import runs

    rank_by = check_rank_by(rank_by)
    samples = check_samples(samples)
    client.check()
    db = client.workspace()
    hint_text = (hint or "").strip() or None
    pversion = prompt_version(hint_text)
    params = {**_params(client, sessions, k), "rank_by": rank_by, **(selection or {}),
              **({"samples": samples} if samples > 1 else {})}
    run_id = _find_resumable(db, dataset=dataset, split=split, model=client.model,
                             prompt_version=pversion, hint_text=hint_text,
                             params=params) if resume else None
    if run_id is not None and not runs.resume_run(db, run_id):
        run_id = None               # deleted, or taken by another process, meanwhile
    resumed = run_id is not None
    if run_id is None:
        run_id = runs.create_run(
            db, name=name or f"recommend {dataset}/{split} {client.model}"
            + (f" hint {hint_id}" if hint_id else (" hint" if hint_text else "")),
            kind="recommend", dataset=dataset, split=split, model=client.model,
            prompt_version=pversion, hint_id=hint_id, hint_text=hint_text, params=params)
    with runs.ending(db, run_id):    # an error ends the run `failed`, never left `running`
        return await _write_run(db, client, sessions, run_id, resumed, k=k, rank_by=rank_by,
                                hint_text=hint_text, progress=progress,
                                client_procs=client_procs, samples=samples)


def _outcomes_of(items, wanted: dict, client: LLMClient, k: int):
    """From a run's items: session -> rank (sampled: the list of its samples' ranks), the
    replies' counts (every ok sample's), and one error per failed call (None per ok one)."""
    from re2llm_tui.evaluation.metrics import Counts
    from re2llm_tui.llm.parsing import reply_ranking

    ranks, replies, call_errors = {}, [], []
    for sid, rank, err, reply, ranking, samples in items:
        if sid not in wanted:
            continue
        if samples:
            per = json.loads(samples)
            ranks[sid] = [p.get("target_rank") for p in per]
            for p in per:
                call_errors.append(p.get("error"))
                if p.get("error") is None:
                    replies.append(Counts(int(p.get("listed", 0)), int(p.get("valid", 0)),
                                          int(p.get("distinct", 0))))
            continue
        ranks[sid] = rank
        call_errors.append(err)
        if err is None:
            replies.append(reply_ranking(reply or "", json.loads(ranking or "[]"),
                                         wanted[sid].candidates,
                                         rank_method=client.rank_method, k=k))
    return ranks, replies, call_errors


async def _write_run(db, client: LLMClient, sessions: Sequence[Session], run_id: int,
                     resumed: bool, *, k: int, rank_by: str, hint_text: str | None,
                     progress, client_procs: int, samples: int = 1) -> RecommendResult:
    from re2llm_tui.evaluation.metrics import summarize
    from re2llm_tui.llm.outcomes import CallOutcomes, NothingWorked
    from re2llm_tui.prompts import recommend_prompt
    from re2llm_tui.store import runs

    ok_done = {r[0] for r in db.execute(
        "SELECT session_id FROM run_items WHERE run_id=? AND error IS NULL", [run_id])}
    todo = [s for s in sessions if s.id not in ok_done]
    total = len(sessions)
    counters = {"done": total - len(todo), "failed": 0, "hits": 0, "calls": 0, "cost": 0.0}
    stop_reason: list[str] = []

    def report():
        if progress is not None:
            progress(Progress(counters["done"], total, counters["hits"], counters["failed"],
                              counters["cost"], counters["calls"]))

    report()

    def count(out: dict) -> None:
        counters["done"] += 1
        counters["hits"] += out.get("hits", 1 if out["cached"] else 0)
        counters["calls"] += out.get("sent", 0 if out["cached"] else 1)
        counters["failed"] += 0 if out["ok"] else 1
        counters["cost"] += out["cost"]
        report()

    context = {"run_id": run_id, "hint_text": hint_text, "k": k, "rank_by": rank_by,
               "samples": samples}
    if client_procs > 1 and len(todo) > 1:
        from re2llm_tui.runtime.client_procs import request_key, run_in_procs, shard_by_key

        keys = [request_key(recommend_prompt(s.prompt, hint_text), s.candidates)
                for s in todo]
        shards = [[todo[i] for i in part] for part in shard_by_key(keys, client_procs)]
        try:
            await run_in_procs(client, shards, rank_shard, context, count)
        except RunStop as exc:
            stop_reason.append(str(exc))
    else:
        try:
            await rank_shard(client, todo, context, count, db=db)
        except RunStop as exc:
            stop_reason.append(str(exc))

    items = db.execute("SELECT session_id, target_rank, error, reply, ranking, samples "
                       "FROM run_items WHERE run_id=?", [run_id]).fetchall()
    wanted = {s.id: s for s in sessions}
    ranks, replies, call_errors = _outcomes_of(items, wanted, client, k)
    n_failed = sum(1 for sid, _r, err, *_ in items if sid in wanted and err is not None)
    metrics = summarize(list(ranks.values()), replies=replies) if ranks else None
    totals = client.run_totals(run_id)
    status = "stopped" if stop_reason else "done"
    # per call: a run whose every session lost one sample still worked
    outcomes = CallOutcomes.of(errors=call_errors)
    if not stop_reason and outcomes.nothing_worked():
        line = outcomes.line()
        runs.finish_run(db, run_id, metrics, status="failed", n_failed=n_failed,
                        cost=totals["cost"], error=line)
        raise NothingWorked(f"{line}; run {run_id} marked failed")
    runs.finish_run(db, run_id, metrics, status=status, n_failed=n_failed, cost=totals["cost"])
    return RecommendResult(
        run_id=run_id, status=status, total=total, done=len(ranks), failed=n_failed,
        cache_hits=counters["hits"], calls=counters["calls"], cost=counters["cost"],
        metrics=metrics, resumed=resumed, stopped_reason=stop_reason[0] if stop_reason else None,
        ranks=ranks)


async def rank_shard(client: LLMClient, sessions: Sequence[Session], context: dict,
                     send: Callable[[dict], None], db=None) -> None:
    """Rank ``sessions`` concurrently and store each as a ``run_items`` row of
    ``context["run_id"]`` as soon as it is known; ``send`` gets one dict per stored session
    (``cached``, ``ok``, ``cost``, and the calls ``hits`` / ``sent``).  ``context["samples"]``
    (default 1): each session asked that many times (:func:`sample_decoding`).  Raises the
    first :class:`RunStop` once every session already sent has finished (the rest are left for
    a rerun).  Also the work of one ``--client-procs`` process
    (:func:`re2llm_tui.runtime.client_procs.run_in_procs`)."""
    from re2llm_tui.llm.parsing import reply_ranking, target_rank
    from re2llm_tui.prompts import recommend_prompt
    from re2llm_tui.store import runs

    db = db if db is not None else client.workspace()
    run_id, hint_text = context["run_id"], context["hint_text"]
    k, rank_by = context["k"], context["rank_by"]
    n = int(context.get("samples") or 1)
    stop: list[RunStop] = []

    async def one(s: Session):
        prompt = recommend_prompt(s.prompt, hint_text)
        got = await asyncio.gather(*(client.rank(prompt, s.candidates, k=k, run_id=run_id,
                                                 **sample_decoding(j)) for j in range(n)),
                                   return_exceptions=True)
        for r in got:
            if isinstance(r, BaseException):
                if isinstance(r, RunStop):
                    stop.append(r)
                    return
                raise r
        per = []
        for res in got:
            parsed = reply_ranking(res.text, res.ranking, s.candidates,
                                   rank_method=client.rank_method, k=k) if res.ok else None
            per.append((res, target_rank(parsed, s.target_index, rank_by)
                        if parsed is not None else None, parsed))
        res, rank, _ = per[0]
        error = next((e if j == 0 else f"sample {j}: {e}" for j, (r, _r, _p) in enumerate(per)
                      for e in [r.error] if e is not None), None)
        cols = {}
        if n > 1:
            cols["samples"] = [{"target_rank": rk, "error": r.error, "call_id": r.call_id,
                                "ranking": list(r.ranking),
                                **({"listed": p.listed, "valid": p.valid,
                                    "distinct": p.distinct} if p is not None else {})}
                               for r, rk, p in per]
        runs.add_run_item(db, run_id, s.id, prompt=prompt, reply=res.text,
                          ranking=list(res.ranking), hallucinations=list(res.hallucinations),
                          target_rank=rank, error=error, call_id=res.call_id, **cols)
        hits = sum(1 for r, *_ in per if r.cached)
        send({"cached": hits == n, "ok": error is None,
              "cost": sum(float(r.cost or 0.0) for r, *_ in per), "hits": hits,
              "sent": n - hits})

    tasks = [asyncio.ensure_future(one(s)) for s in sessions]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        raise
    if stop:
        raise stop[0]


def recommend(sessions: Sequence[Session], client: LLMClient, **kw) -> RecommendResult:
    """Synchronous :func:`recommend_async` (runs on the client's event-loop thread)."""
    return client.run_sync(recommend_async(sessions, client, **kw))
