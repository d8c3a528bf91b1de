"""``re2llm-tui data info`` and ``re2llm-tui data import``."""

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
    console,
)
from re2llm_tui.safe_text import escape, text


def _num(value, fmt: str = "{}") -> str:
    return "—" if value is None else fmt.format(value)


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Inspect the datasets; import your own session data.",
                       no_args_is_help=True)

    @data.command("info")
    def info(dataset: str = DatasetOption, data_dir: OptPath = DataDirOption,
             db: OptPath = DbOption, as_json: bool = JsonOption) -> None:
        """Sessions per split, history lengths, candidates, distinct items, target coverage."""
        from rich.table import Table

        from re2llm_tui.data.info import dataset_overview
        from re2llm_tui.data.dataset import Dataset

        ds = Dataset.resolve(dataset, data_dir)
        ov = dataset_overview(ds)
        if ds.imported:
            ov["import"]["workspace"] = _workspace_status(db, ds.name,
                                                          ov["import"]["sessions_sha256"])
        if as_json:
            print(json.dumps(ov, indent=2))
            return
        t = Table(title=text(f"{ov['dataset']} — {ov['path']}"))
        # headings fold onto more lines rather than being cut (80 columns, a file, a CI log)
        for col in ("split", "sessions", "history min / mean / max", "candidates", "items",
                    "target covered", "pickled sessions"):
            t.add_column(col, justify="right", overflow="fold")
        for split, s in ov["splits"].items():
            if not s["sessions"]:
                t.add_row(split, "0", "—", "—", "0", "—", "—")
                continue
            cands = (str(s["candidates_min"]) if s["candidates_min"] == s["candidates_max"]
                     else f"{s['candidates_min']}–{s['candidates_max']}")
            t.add_row(split, str(s["sessions"]),
                      f"{s['history_min']} / {s['history_mean']:.1f} / {s['history_max']}",
                      cands, str(s["distinct_items"]), f"{s['target_in_candidates']:.1%}",
                      _num(s["pickled_id_sessions"]))
        out = console()
        out.print(t)
        if "movie_join" in ov:
            j = ov["movie_join"]
            out.print(f"movies.dat join: {j['candidate_mentions']} candidate mentions, "
                      f"{j['exact_title']} exact, {j['matched_case_insensitive']} after "
                      f"case folding / unquoting TV series, {j['unmatched']} unmatched, {j['ambiguous_resolved']} "
                      "shared by several films (resolved by release usage, then popularity, "
                      "then lowest id)")
        if ds.imported:
            _print_import(out, ov)
            return
        out.print("[dim]Prompts and titles come from the text JSON; the pickles differ in "
                  "size (movie test: 4,790) and their game ids mostly have no title.[/dim]")

    @data.command("import")
    def import_(
        name: str = typer.Argument(..., help="the new dataset's name (letters, digits, - _); "
                                             "then use it as --dataset NAME"),
        sessions: Path = typer.Option(
            ..., "--sessions",
            help="sessions: JSON lines {history, target[, candidates][, split]}, a "
                 "release-format pickle, or a user,item,timestamp CSV/TSV log (cut into "
                 "sessions: one user's day, more than 3 items, the last one the target)"),
        items: Path = typer.Option(
            ..., "--items",
            help="items: CSV/TSV/JSON lines with id and title (other columns are attributes "
                 "for the session encoder), or HetRec movies.dat"),
        noun: str = typer.Option("item", "--noun",
                                 help="what an item is, in the prompt: movie, video game, "
                                      "book, ..."),
        candidates: int = typer.Option(50, "--candidates",
                                       help="candidates per session, the target included"),
        seed: int = typer.Option(0, "--seed", help="seed of the drawn negatives and the split"),
        test_share: float = typer.Option(
            0.2, "--test-share",
            help="share of the sessions (those the file gives no split) put in the test "
                 "split; 1: all"),
        data_dir: OptPath = DataDirOption, db: OptPath = DbOption, as_json: bool = JsonOption,
    ) -> None:
        """Import your own session data as a dataset (--dataset NAME everywhere).

        Missing candidates are drawn with --seed (negatives outside the session) and frozen
        with their SHA-256, so every later run sees the same ones.  The data goes to
        <data-dir>/imported/NAME (default ./data/imported/NAME); the KB starts empty.
        """
        from re2llm_tui.data.imported import import_dataset
        from re2llm_tui.store.workspace import open_workspace

        result = import_dataset(name, sessions, items, data_dir=data_dir, noun=noun,
                                n_candidates=candidates, seed=seed, test_share=test_share,
                                db=lambda: open_workspace(db))   # once the files read well
        if as_json:
            print(json.dumps(result.as_dict(), indent=2))
            return
        out = console()
        c = result.counts
        out.print(f"imported [bold]{escape(result.name)}[/bold]: {c['train']} train + "
                  f"{c['test']} test sessions, {result.items} items "
                  f"({result.sessions_format} sessions, {result.items_format} items) "
                  f"-> {escape(str(result.folder))}")
        notes = []
        if result.drawn:
            notes.append(f"negatives drawn for {result.drawn} sessions (seed {seed})")
        if result.target_inserted:
            notes.append(f"target inserted into {result.target_inserted} given negative sets")
        if result.repeats_replaced or result.title_clashes_replaced:
            notes.append(f"replaced by drawn negatives: {result.repeats_replaced} candidates "
                         f"given twice, {result.title_clashes_replaced} titled like another "
                         "candidate of the session")
        if result.shared_titles:
            notes.append(f"{result.shared_titles} titles are shared by several items (shown "
                         "alike, as in the release; never twice in one candidate set)")
        dropped = result.notes.get("short_days_dropped")
        if dropped:
            notes.append(f"{dropped} user-days with 3 or fewer interactions skipped")
        for note in notes:
            out.print(f"  {escape(note)}")
        out.print(f"  candidates frozen: sha256 {result.candidates_sha256[:16]}…")
        out.print(f"[dim]Next: re2llm-tui data info --dataset {escape(result.name)}"
                  + (f" --data-dir {escape(str(data_dir))}" if data_dir else "") + "[/dim]")

    app.add_typer(data, name="data")


