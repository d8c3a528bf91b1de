"""``re2llm-tui rewards ...``: the reward table for analysis elsewhere (a thin layer over
:func:`re2llm_tui.kb.evidence.long_form`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from re2llm_tui.cli.common import DataDirOption, DatasetOption, DbOption

rewards_app = typer.Typer(
    name="rewards",
    help="The reward table (NDCG@10 with a hint minus without, per session and hint).",
    no_args_is_help=True,
)

FORMATS = ("csv", "jsonl")


def _render(rows, fmt: str) -> str:
    import csv
    import io

    from re2llm_tui.kb.evidence import LONG_FORM
    from re2llm_tui.safe_files import spreadsheet_cell

    buf = io.StringIO()
    if fmt == "csv":
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(LONG_FORM)
        for r in rows:
            w.writerow(["" if r[c] is None else spreadsheet_cell(r[c]) for c in LONG_FORM])
    else:
        for r in rows:
            buf.write(json.dumps({c: r[c] for c in LONG_FORM}, ensure_ascii=True) + "\n")
    return buf.getvalue()


@rewards_app.command("export")
def export_cmd(dataset: str = DatasetOption,
               fmt: str = typer.Option("csv", "--format", "-f", help="csv or jsonl"),
               output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                     help="file to write (default: stdout)"),
               model: Optional[str] = typer.Option(None, "--model", "-m",
                                                   help="only this model's outcomes"),
               context: Optional[str] = typer.Option(None, "--context",
                                                     help="only this context's outcomes"),
               split: str = typer.Option("all", "--split", "-s",
                                         help="only the outcomes of this split's sessions: "
                                              "train, test or all (a raw dump: all)"),
               db: Optional[Path] = DbOption,
               data_dir: Optional[Path] = DataDirOption) -> None:
    """Write the reward table long-form: a row per (session, action) with the session's
    split, the hint text, NDCG@10 with and without the hint, the reward, the model and the
    context."""
    from re2llm_tui.errors import UserError
    from re2llm_tui.kb import KnowledgeBase, evidence
    from re2llm_tui.safe_files import atomic_write, check_target
    from re2llm_tui.store.workspace import open_workspace, workspace_path

    if fmt not in FORMATS:
        raise UserError(f"--format must be csv or jsonl (got {fmt!r})")
    if split not in evidence.EVIDENCE_SPLITS:
        raise UserError(f"--split must be train, test or all (got {split!r})")
    if output is not None and str(output) != "-":
        check_target(output, workspace_path(db), what="--output")
    from re2llm_tui.data.dataset import Dataset

    ds = Dataset.resolve(dataset, data_dir)
    kbh = KnowledgeBase(open_workspace(db, create=False), ds)
    text = _render(evidence.long_form(kbh.db, kbh.name, kbh.hints(), model=model,
                                      context=context, split=split), fmt)
    if output is None or str(output) == "-":
        sys.stdout.write(text)
        return
    atomic_write(output, text, workspace_path(db), what="--output")
    from re2llm_tui.safe_text import clean

    n = text.count("\n") - (1 if fmt == "csv" else 0)
    print(clean(f"wrote {n} rows to {output}"), file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add the ``rewards`` command group to ``app``."""
    app.add_typer(rewards_app, name="rewards")
