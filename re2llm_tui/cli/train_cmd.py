"""``re2llm-tui train`` and ``evaluate``: the hint-retrieval agent (Reinforcement Utilization)."""

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
    LocalWorkersOption,
    MaxCallsOption,
    MaxCostOption,
    MaxReplyBytesOption,
    ModelOption,
    OptPath,
    OptStr,
    RankByOption,
    SampleOption,
    SamplesOption,
    SplitOption,
    TransportOption,
    command_client,
    console,
    NoTemperatureOption,
    ReasoningEffortOption,
    ReasoningOption,
    decoding_options,
    print_estimate,
)
from re2llm_tui.safe_text import escape, text


def default_workers(workers: int | None, client, client_procs: int | None = None) -> int:
    """``--client-procs`` (or ``$RE2LLM_CLIENT_PROCS``), else ``--local-workers``, else 2
    for the embedded model (measured: 2 processes on 2 cores), else 1."""
    import os

    from re2llm_tui.runtime.client_procs import CLIENT_PROCS_ENV, check_client_procs

    if client_procs is not None or (workers is None and os.environ.get(CLIENT_PROCS_ENV)):
        if workers is not None:
            from re2llm_tui.errors import UserError

            raise UserError("give --client-procs or --local-workers, not both")
        return check_client_procs(client_procs)
    if workers is not None:
        from re2llm_tui.runtime.client_procs import check_procs

        return check_procs(workers, "--local-workers")   # >= 1, at most one per core
    return 2 if client.is_local else 1


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        dataset: str = DatasetOption,
        steps: int = typer.Option(500_000, "--steps", help="PPO environment steps (sessions "
                                                           "given a hint)"),
        model: OptStr = ModelOption,
        reasoning_effort: OptStr = ReasoningEffortOption,
        reasoning: Optional[bool] = ReasoningOption,
        no_temperature: Optional[bool] = NoTemperatureOption,
        prefill: bool = typer.Option(True, "--prefill/--no-prefill",
                                     help="phase 1 computes the whole reward table (sessions x "
                                          "actions) up front, a session at a time; "
                                          "--no-prefill pays only for the pairs PPO visits"),
        workers: Optional[int] = LocalWorkersOption,
        seed: int = typer.Option(1, "--seed", help="seed of the agent's initialisation, "
                                                   "shuffles and sampling"),
        limit: Optional[int] = typer.Option(None, "--limit", "-n",
                                            help="train on the first N training sessions only"),
        samples: Optional[int] = SamplesOption,
        fresh: bool = typer.Option(False, "--fresh", help="start a new run even if an "
                                                          "unfinished one can be resumed"),
        max_cost: Optional[float] = MaxCostOption, max_calls: Optional[int] = MaxCallsOption,
        api_base: Optional[List[str]] = ApiBaseOption,
        concurrency: Optional[int] = ConcurrencyOption,
        data_dir: OptPath = DataDirOption, db: OptPath = DbOption, as_json: bool = JsonOption,
        rank_by: str = RankByOption, dry_run: bool = DryRunOption,
        client_procs: Optional[int] = ClientProcsOption,
        transport: OptStr = TransportOption,
        max_reply_bytes: Optional[int] = MaxReplyBytesOption,
    ) -> None:
        """Train the PPO hint-retrieval agent on the training sessions.

        The reward of giving hint h to session s is NDCG@10 with h minus NDCG@10 without,
        from the LLM; every (session, hint) outcome is stored, so it is paid for once.  An
        unfinished run of the same settings resumes from its checkpoint (--fresh: start anew).
        """
        from re2llm_tui.data.release import canonical_domain
        from re2llm_tui.errors import UserError
        from re2llm_tui.llm.parsing import check_rank_by
        from re2llm_tui.utilization.training import TrainSpec

        dataset = canonical_domain(dataset, data_dir)   # bad input: one line, first of all
        from re2llm_tui.llm.decoding import check_samples

        rank_by = check_rank_by(rank_by)
        samples = check_samples(samples)
        if steps < 1:
            raise UserError(f"--steps must be >= 1 (got {steps})")
        if limit is not None and limit < 1:
            raise UserError(f"--limit must be >= 1 (got {limit})")
        spec = TrainSpec(dataset=dataset, model=model, steps=steps, seed=seed, prefill=prefill,
                         db_path=str(db) if db else None,
                         data_dir=str(data_dir) if data_dir else None, max_cost=max_cost,
                         max_calls=max_calls, api_bases=tuple(api_base or ()),
                         concurrency=concurrency, limit=limit, resume=not fresh,
                         rank_by=rank_by, samples=samples)
        decoding = decoding_options(reasoning_effort, reasoning, no_temperature)
        if dry_run:
            from re2llm_tui.costs import dry_run as dry
            from re2llm_tui.data.dataset import Dataset

            def plan(client, db):
                return dry.train(client, db, Dataset.resolve(dataset, data_dir), limit=limit,
                                 prefill=prefill, rank_by=rank_by, samples=samples,
                                 workers=default_workers(workers, client))

            print_dry_run(plan, db=spec.db_path, model=model, api_base=api_base,
                          concurrency=concurrency, as_json=as_json, **decoding)
            return
        client = command_client(spec.db_path, model=model, api_base=api_base,
                                concurrency=concurrency, max_cost=max_cost, max_calls=max_calls,
                                transport=transport, max_reply_bytes=max_reply_bytes, **decoding)
        client.check()  # bad model / key / --api-base: one line, before any work
        spec.workers = default_workers(workers, client, client_procs)
        err = console(stderr=True)
        if client.is_demo_model and not as_json:
            err.print(f"[yellow]note:[/yellow] {escape(client.demo_notice)}")
        from re2llm_tui.evaluation.recommend import samples_note

        if samples_note(client, samples) and not as_json:
            err.print(f"[yellow]note:[/yellow] {escape(samples_note(client, samples))}")
        from re2llm_tui.costs.savings import cache_saved, last_call_id

        since = last_call_id(client.workspace())
        try:
            summary = _train_with_progress(spec, client, err, quiet=as_json)
            saved = cache_saved(client.workspace(), since_id=since, model=client.model)
        finally:
            client.close()
        if as_json:
            print(json.dumps({**summary.as_dict(), "cache_saved": saved.as_dict()}))
        else:
            _print_summary(summary, console(), saved)
        if summary.status == "stopped":
            err.print(f"[yellow]stopped:[/yellow] {escape(summary.reason, oneline=True)} "
                      f"(run {summary.run_id} at step "
                      f"{summary.step}; rerun the same command to resume)")
            raise SystemExit(stop_exit_code())

    @app.command("evaluate")
    def evaluate_cmd(
        dataset: str = DatasetOption,
        split: str = SplitOption,
        model: OptStr = ModelOption,
        reasoning_effort: OptStr = ReasoningEffortOption,
        reasoning: Optional[bool] = ReasoningOption,
        no_temperature: Optional[bool] = NoTemperatureOption,
        limit: Optional[int] = typer.Option(None, "--limit", "-n", help="first N sessions only"),
        sample: Optional[int] = SampleOption,
        samples: Optional[int] = SamplesOption,
        permutations: int = typer.Option(
            0, "--permutations",
            help="also re-ask the no-hint and agent rows with P (at most 100) seeded "
                 "shuffles of each "
                 "session's candidate order (--seed), and report the spread and NDCG@10 by "
                 "the target's position in the list"),
        content_only: bool = typer.Option(
            False, "--content-only", help="only the no-LLM content ranker row (seconds, even "
                                          "on thousands of sessions)"),
        out: OptPath = typer.Option(None, "--out", "-o", help="also write the table to FILE "
                                                              "(.md, .csv or .json)"),
        train_run: Optional[int] = typer.Option(None, "--train-run",
                                                help="the training run whose agent to evaluate "
                                                     "(default: the latest)"),
        no_oracle: bool = typer.Option(False, "--no-oracle", help="skip the per-session oracle "
                                       "(it needs every hint on every session)"),
        seed: int = typer.Option(0, "--seed", help="seed of the random-hint row, the bootstrap, "
                                                   "--sample and the candidate shuffles"),
        workers: Optional[int] = LocalWorkersOption,
        max_cost: Optional[float] = MaxCostOption, max_calls: Optional[int] = MaxCallsOption,
        api_base: Optional[List[str]] = ApiBaseOption,
        concurrency: Optional[int] = ConcurrencyOption,
        data_dir: OptPath = DataDirOption, db: OptPath = DbOption, as_json: bool = JsonOption,
        rank_by: str = RankByOption, dry_run: bool = DryRunOption,
        client_procs: Optional[int] = ClientProcsOption,
        transport: OptStr = TransportOption,
        max_reply_bytes: Optional[int] = MaxReplyBytesOption,
    ) -> None:
        """Compare no hint, the trained agent, a random hint, the best train hint, the oracle
        and a no-LLM content ranker on the same sessions (95% bootstrap CIs)."""
        from re2llm_tui.control import RunStop
        from re2llm_tui.data.dataset import Dataset
        from re2llm_tui.data.release import SPLITS
        from re2llm_tui.errors import UserError
        from re2llm_tui.evaluation.compare import check_permutations, check_samples, evaluate
        from re2llm_tui.llm.parsing import check_rank_by
        from re2llm_tui.store.workspace import open_workspace

        rank_by = check_rank_by(rank_by)
        check_permutations(permutations)     # bounded: one line before any work
        samples = check_samples(samples, permutations)
        ds = Dataset.resolve(dataset, data_dir)       # the edge: resolved once
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}: choose train or test")
        if limit is not None and limit < 1:
            raise UserError(f"--limit must be >= 1 (got {limit})")
        if limit is not None and sample is not None:
            raise UserError("give --limit or --sample, not both")
        if out is not None and out.suffix.lower() not in (".md", ".csv", ".json"):
            raise UserError(f"--out {out}: unknown format {out.suffix or '(none)'!r}; "
                            "use .md, .csv or .json")
        if out is not None:       # never onto the workspace or an SQLite file: before any work
            from re2llm_tui.safe_files import check_target
            from re2llm_tui.store.workspace import workspace_path

            check_target(out, workspace_path(db), what="--out")
        decoding = decoding_options(reasoning_effort, reasoning, no_temperature)
        if dry_run and not content_only:
            from re2llm_tui.costs import dry_run as dry

            def plan(client, wdb):
                return dry.evaluate(client, wdb, ds, split, limit=limit, sample=sample,
                                    seed=seed, oracle=not no_oracle, train_run=train_run,
                                    permutations=permutations, rank_by=rank_by,
                                    samples=samples,
                                    workers=default_workers(workers, client))

            print_dry_run(plan, db=db, model=model, api_base=api_base,
                          concurrency=concurrency, as_json=as_json, **decoding)
            return
        if dry_run:        # --content-only asks no LLM
            msg = {"command": "evaluate", "dry_run": True, "calls": 0, "to_pay": 0, "cost": 0.0}
            print(json.dumps(msg) if as_json else
                  "evaluate --content-only --dry-run: 0 LLM calls (the content ranker uses no "
                  "LLM), $0")
            return
        client = command_client(db, model=model, api_base=api_base, concurrency=concurrency,
                                max_cost=max_cost, max_calls=max_calls, transport=transport,
                                max_reply_bytes=max_reply_bytes, **decoding)
        if not content_only:
            client.check()
        err = console(stderr=True)
        if client.is_demo_model and not as_json and not content_only:
            err.print(f"[yellow]note:[/yellow] {escape(client.demo_notice)}")
        wdb = open_workspace(db)
        from re2llm_tui.costs.savings import cache_saved, last_call_id

        since = last_call_id(wdb)
        try:
            result = _evaluate_with_progress(evaluate, wdb, client, err, quiet=as_json,
                                             dataset=ds, split=split,
                                             limit=limit, train_run=train_run,
                                             oracle=not no_oracle, seed=seed, rank_by=rank_by,
                                             sample=sample, permutations=permutations,
                                             content_only=content_only, samples=samples,
                                             workers=default_workers(workers, client,
                                                                     client_procs))
            saved = cache_saved(wdb, since_id=since, model=client.model)
        except RunStop as exc:
            err.print(f"[yellow]stopped:[/yellow] {escape(exc, oneline=True)} (finished "
                      "outcomes are stored; rerun the same command to resume)")
            raise SystemExit(stop_exit_code()) from None
        finally:
            client.close()
            wdb.conn.close()
        if out is not None:
            from re2llm_tui.store.workspace import workspace_path

            result.export(out, workspace_path(db))
        if as_json:
            print(json.dumps({**result.as_dict(), "cache_saved": saved.as_dict()}, indent=2))
            return
        con = console()
        con.print(result.table())
        if result.order is not None:
            for line in result.order.lines():
                con.print(escape(line))
        for note in result.notes:
            con.print(f"[dim]note:[/dim] {escape(note)}")
        con.print(f"LLM calls: {result.llm_calls} sent, {result.cache_hits} from cache, "
                  f"{result.failed} failed; cost ${result.cost:.4f}; {saved.line()}"
                  + (f"; written to {escape(out)}" if out else ""))