def _workspace_status(db, name: str, sessions_sha256: str) -> str:
    """Whether the workspace recorded this import (never creates a workspace)."""
    from re2llm_tui.data.imported import workspace_record
    from re2llm_tui.errors import UserError
    from re2llm_tui.store.workspace import open_workspace, workspace_path

    path = workspace_path(db)
    if not path.is_file():
        return f"{path}: no workspace yet"
    try:
        rec = workspace_record(open_workspace(path, create=False), name)
    except UserError as exc:
        return str(exc)
    if rec is None:
        return f"{path}: not recorded (imported with another --db)"
    if rec.get("sessions_sha256") == sessions_sha256:
        return f"{path}: recorded {rec.get('imported_at', '')}, same sessions"
    return f"{path}: recorded a DIFFERENT import of this name — its results do not match"


def _print_import(out, ov: dict) -> None:
    imp = ov["import"]
    cov = [s["target_in_candidates"] for s in ov["splits"].values() if s["sessions"]]
    src = imp["source"]
    out.print(f"imported {escape(imp['created_at'])}: {escape(src['sessions']['format'])} "
              f"sessions from {escape(src['sessions']['path'])}, "
              f"{escape(src['items']['format'])} items from {escape(src['items']['path'])}")
    out.print(f"noun {escape(imp['noun'])}; {imp['n_candidates']} candidates a session, "
              f"seed {imp['seed']}: negatives drawn for {imp['drawn']} sessions, "
              f"{imp['repeats_replaced']} repeated and {imp['title_clashes_replaced']} "
              f"same-title candidates replaced, target inserted into "
              f"{imp['target_inserted']}; test share {imp['test_share']}")
    out.print(f"items: {imp['items']} used, {imp['items_with_attributes']} with attributes "
              f"(item text), {imp['shared_titles']} titles shared by several items; target "
              f"coverage {min(cov):.1%}" if cov else "items: none")
    out.print(f"candidates frozen: sha256 {imp['candidates_sha256']}")
    out.print(f"workspace: {escape(imp['workspace'])}")
