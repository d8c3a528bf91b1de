"""``re2llm-tui rewards ...``: the reward table for analysis elsewhere (a thin layer over
:func:`re2llm_tui.kb.evidence.long_form`)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
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
#: names of SQLite files and their side files: an export never replaces one
_SQLITE_NAMES = (".sqlite", ".sqlite3", ".db", "-wal", "-shm", "-journal")


def spreadsheet_cell(value):
    """A CSV cell a spreadsheet will not run as a formula: text starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return gets a leading apostrophe; numbers stay."""
    # TODO(safe_files): switch to re2llm_tui.safe_files.spreadsheet_row (branch i19-files)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _check_target(path: Path, workspace: Path) -> None:
    """Refuse the workspace, its side files and any file named like an SQLite file; the
    workspace is compared by ``samefile`` and never opened."""
    # TODO(safe_files): switch to re2llm_tui.safe_files.check_target (branch i19-files)
    from re2llm_tui.errors import UserError

    real = os.path.realpath(path)
    ws = os.path.realpath(workspace)
    same = real == ws
    if not same and os.path.exists(real) and os.path.exists(ws):
        same = os.path.samefile(real, ws)
    if same or real in (ws + "-wal", ws + "-shm", ws + "-journal"):
        raise UserError(f"{path}: is the workspace in use (or its side file); refusing to "
                        "overwrite it; choose another file name")
    if real.endswith(_SQLITE_NAMES):
        raise UserError(f"{path}: is named like an SQLite file; refusing to write an export "
                        "there; choose another file name")
    if os.path.isdir(real):
        raise UserError(f"{path}: is a directory")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file in the target's folder, fsync, then replace."""
    # TODO(safe_files): switch to re2llm_tui.safe_files.atomic_write (branch i19-files)
    from re2llm_tui.errors import UserError

    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():
        raise UserError(f"{path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.realpath(path))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _render(rows, fmt: str) -> str:
    import csv
    import io

    from re2llm_tui.kb.evidence import LONG_FORM

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
               db: Optional[Path] = DbOption,
               data_dir: Optional[Path] = DataDirOption) -> None:
    """Write the reward table long-form: a row per (session, action) with the hint text,
    NDCG@10 with and without the hint, the reward, the model and the context."""
    from re2llm_tui.errors import UserError
    from re2llm_tui.kb import KnowledgeBase, evidence
    from re2llm_tui.store.workspace import open_workspace, workspace_path

    if fmt not in FORMATS:
        raise UserError(f"--format must be csv or jsonl (got {fmt!r})")
    if output is not None and str(output) != "-":
        _check_target(output, workspace_path(db))
    from re2llm_tui.data.release import Dataset

    ds = Dataset.resolve(dataset, data_dir)
    kbh = KnowledgeBase(open_workspace(db, create=False), ds)
    text = _render(evidence.long_form(kbh.db, kbh.name, kbh.hints(), model=model,
                                      context=context), fmt)
    if output is None or str(output) == "-":
        sys.stdout.write(text)
        return
    _write_atomic(output, text)
    from re2llm_tui.safe_text import clean

    n = text.count("\n") - (1 if fmt == "csv" else 0)
    print(clean(f"wrote {n} rows to {output}"), file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add the ``rewards`` command group to ``app``."""
    app.add_typer(rewards_app, name="rewards")