def _train_with_progress(spec, client, err, *, quiet: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from re2llm_tui.utilization.training import train

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False, disable=quiet) as bar:
        tasks: dict[str, int] = {}

        def on_event(kind, payload):
            if kind == "run":
                if not quiet:
                    word = "resumed" if payload["resumed"] else "started"
                    err.print(f"training run {payload['run_id']} {word}: "
                              f"{payload['n_sessions']} sessions x {payload['n_actions']} actions "
                              f"(KB {payload['kb_version']}); reward table "
                              f"{payload['table_known']}/{payload['table_size']} outcomes stored")
                tasks["train"] = bar.add_task("train", total=payload["total_steps"],
                                              completed=payload["step"], info="")
            elif kind == "table":
                if "table" not in tasks:
                    tasks["table"] = bar.add_task("reward table", total=payload.total, info="")
                bar.update(tasks["table"], completed=payload.done, total=payload.total,
                           info=table_info(payload))
            elif kind == "scalars":
                vals = {r["name"]: r["value"] for r in payload}
                step = payload[0]["step"] if payload else 0
                bar.update(tasks["train"], completed=step,
                           info=f"reward {vals.get('charts/reward_mean', 0):+.4f} · "
                                f"eval {vals.get('charts/eval_reward', 0):+.4f} · "
                                f"{vals.get('charts/steps_per_s', 0):,.0f} steps/s · "
                                f"LLM calls {int(vals.get('charts/llm_calls', 0))}")

        return train(spec, on_event=on_event, client=client)


