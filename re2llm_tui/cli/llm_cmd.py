"""``re2llm-tui recommend``: the LLM ranks each session's candidates; scored and stored."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from re2llm_tui.cli.common import (
    ApiBaseOption,
    ClientProcsOption,
    ConcurrencyOption,
    DataDirOption,
    DatasetOption,
    DbOption,
    DryRunOption,
    JsonOption,
    MaxCallsOption,
    MaxCostOption,
    MaxReplyBytesOption,
    ModelOption,
    OptPath,
    OptStr,
    RankByOption,
    RetriesOption,
    SampleOption,
    SamplesOption,
    SplitOption,
    TimeoutOption,
    TransportOption,
    command_client,
    console,
    NoTemperatureOption,
    ReasoningEffortOption,
    ReasoningOption,
    decoding_options,
    print_estimate,
)
from re2llm_tui.safe_text import escape


def register(app: typer.Typer) -> None:
    @app.command("recommend")
    def recommend_cmd(
        dataset: str = DatasetOption, split: str = SplitOption,
        limit: Optional[int] = typer.Option(None, "--limit", "-n", help="first N sessions only"),
        sample: Optional[int] = SampleOption,
        seed: int = typer.Option(0, "--seed", help="seed of --sample"),
        samples: Optional[int] = SamplesOption,
        hint_id: Optional[int] = typer.Option(
            None, "--hint-id", help="append this KB hint (0 = no hint) to every prompt"),
        hint: OptStr = typer.Option(None, "--hint", help="append this hint text to every prompt"),
        model: OptStr = ModelOption,
        reasoning_effort: OptStr = ReasoningEffortOption,
        reasoning: Optional[bool] = ReasoningOption,
        no_temperature: Optional[bool] = NoTemperatureOption,
        api_base: Optional[List[str]] = ApiBaseOption,
        concurrency: Optional[int] = ConcurrencyOption,
        max_cost: Optional[float] = MaxCostOption,
        max_calls: Optional[int] = MaxCallsOption,
        timeout: float = TimeoutOption,
        max_reply_bytes: Optional[int] = MaxReplyBytesOption,
        retries: int = RetriesOption,
        method: OptStr = typer.Option(
            None, "--rank-method", help="local model only: logprob | sequential | generate"),
        name: OptStr = typer.Option(None, "--name", help="run name"),
        no_resume: bool = typer.Option(False, "--no-resume",
                                       help="start a new run even if an unfinished one matches"),
        data_dir: OptPath = DataDirOption, db: OptPath = DbOption,
        as_json: bool = JsonOption, rank_by: str = RankByOption,
        dry_run: bool = DryRunOption,
        client_procs: Optional[int] = ClientProcsOption,
        transport: OptStr = TransportOption,
    ) -> None:
        """Rank each session's 50 candidates with the LLM, score and store the run.

        Rerunning the same command is served from the cache; a run stopped by --max-cost or
        --max-calls (or killed) resumes where it stopped.
        """
        from re2llm_tui.data.dataset import Dataset
        from re2llm_tui.errors import UserError
        from re2llm_tui.evaluation.metrics import format_table, to_json
        from re2llm_tui.llm.parsing import check_rank_by

        from re2llm_tui.evaluation.recommend import check_samples

        rank_by = check_rank_by(rank_by)
        samples = check_samples(samples)               # bounded: one line before any work
        dset = Dataset.resolve(dataset, data_dir)     # the edge: resolved once
        ds = dset.name
        if hint is not None and hint_id is not None:
            raise UserError("give --hint or --hint-id, not both")
        sessions = dset.select(split, limit=limit, sample=sample, seed=seed)
        decoding = decoding_options(reasoning_effort, reasoning, no_temperature)
        if dry_run:
            from re2llm_tui.runtime.client_procs import check_client_procs

            _dry_run(sessions, dset, db=db, model=model, api_base=api_base,
                     concurrency=concurrency, method=method, hint=hint, hint_id=hint_id,
                     as_json=as_json, workers=check_client_procs(client_procs),
                     samples=samples, **decoding)
            return
        from re2llm_tui.runtime.client_procs import check_client_procs

        procs = check_client_procs(client_procs)
        client = command_client(db, api_base=api_base, transport=transport,
                                max_reply_bytes=max_reply_bytes, model=model,
                                concurrency=concurrency, timeout=timeout, max_retries=retries,
                                max_cost=max_cost, max_calls=max_calls, rank_method=method,
                                **decoding)
        from re2llm_tui.kb import KnowledgeBase

        hint_text = hint if hint_id is None else \
            KnowledgeBase(client.workspace(), dset).hint_text(hint_id)
        client.check()  # bad model / key / --api-base: one line, before any work
        err = console(stderr=True)
        if client.is_demo_model:
            err.print(f"[yellow]note:[/yellow] {escape(client.demo_notice)}")
        from re2llm_tui.costs.savings import cache_saved, last_call_id

        since = last_call_id(client.workspace())
        try:
            result = _run_with_progress(sessions, client, err, dataset=ds, split=split,
                                        hint=hint_text, hint_id=hint_id, name=name,
                                        resume=not no_resume, quiet=as_json, rank_by=rank_by,
                                        client_procs=procs, samples=samples,
                                        selection={"sample": sample, "sample_seed": seed}
                                        if sample is not None else None)
            saved = cache_saved(client.workspace(), since_id=since, model=client.model,
                                run_id=result.run_id)
            reasoning_tokens = int(client.run_totals(result.run_id)["reasoning_tokens"])
            sampled_note = client.sampled_note()
            from re2llm_tui.evaluation.recommend import samples_note

            greedy_note = samples_note(client, samples)
        finally:
            client.close()
        if as_json:
            out = {"run_id": result.run_id, "status": result.status, "n": result.total,
                   "done": result.done, "failed": result.failed,
                   "cache_hits": result.cache_hits, "calls": result.calls,
                   "cost": round(result.cost, 6), "cache_saved": saved.as_dict(),
                   "model": client.model, "rank_by": rank_by,
                   "reasoning_tokens": reasoning_tokens, "sampled": bool(sampled_note),
                   "samples": samples,
                   "metrics": to_json(result.metrics) if result.metrics else None}
            print(json.dumps(out))
        else:
            con = console()
            if result.metrics:
                label = f"run {result.run_id}: {client.model}" + (
                    f" + hint {hint_id}" if hint_id else (" + hint" if hint_text else ""))
                n_split = dset.count(split)
                picked = ("" if result.total >= n_split else
                          f", sampled from {n_split} (seed {seed})" if sample is not None else
                          f", the first of {n_split}")
                con.print(format_table({label: result.metrics},
                                       title=f"{ds}/{split} — {result.done} of {result.total} "
                                             f"sessions{picked}; rank by {rank_by}"))
            con.print(f"calls: {result.calls} sent, {result.cache_hits} from cache, "
                      f"{result.failed} failed (scored as misses); cost ${result.cost:.4f}; "
                      f"{saved.line()}"
                      + (f"; {reasoning_tokens:,} reasoning tokens" if reasoning_tokens else "")
                      + ("; resumed an unfinished run" if result.resumed else ""))
            if sampled_note:
                con.print(f"note: {escape(sampled_note)}")
            if greedy_note:
                con.print(f"note: {escape(greedy_note)}")
        if result.status == "stopped":
            err.print(f"[yellow]stopped:[/yellow] {escape(result.stopped_reason, oneline=True)} "
                      f"({result.done}/{result.total} sessions done; run {result.run_id}; rerun the "
                      "same command to resume)")
            from re2llm_tui.cli.train_cmd import stop_exit_code

            raise SystemExit(stop_exit_code())   # 130 interrupted, 3 budget


def _dry_run(sessions, dset, *, db, model, api_base, concurrency, method, hint, hint_id,
             as_json: bool, workers: int = 1, samples: int = 1, **decoding) -> None:
    """``recommend --dry-run``: the estimate of the rankings the command would ask for."""
    from re2llm_tui.costs import dry_run
    from re2llm_tui.costs.dry_run import dry_client

    client = dry_client(db, model=model, api_bases=api_base or (), concurrency=concurrency,
                        rank_method=method, **decoding)
    try:
        from re2llm_tui.kb import KnowledgeBase

        hint_text = hint if hint_id is None else \
            KnowledgeBase(client.workspace(), dset).hint_text(hint_id)
        est = dry_run.recommend(client, client.workspace(), sessions, dataset=dset.name,
                                hint=hint_text, workers=workers, samples=samples)
    finally:
        client.close()
    print_estimate(est, as_json)


def _run_with_progress(sessions, client, err, *, quiet: bool, **kw):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from re2llm_tui.evaluation.recommend import recommend

    columns = [TextColumn("recommend"), BarColumn(), MofNCompleteColumn(),
               TextColumn("cache {task.fields[hits]} · failed {task.fields[failed]} · "
                          "${task.fields[cost]:.4f}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False, disable=quiet) as bar:
        task = bar.add_task("recommend", total=len(sessions), hits=0, failed=0, cost=0.0)

        def on_progress(p):
            bar.update(task, completed=p.done, total=p.total, hits=p.cache_hits,
                       failed=p.failed, cost=p.cost)

        return recommend(sessions, client, progress=on_progress, **kw)
