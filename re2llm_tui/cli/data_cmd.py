"""``re2llm-tui data info``."""

from __future__ import annotations

import json

import typer

from re2llm_tui.cli.common import (
    DataDirOption,
    DatasetOption,
    JsonOption,
    OptPath,
    console,
)
from re2llm_tui.safe_text import text


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Inspect the release datasets.", no_args_is_help=True)

    @data.command("info")
    def info(dataset: str = DatasetOption, data_dir: OptPath = DataDirOption,
             as_json: bool = JsonOption) -> None:
        """Sessions per split, history lengths, candidates, distinct items, target coverage."""
        from rich.table import Table

        from re2llm_tui.data.info import dataset_overview
        from re2llm_tui.data.release import Dataset

        ov = dataset_overview(Dataset.resolve(dataset, data_dir))
        if as_json:
            print(json.dumps(ov, indent=2))
            return
        t = Table(title=text(f"{ov['dataset']} — {ov['path']}"))
        for col in ("split", "sessions", "history len (min/mean/max)", "candidates/session",
                    "distinct items", "target in candidates", "pickled id-sessions"):
            t.add_column(col, justify="right")
        for split, s in ov["splits"].items():
            cands = (str(s["candidates_min"]) if s["candidates_min"] == s["candidates_max"]
                     else f"{s['candidates_min']}–{s['candidates_max']}")
            t.add_row(split, str(s["sessions"]),
                      f"{s['history_min']} / {s['history_mean']:.1f} / {s['history_max']}",
                      cands, str(s["distinct_items"]), f"{s['target_in_candidates']:.1%}",
                      "—" if s["pickled_id_sessions"] is None else str(s["pickled_id_sessions"]))
        out = console()
        out.print(t)
        if "movie_join" in ov:
            j = ov["movie_join"]
            out.print(f"movies.dat join: {j['candidate_mentions']} candidate mentions, "
                      f"{j['exact_title']} exact, {j['matched_case_insensitive']} after "
                      f"case folding / unquoting TV series, {j['unmatched']} unmatched, {j['ambiguous_resolved']} "
                      "shared by several films (resolved by release usage, then popularity, "
                      "then lowest id)")
        out.print("[dim]Prompts and titles come from the text JSON; the pickles differ in "
                  "size (movie test: 4,790) and their game ids mostly have no title.[/dim]")

    app.add_typer(data, name="data")