def print_dry_run(plan, *, db, model, api_base, concurrency, as_json: bool,
                  **decoding) -> None:
    """``--dry-run`` of a command: ``plan(client, db)`` gives the
    :class:`~re2llm_tui.costs.preflight.Estimate`, printed as a table (or JSON)."""
    from re2llm_tui.costs.dry_run import dry_client

    client = dry_client(db, model=model, api_bases=api_base or (), concurrency=concurrency,
                        **decoding)
    try:
        est = plan(client, client.workspace())
    finally:
        client.close()
    print_estimate(est, as_json)


def _print_summary(s, con, saved=None) -> None:
    from rich.table import Table

    t = Table(title=text(f"training run {s.run_id}: {s.status} ({s.reason})", oneline=True),
              show_header=False)
    t.add_column(style="bold")
    t.add_column()
    sc = s.scalars
    t.add_row("steps", f"{s.step:,} of {s.total_steps:,}" + (" (resumed)" if s.resumed else ""))
    t.add_row("sessions x actions", f"{s.n_sessions} x {len(s.hint_ids)} (KB {s.kb_version})")
    if sc:
        t.add_row("reward (last window)", f"{sc.get('charts/reward_mean', 0):+.4f}")
        t.add_row("greedy policy reward (train)", f"{sc.get('charts/eval_reward', 0):+.4f}")
    if s.random_reward is not None:
        t.add_row("random policy reward (train)", f"{s.random_reward:+.4f}")
    if s.best_hint is not None:
        t.add_row("best single hint (train)",
                  f"hint {s.best_hint['hint_id']}: {s.best_hint['mean_reward']:+.4f}")
    used = [(s.hint_ids[a], c) for a, c in enumerate(s.greedy_hist) if c]
    used.sort(key=lambda x: -x[1])
    t.add_row("greedy hint choice", ", ".join(f"{h}: {c}" for h, c in used[:8])
              + (" …" if len(used) > 8 else ""))
    t.add_row("reward table", f"{s.table_known}/{s.table_size} outcomes stored")
    t.add_row("LLM", f"{s.llm_calls} calls sent, {s.cache_hits} cache hits, {s.failed} failed, "
                     f"${s.cost:.4f}" + (f"; {saved.line()}" if saved is not None else ""))
    t.add_row("checkpoint", text(s.checkpoint))
    t.add_row("time", f"{s.seconds:.1f} s")
    con.print(t)


def _evaluate_with_progress(evaluate, db, client, err, *, quiet: bool, **kw):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=False, disable=quiet) as bar:
        task = bar.add_task("evaluate", total=None,
                            info=("content ranker: item embeddings (cached after the first run)"
                                  if kw.get("content_only") else ""))

        def on_progress(p):
            bar.update(task, completed=p.done, total=p.total, info=table_info(p))

        return evaluate(db, kw.pop("dataset"), client=client, progress=on_progress, **kw)


def table_info(p) -> str:
    """One line of reward-table progress: rows, rate, calls, cost."""
    from re2llm_tui.costs.run_plan import fmt_duration

    rate = f"{p.per_min:.1f}/min · ETA {fmt_duration(p.eta_s)}" if p.per_min else "—/min"
    return (f"rows {p.rows_done}/{p.rows_total} · {rate} · calls {p.calls} · "
            f"cache {p.cache_hits} · failed {p.failed} · ${p.cost:.4f}")


def stop_exit_code() -> int:
    """130 when the user interrupted (Ctrl+C / SIGTERM), 3 for a budget stop."""
    from re2llm_tui.control import current

    return 130 if current().stopped else 3
