"""``re2llm-tui run``: open the Textual workbench (Textual is imported only here, when run)."""

from __future__ import annotations

from typing import List, Optional

import typer

from re2llm_tui.cli.common import (
    ApiBaseOption,
    ClientProcsOption,
    DataDirOption,
    DatasetOption,
    DbOption,
    MaxReplyBytesOption,
    ModelOption,
    OptPath,
    OptStr,
    TransportOption,
    NoTemperatureOption,
    ReasoningEffortOption,
    ReasoningOption,
    SamplesOption,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("run")
    def run(dataset: str = DatasetOption,
            model: OptStr = ModelOption,
            reasoning_effort: OptStr = ReasoningEffortOption,
            reasoning: Optional[bool] = ReasoningOption,
            no_temperature: Optional[bool] = NoTemperatureOption,
            db: OptPath = DbOption,
            data_dir: OptPath = DataDirOption,
            split: OptStr = typer.Option(None, "--split", "-s",
                                         help="split browsed on the sessions screen (default: "
                                         "train, or test for a dataset without train sessions)"),
            api_base: Optional[List[str]] = ApiBaseOption,
            train_steps: Optional[int] = typer.Option(
                None, "--train-steps", help="PPO steps of a training run started in the app "
                "(default: the trainer's)"),
            train_limit: Optional[int] = typer.Option(
                None, "--train-limit", help="train on the first N training sessions only"),
            train_prefill: bool = typer.Option(
                False, "--train-prefill", help="compute the whole reward table before PPO"),
            eval_limit: Optional[int] = typer.Option(
                None, "--eval-limit", help="evaluate on the first N sessions of the test "
                "split only"),
            client_procs: Optional[int] = ClientProcsOption,
            transport: OptStr = TransportOption,
            max_reply_bytes: Optional[int] = MaxReplyBytesOption,
            samples: Optional[int] = SamplesOption,
            ) -> None:
        """Open the workbench: sessions, recommendations, reflections, hints, training, evaluation."""
        from re2llm_tui.data.release import SPLITS
        from re2llm_tui.errors import UserError

        if split is not None and split not in SPLITS:
            raise UserError(f"unknown split {split!r}: choose train or test")
        for name, value in (("--train-steps", train_steps), ("--train-limit", train_limit),
                            ("--eval-limit", eval_limit)):
            if value is not None and value < 1:
                raise UserError(f"{name} must be >= 1 (got {value})")
        from re2llm_tui.llm.decoding import check_samples

        samples = check_samples(samples)            # bounded: one line before the UI opens
        train = {k: v for k, v in (("steps", train_steps), ("limit", train_limit)) if v}
        if train_prefill:
            train["prefill"] = True
        llm = {"api_bases": list(api_base)} if api_base else {}
        # a bad model string, a missing key or an unreachable --api-base: one line now,
        # not a notification after the UI has opened
        from re2llm_tui.llm.models import check_model, resolve_model

        model = check_model(resolve_model(model), list(api_base or ()))
        from re2llm_tui.llm.transport import resolve_transport, use_transport

        # the app's client and every job it spawns read $RE2LLM_TRANSPORT
        resolve_transport(use_transport(transport), model, list(api_base or ()))
        from re2llm_tui.llm.replies import use_max_reply_bytes

        use_max_reply_bytes(max_reply_bytes)   # read by the app's client and every job
        check_decoding(db, model, reasoning_effort, reasoning, no_temperature)
        evals = {"limit": eval_limit} if eval_limit else {}
        if client_procs is not None:
            from re2llm_tui.runtime.client_procs import check_client_procs

            # training's reward table and the evaluation: N client processes (default 1:
            # the UI keeps a core)
            train["workers"] = evals["workers"] = check_client_procs(client_procs)
        from re2llm_tui.tui.app import (  # Textual is imported only here
            make_app,
            run_app,
        )

        tui = make_app(dataset, model=model, db=db, data_dir=data_dir, split=split,
                       train_options=train, llm_options=llm, eval_options=evals,
                       samples=samples)
        code = run_app(tui)
        if code:
            raise SystemExit(code)   # the app crashed: a non-zero exit, never a silent 0


def check_decoding(db, model: str, effort: str | None, reasoning: bool | None,
                   no_temperature: bool | None) -> None:
    """``--reasoning-effort`` / ``--reasoning`` / ``--no-temperature`` for the app: an effort
    the model refuses is one line now; the effort becomes ``$RE2LLM_REASONING_EFFORT`` (read
    by the app's client and every job it spawns) and declarations are remembered in the
    workspace, where every client of the model reads them."""
    from re2llm_tui.llm.capabilities import Declared, decoding_profile, use_effort
    from re2llm_tui.llm.models import is_local_model

    effort = use_effort(effort)
    declared = {}
    if not is_local_model(model):
        from re2llm_tui.store.model_profiles import resolve_declared
        from re2llm_tui.store.workspace import open_workspace

        wdb = open_workspace(db)
        try:
            declared = resolve_declared(wdb, model, reasoning, no_temperature)
        finally:
            wdb.conn.close()
    decoding_profile(model, effort, Declared.of(declared))
