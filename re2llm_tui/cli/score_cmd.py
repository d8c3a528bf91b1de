"""``re2llm-tui score``: import and score recorded LLM outputs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from re2llm_tui.cli.common import (
    DataDirOption,
    DatasetOption,
    DbOption,
    JsonOption,
    OptPath,
    OptStr,
    RankByOption,
    SplitOption,
    console,
)
from re2llm_tui.safe_text import escape


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score(file: Path = typer.Argument(..., help="recorded outputs in the release's text format"),
              dataset: str = DatasetOption, split: str = SplitOption,
              data_dir: OptPath = DataDirOption, db: OptPath = DbOption,
              name: OptStr = typer.Option(None, help="run name"),
              model: OptStr = typer.Option(None, help="model that produced the file"),
              rank_by: str = RankByOption, as_json: bool = JsonOption) -> None:
        """Check labels, score the outputs, store them as a run and print the metrics.

        FILE is the release's recorded-output text format (its example_*_base.txt):
        one block per session of the split, in the order of the split's text JSON,
        blocks separated by blank lines:

        \b
            Label:<the session's target title>
            Output: 1. <title>
            2. <title>
            ...
            10. <title>

        UTF-8 is read, else ISO-8859-1 (the release's files). The block count must
        equal the split's session count. A label that differs from the session's
        target is reported and that block is not scored. Listed lines that match no
        candidate count as hallucinations; see --rank-by for how they affect ranks.
        """
        from re2llm_tui.data.dataset import Dataset
        from re2llm_tui.evaluation.metrics import format_table, to_json
        from re2llm_tui.evaluation.scoring import score_file, store_import
        from re2llm_tui.store.workspace import open_workspace

        from re2llm_tui.llm.parsing import check_rank_by

        # the flags first (no data read for a typo), then parse and check everything
        # before the workspace is touched
        rank_by = check_rank_by(rank_by)
        result = score_file(file, Dataset.resolve(dataset, data_dir), split, rank_by=rank_by)
        store_import(open_workspace(db), result, run_name=name, model=model)
        if as_json:
            out = to_json(result.summary)
            out.update({"run_id": result.run_id, "label_mismatches": len(result.mismatches),
                        "hallucinations": result.hallucinations, "rank_by": result.rank_by})
            print(json.dumps(out))
            return
        con = console()
        con.print(format_table({f"run {result.run_id}: {Path(file).name}": result.summary},
                               title=f"{result.dataset}/{split} — {result.n_blocks} blocks "
                                     f"({result.encoding}; rank by {result.rank_by})"))
        if result.mismatches:
            con.print(f"[yellow]{len(result.mismatches)} label(s) do not match the session's "
                      "target and were not scored:[/yellow]")
            for sid, label, target in result.mismatches[:10]:
                con.print(escape(f"  {sid}: label {label!r} != target {target!r}",
                                 oneline=True))
        con.print(f"{result.hallucinations} listed item(s) matched no candidate (hallucinations).")
