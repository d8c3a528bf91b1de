"""``re2llm-tui explore``: Reflective Exploration over missed sessions (thin layer over
:mod:`re2llm_tui.exploration.reflection`)."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from re2llm_tui.cli.common import (
    ApiBaseOption,
    DataDirOption,
    DatasetOption,
    DbOption,
    DryRunOption,
    JsonOption,
    MaxCallsOption,
    MaxCostOption,
    ModelOption,
    OptPath,
    OptStr,
    NoTemperatureOption,
    ReasoningEffortOption,
    ReasoningOption,
    decoding_options,
)
from re2llm_tui.safe_text import escape


def register(app: typer.Typer) -> None:
    """Add ``explore`` to ``app``."""

    @app.command("explore")
    def explore_cmd(
        dataset: str = DatasetOption,
        split: str = typer.Option("train", "--split", help="train (the paper) or test"),
        sessions: Optional[int] = typer.Option(
            None, "--sessions", "-n", min=1,
            help="reflect on this many missed sessions not reflected yet (default: all)"),
        session: OptStr = typer.Option(None, "--session", help="only this session, e.g. train-0042"),
        model: OptStr = ModelOption,
        reasoning_effort: OptStr = ReasoningEffortOption,
        reasoning: Optional[bool] = ReasoningOption,
        no_temperature: Optional[bool] = NoTemperatureOption,
        api_base: Optional[List[str]] = ApiBaseOption,
        max_cost: Optional[float] = MaxCostOption,
        max_calls: Optional[int] = MaxCallsOption,
        auto_accept: bool = typer.Option(False, "--auto-accept",
                                         help="accept surviving hints instead of queueing them as candidates"),
        threshold: float = typer.Option(0.8, "--threshold",
                                        help="cosine similarity at which a hint is redundant"),
        miss_k: int = typer.Option(10, "--miss-k", min=1,
                                   help="reflect when the target is not in the top K"),
        effect_k: int = typer.Option(10, "--effect-k", min=1,
                                     help="a hint is effective if the target enters the top K"),
        effect_mode: str = typer.Option("enter", "--effect-mode",
                                        help="enter (target enters top K) or improve (NDCG improves)"),
        llm_redundancy: bool = typer.Option(True, "--llm-redundancy/--no-llm-redundancy",
                                            help="also ask the LLM whether a hint repeats an idea"),
        max_hints: int = typer.Option(5, "--max-hints", min=1, help="hints taken per reflection"),
        max_tokens: Optional[int] = typer.Option(
            400, "--max-tokens", min=16, help="max tokens of each reflection turn's reply"),
        baseline_run: Optional[int] = typer.Option(
            None, "--baseline-run", help="reuse this run's replies as turn 1 (default: newest matching)"),
        db: OptPath = DbOption,
        data_dir: OptPath = DataDirOption,
        as_json: bool = JsonOption,
        dry_run: bool = DryRunOption,
    ) -> None:
        """Reflective Exploration: ask the LLM why it missed, collect hints, check them.

        Resumable: sessions reflected before with the same model are skipped. Surviving hints
        become candidates (review them with `re2llm-tui kb list --status candidate`).
        """
        import asyncio
        import sys

        from re2llm_tui.cli.common import console
        from re2llm_tui.data.dataset import Dataset
        from re2llm_tui.errors import UserError
        from re2llm_tui.exploration.reflection import ReflectConfig, explore
        from re2llm_tui.kb import KnowledgeBase
        from re2llm_tui.llm.client import LLMClient
        from re2llm_tui.store.workspace import open_workspace, workspace_path

        if session and sessions:
            raise UserError("give either --sessions or --session, not both")
        ds = Dataset.resolve(dataset, data_dir)       # the edge: resolved once
        dataset = ds.name
        config = ReflectConfig(miss_k=miss_k, effect_k=effect_k, effect_mode=effect_mode,
                               sim_threshold=threshold, llm_redundancy=llm_redundancy,
                               max_hints=max_hints, auto_accept=auto_accept,
                               turn_max_tokens=max_tokens,
                               baseline_run=baseline_run)
        config.validate()
        # fail fast, before the progress bar: unknown session, missing data, workspace
        if session:
            ds.session(session)
        else:
            ds.count(split)
        path = workspace_path(db)
        decoding = decoding_options(reasoning_effort, reasoning, no_temperature)
        if dry_run:
            from re2llm_tui.costs import dry_run as dry
            from re2llm_tui.cli.train_cmd import print_dry_run

            def plan(client, db_):
                return dry.explore(client, db_, ds, split=split, sessions=sessions,
                                   session_id=session, config=config)

            print_dry_run(plan, db=path, model=model, api_base=api_base, concurrency=None,
                          as_json=as_json, **decoding)
            return
        wdb = open_workspace(path)
        KnowledgeBase(wdb, ds)                        # seeded once, before the progress bar
        client = LLMClient(path, model=model, api_bases=api_base or (), max_cost=max_cost,
                           max_calls=max_calls, **decoding)
        client.check()
        err = console(stderr=True)
        if client.is_demo_model:
            err.print(f"[yellow]{escape(client.demo_notice)}[/yellow]")

        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        total = 1 if session else sessions
        progress = Progress(TextColumn("reflecting"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("{task.fields[info]}", markup=False),
                            console=err, transient=False, disable=as_json)

        with progress:
            task = progress.add_task("explore", total=total, info="")

            def on_progress(p) -> None:
                s = p.summary
                info = (f"{p.session_id} {p.stage} | hits {s.hits} | proposed {s.proposed} | "
                        f"added {s.added}")
                progress.update(task, completed=p.reflected, info=info)

            async def main():
                return await explore(wdb, client, ds, split=split, sessions=sessions,
                                     session_id=session, config=config,
                                     on_progress=on_progress)

            try:
                summary = asyncio.run(main())
            finally:
                client.close()

        if as_json:
            print(json.dumps(summary.as_dict(), indent=2))
            return
        out = console()
        out.print(f"explore {dataset}/{escape(split)} with {escape(summary.model, oneline=True)}:")
        out.print(f"  sessions reflected: {summary.reflected}  (examined {summary.examined}, "
                  f"baseline hits {summary.hits}, failed {summary.failed}, "
                  f"skipped as done before {summary.already})")
        out.print(f"  hints proposed: {summary.proposed}")
        out.print(f"  failing leak check: {summary.leak}")
        out.print(f"  failing effectiveness check: {summary.ineffective}")
        out.print(f"  failing redundancy check: {summary.redundant}")
        status = "accepted" if auto_accept else "candidates"
        out.print(f"  {status} added: {summary.added}")
        out.print(f"  LLM calls: {summary.calls} sent, {summary.cache_hits} from cache, "
                  f"${summary.cost:.4f}")
        if summary.stopped:
            out.print(f"stopped early: {escape(summary.stopped, oneline=True)}")
            from re2llm_tui.control import current

            if current().stopped:        # Ctrl+C / SIGTERM: finished reflections are kept
                raise SystemExit(130)
            print("re2llm-tui: budget reached; rerun the same command to resume", file=sys.stderr)
        if summary.added and not auto_accept:
            out.print(f"review them: re2llm-tui kb list -d {dataset} --status candidate")
