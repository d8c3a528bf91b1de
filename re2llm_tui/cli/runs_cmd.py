"""``re2llm-tui runs``: list, show, compare, export and delete the stored runs.

A thin layer over :mod:`re2llm_tui.store.catalog` (reading) and
:mod:`re2llm_tui.evaluation.run_compare` / :mod:`~re2llm_tui.evaluation.run_export`
(computing and writing).  Output runs (score, recommend, evaluate) are named by their
number, training runs by ``t<number>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from re2llm_tui.cli.common import DbOption, JsonOption, OptPath, OptStr, console
from re2llm_tui.safe_text import clean, escape, text

runs_app = typer.Typer(
    help="List, show, compare, export and delete stored runs (score, recommend, evaluate, "
         "train).",
    no_args_is_help=True,
)

#: kinds accepted by --kind even when the workspace has no run of them yet
KNOWN_KINDS = ("score", "recommend", "evaluate", "train")
_DATASET_ALIASES = {"game": "games", "movie": "movies"}

RunsDatasetOption = typer.Option(None, "--dataset", "-d",
                                 help="only runs of this dataset (games, movies, an imported "
                                      "dataset's name)")
MetricOption = typer.Option("ndcg@10", "--metric",
                            help="metric of the paired difference (hr@1, hr@5, hr@10, ndcg@5, "
                                 "ndcg@10, mrr@10)")
ResamplesOption = typer.Option(1000, "--resamples", help="bootstrap resamples (at most "
                                                          "100,000)")
SeedOption = typer.Option(0, "--seed", help="seed of the bootstrap resamples")


def _open(db):
    from re2llm_tui.store.workspace import open_workspace

    return open_workspace(db, create=False)


def _fmt(v, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _ci(summary: dict | None, m: str) -> str:
    if not summary or m not in summary or "ci" not in summary:
        return "—"
    lo, hi = summary["ci"][m]
    return f"{summary[m]:.3f} [{lo:.3f},{hi:.3f}]"


def _date(s: str | None) -> str:
    return (s or "")[:16].replace("T", " ") or "—"


def _status(rec: dict) -> str:
    if rec["status"] == "running" and not rec.get("alive"):
        return "running (process gone)"
    return rec["status"]


def _check_out(output: Path | None, db, folder: bool = False) -> None:
    """Refuse (one line) an output that is the workspace, its side files or an SQLite
    file, before any work."""
    if output is not None:
        from re2llm_tui.safe_files import check_target, check_target_dir
        from re2llm_tui.store.workspace import workspace_path

        (check_target_dir if folder else check_target)(output, workspace_path(db))


def _write_out(content: str, output: Path | None, what: str, db=None) -> None:
    """``content`` to ``output`` (written atomically, never onto the workspace or an
    SQLite file; one line on stderr says where) or to stdout."""
    import sys

    if output is None:
        sys.stdout.write(content)
        return
    from re2llm_tui.safe_files import atomic_write
    from re2llm_tui.store.workspace import workspace_path

    atomic_write(output, content, workspace_path(db))
    print(f"wrote {what} to {clean(str(output), oneline=True)}", file=sys.stderr)


#: minimum width a folding column is counted at when fitting a table (names, models)
_FOLD_MIN = 14


def _fitted_table(title: str, columns: list[tuple[str, str, int]], rows: list[list],
                  width: int):
    """A rich table of the columns (``(header, justify, priority)``, lower priority shown
    first) that fit in ``width``, in their given order; the caption names those left out
    (they are in ``--json`` and ``runs show``)."""
    from rich.table import Table

    def needed(i: int) -> int:
        cells = [columns[i][0], *(str(r[i]) for r in rows)]
        w = max(len(max(str(c).split() or [""], key=len)) if i else len(c) for c in cells)
        return min(w, _FOLD_MIN) + 3 if columns[i][1] == "fold" else \
            max(len(c) for c in map(str, cells)) + 3

    keep: set[int] = set()
    used = 1
    for i in sorted(range(len(columns)), key=lambda i: columns[i][2]):
        if keep and used + needed(i) > width:
            break                  # strictly by priority: never a minor column for a major
        keep.add(i)
        used += needed(i)
    left_out = [columns[i][0] for i in range(len(columns)) if i not in keep]
    t = Table(title=title, caption=("not shown at this width: " + ", ".join(left_out) +
                                    " (see --json or runs show)") if left_out else None)
    for i, (head, just, _) in enumerate(columns):
        if i in keep:
            t.add_column(head, justify="left" if just == "fold" else just,
                         overflow="fold")
    for r in rows:
        t.add_row(*(text(c, oneline=True) for i, c in enumerate(r) if i in keep))
    return t


def _output_table(records: list[dict], width: int):
    columns = [("run", "right", 0), ("kind", "left", 2), ("dataset/split", "left", 3),
               ("model", "fold", 6), ("prompt", "left", 11), ("KB", "left", 12),
               ("n", "right", 5), ("NDCG@10 [95% CI]", "right", 1), ("HR@10", "right", 10),
               ("failed", "right", 7), ("cost $", "right", 8), ("date", "left", 9),
               ("status", "left", 4), ("name", "fold", 1)]
    # a reasoning model's hidden tokens: a column only when some run has them
    reasoning = any(r.get("reasoning_tokens") for r in records)
    if reasoning:
        columns.insert(11, ("reasoning tok", "right", 9))
    rows = []
    for r in records:
        m = r.get("metrics")
        row = [r["ref"], r["kind"], f"{r['dataset']}/{r['split']}", r.get("model") or "—",
               r.get("prompt_version") or "—", r.get("kb_version") or "—",
               "—" if r.get("n") is None else str(r["n"]), _ci(m, "ndcg@10"),
               _fmt(m.get("hr@10") if m else None),
               str(r["failed"]) + (f" ({r['failed_calls']} calls)"
                                   if r["failed_calls"] else ""),
               f"{r['cost']:.4f}", _date(r["created_at"]), _status(r), r["name"]]
        if reasoning:
            row.insert(11, f"{r.get('reasoning_tokens') or 0:,}")
        rows.append(row)
    return _fitted_table("runs", columns, rows, width)


def _train_table(records: list[dict], width: int):
    columns = [("run", "right", 0), ("dataset", "left", 5), ("model", "fold", 8),
               ("KB", "left", 11), ("seed", "right", 3), ("steps", "right", 4),
               ("final", "right", 1), ("best (step)", "right", 1),
               ("final eval", "right", 7), ("best eval", "right", 6),
               ("sessions", "right", 10), ("cost $", "right", 9), ("date", "left", 12),
               ("status", "left", 2)]
    rows = []
    for r in records:
        best = _fmt(r["best_reward"], "+.4f")
        if r["best_step"] is not None:
            best += f" ({r['best_step']})"
        rows.append([r["ref"], r["dataset"], r["model"], r.get("kb_version") or "—",
                     str(r["seed"]), f"{r['step']}/{r['total_steps']}",
                     _fmt(r["final_reward"], "+.4f"), best,
                     _fmt(r["final_eval_reward"], "+.4f"), _fmt(r["best_eval_reward"], "+.4f"),
                     "—" if r.get("n") is None else str(r["n"]), f"{r['cost']:.4f}",
                     _date(r["created_at"]), _status(r)])
    return _fitted_table("training runs (reward: charts/reward_mean; eval: "
                         "charts/eval_reward)", columns, rows, width)


def _list_json(rec: dict) -> dict:
    from re2llm_tui.evaluation.metrics import METRICS, to_json

    out = {k: v for k, v in rec.items() if k not in ("metrics", "summary", "table")}
    m = rec.get("metrics")
    out["metrics"] = to_json(m) if isinstance(m, dict) and all(
        k in m for k in (*METRICS, "ci", "n")) else m
    return out


def _kv_table(title: str, pairs: list[tuple[str, object]]):
    from rich.table import Table

    t = Table(title=text(title, oneline=True), show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in pairs:
        shown = "—" if v is None or v == "" else (
            json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v))
        t.add_row(text(k, oneline=True), text(shown, oneline=True))
    return t


def _check_refs(refs: list[str]) -> list[str]:
    from re2llm_tui.store.catalog import parse_ref

    for r in refs:
        parse_ref(r)     # one line for a malformed id before anything is opened
    return refs


@runs_app.command("list")
def list_cmd(dataset: OptStr = RunsDatasetOption,
             kind: OptStr = typer.Option(None, "--kind", "-k",
                                         help="only runs of this kind: score, recommend, "
                                              "evaluate, train"),
             db: OptPath = DbOption, as_json: bool = JsonOption) -> None:
    """List every stored run (training runs as t<id>).

    Kind, dataset, split, model, prompt and KB version, n, NDCG@10 with its CI, failed
    sessions, cost, date, status.  Training runs: seed, steps, final and best reward.
    """
    from re2llm_tui.errors import UserError
    from re2llm_tui.store import catalog

    wdb = _open(db)
    if kind is not None:
        kind = kind.strip().lower()
        if kind not in KNOWN_KINDS and kind not in catalog.run_kinds(wdb):
            raise UserError(f"unknown run kind {kind!r} (one of: "
                            f"{', '.join(sorted(set(KNOWN_KINDS) | set(catalog.run_kinds(wdb))))})")
    if dataset is not None:
        dataset = _DATASET_ALIASES.get(dataset.strip().lower(), dataset.strip())
    records = catalog.list_runs(wdb, dataset=dataset, kind=kind)
    if as_json:
        print(json.dumps([_list_json(r) for r in records]))
        return
    con = console()
    if not records:
        con.print("no runs" + (" matching the filters" if dataset or kind else
                               " yet (score, recommend, evaluate and train store them)"))
        return
    out = [r for r in records if r["kind"] != "train"]
    train = [r for r in records if r["kind"] == "train"]
    if out:
        con.print(_output_table(out, con.width))
    if train:
        con.print(_train_table(train, con.width))


@runs_app.command("show")
def show_cmd(run: str = typer.Argument(..., help="run id (t<id> for a training run)"),
             db: OptPath = DbOption, as_json: bool = JsonOption) -> None:
    """One run: its configuration, metrics with CIs, per-session counts and LLM calls."""
    from re2llm_tui.store import catalog

    _check_refs([run])
    wdb = _open(db)
    rec = catalog.get_record(wdb, run)
    if rec["kind"] == "train":
        scalars = catalog.train_scalars(wdb, rec["id"])
        if as_json:
            out = _list_json(rec)
            out["summary"] = rec["summary"]
            out["scalars"] = {n: len(p) for n, p in scalars.items()}
            print(json.dumps(out))
            return
        con = console()
        con.print(_kv_table(f"training run {rec['ref']}", [
            ("dataset", rec["dataset"]), ("model", rec["model"]),
            ("KB version", rec["kb_version"]), ("actions (hint ids)", rec["hint_ids"]),
            ("seed", rec["seed"]), ("steps", f"{rec['step']}/{rec['total_steps']}"),
            ("sessions", rec["n"]), ("status", _status(rec)), ("error", rec["error"]),
            ("final reward", _fmt(rec["final_reward"], "+.4f")),
            ("best reward", _fmt(rec["best_reward"], "+.4f") + (
                f" (step {rec['best_step']})" if rec["best_step"] is not None else "")),
            ("final eval reward", _fmt(rec["final_eval_reward"], "+.4f")),
            ("best eval reward", _fmt(rec["best_eval_reward"], "+.4f")),
            ("LLM calls", f"{rec['calls']} ({rec['cached_calls']} from the cache, "
                          f"{rec['failed_calls']} failed); cost ${rec['cost']:.4f}"),
            ("checkpoint", rec["checkpoint"]), ("created", rec["created_at"]),
            ("finished", rec["finished_at"]),
            *((f"config.{k}", v) for k, v in sorted(rec["params"].items()))]))
        if scalars:
            con.print(escape("scalars: " + ", ".join(f"{n} ({len(p)})"
                                                    for n, p in sorted(scalars.items()))))
        return
    counts = catalog.session_counts(wdb, rec["id"])
    if as_json:
        out = _list_json(rec)
        out["sessions"] = counts
        print(json.dumps(out))
        return
    from re2llm_tui.evaluation.metrics import format_table

    con = console()
    con.print(_kv_table(f"run {rec['ref']}: {rec['name']}", [
        ("kind", rec["kind"]), ("dataset", rec["dataset"]), ("split", rec["split"]),
        ("model", rec["model"]), ("prompt version", rec["prompt_version"]),
        ("KB version", rec["kb_version"]), ("hint id", rec["hint_id"]),
        ("hint", rec["hint_text"]), ("status", _status(rec)), ("error", rec.get("error")),
        ("process", rec.get("pid")),
        ("created", rec["created_at"]), ("finished", rec["finished_at"]),
        *((f"params.{k}", v) for k, v in sorted(rec["params"].items()))]))
    con.print(escape(
        f"sessions: {counts['sessions']} stored, {counts['scored']} scored, "
        f"{counts['failed']} failed, {counts['label_mismatches']} label mismatches; "
        f"target ranked 1st in {counts['top1']}, in the top 10 in {counts['top10']}, "
        f"not ranked in {counts['unranked']}"))
    con.print(escape(
        f"LLM calls: {rec['calls']} ({rec['cached_calls']} from the cache, "
        f"{rec['failed_calls']} failed); {rec['prompt_tokens']} prompt + "
        f"{rec['completion_tokens']} completion tokens"
        + (f" ({rec['reasoning_tokens']} of them reasoning)" if rec.get("reasoning_tokens")
           else "")
        + f"; cost ${rec['cost']:.4f}"))
    if rec["params"].get("sampled"):
        effort = rec["params"].get("reasoning_effort")
        con.print(escape("replies are sampled, not greedy (no temperature 0 reached the model"
                         + (f"; reasoning effort {effort}" if effort else "") + ")"))
    if rec["metrics"]:
        con.print(format_table({f"{rec['ref']} {rec['name']}": rec["metrics"]},
                               title=f"{rec['dataset']}/{rec['split']}"))
    else:
        con.print("no metrics stored yet (the run has not finished)")


@runs_app.command("compare")
def compare_cmd(runs: List[str] = typer.Argument(..., help="two or more run ids; the first "
                                                           "is the baseline"),
                metric: str = MetricOption, resamples: int = ResamplesOption,
                seed: int = SeedOption,
                top: int = typer.Option(5, "--top", min=0, help="sessions listed where each run "
                                                         "beats / loses to the first (0: none)"),
                db: OptPath = DbOption, as_json: bool = JsonOption) -> None:
    """Compare runs on the sessions they all scored.

    Prints the metric table, the paired bootstrap difference (with CI) of each run to the
    first, the sessions where each run beats the first (and loses), and the configuration
    fields that differ.
    """
    from rich.table import Table

    from re2llm_tui.evaluation.run_compare import check_metric, compare_runs

    _check_refs(runs)
    metric = check_metric(metric)
    cmp = compare_runs(_open(db), runs, metric=metric, n_boot=resamples, seed=seed)
    if as_json:
        out = cmp.to_json()
        if top:
            base = cmp.refs[0]
            for r in out["runs"][1:]:
                r["beats_baseline"] = cmp.sessions_where(r["ref"], base)[:top]
                r["loses_to_baseline"] = cmp.sessions_where(base, r["ref"])[:top]
        print(json.dumps(out))
        return
    con = console()
    dropped = ", ".join(f"run {ref}: {n}" for ref, n in cmp.dropped.items())
    con.print(escape(f"compared on the {len(cmp.sessions)} sessions all runs scored; "
                     f"dropped (scored by a run but not by all): {dropped}"))
    con.print(cmp.table())
    base = cmp.refs[0]
    for ref in cmp.refs[1:]:
        p = cmp.paired[cmp.labels[ref]]
        w = cmp.wins(ref)
        con.print(escape(
            f"{ref} − {base}: Δ{metric.upper()} {p['diff']:+.4f}, 95% CI "
            f"[{p['lo']:+.4f}, {p['hi']:+.4f}], p={p['p']:.3f} (paired bootstrap, "
            f"{cmp.n_boot} resamples, seed {cmp.seed}); {ref} better on {w['wins']} "
            f"sessions, worse on {w['losses']}, tied on {w['ties']}"))
        if top:
            for label, rows, key_a, key_b in (
                    (f"  {ref} beats {base}", cmp.sessions_where(ref, base), ref, base),
                    (f"  {base} beats {ref}", cmp.sessions_where(base, ref), base, ref)):
                if rows:
                    shown = ", ".join(f"{r['session_id']} ({_rank(r['rank_better'])} vs "
                                      f"{_rank(r['rank_worse'])})" for r in rows[:top])
                    more = f" … and {len(rows) - top} more" if len(rows) > top else ""
                    con.print(escape(f"{label} ({key_a} rank vs {key_b} rank): {shown}{more}"))
    if not cmp.config_diff:
        con.print("configurations: no field differs")
        return
    t = Table(title="configuration: fields that differ")
    t.add_column("field", style="bold")
    for ref in cmp.refs:
        t.add_column(ref, overflow="fold")
    for key, values in cmp.config_diff.items():
        t.add_row(text(key, oneline=True),
                  *(text("—" if v is None else (json.dumps(v) if isinstance(v, (dict, list))
                                                else str(v)), oneline=True) for v in values))
    con.print(t)


def _rank(r) -> str:
    return "—" if r is None else f"#{r}"


@runs_app.command("export")
def export_cmd(runs: List[str] = typer.Argument(..., help="run ids"),
               fmt: str = typer.Option("csv", "--format", "-f", help="csv, md or latex"),
               output: OptPath = typer.Option(None, "--output", "-o",
                                              help="file to write (default: stdout)"),
               paired: bool = typer.Option(False, "--paired",
                                           help="metrics over the sessions all runs share, "
                                                "with the paired difference to the first run"),
               metric: str = MetricOption, resamples: int = ResamplesOption,
               seed: int = SeedOption, db: OptPath = DbOption) -> None:
    """Export runs' metric rows as CSV, Markdown or LaTeX.

    CSV has every field, each CI bound in a column of its own; Markdown and LaTeX show
    ``mean [lo, hi]`` cells.  Runs of --samples N add the between-sample spread (CSV:
    samples, <metric>_sd/_min/_max; Markdown and LaTeX: the spread table).
    """
    from re2llm_tui.errors import UserError
    from re2llm_tui.evaluation.run_compare import check_metric, compare_runs
    from re2llm_tui.evaluation.run_export import check_format, export_table
    from re2llm_tui.store import catalog

    fmt = check_format(fmt)
    metric = check_metric(metric)
    _check_refs(runs)
    _check_out(output, db)
    wdb = _open(db)
    records = [catalog.get_record(wdb, r) for r in runs]
    for rec in records:
        if rec["kind"] == "train":
            raise UserError(f"run {rec['ref']} is a training run: export its scalars with "
                            f"`re2llm-tui runs export-scalars {rec['ref']}`")
    comparison = compare_runs(wdb, runs, metric=metric, n_boot=resamples, seed=seed) \
        if paired else None
    _write_out(export_table(records, fmt, comparison), output, f"{len(records)} run(s)", db)


@runs_app.command("rm")
def rm_cmd(runs: List[str] = typer.Argument(..., help="run ids (t<id> for training runs)"),
           yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
           force: bool = typer.Option(False, "--force",
                                      help="also delete a run marked running whose process "
                                           "is gone (a run whose process is alive is never "
                                           "deleted)"),
           db: OptPath = DbOption, as_json: bool = JsonOption) -> None:
    """Delete runs (asks first; --yes does not).

    Their per-session outcomes go with them (training runs: their scalars); the LLM calls
    stay in the cache.  A run whose process is still running is refused, --force or not.
    """
    from re2llm_tui.store import catalog

    _check_refs(runs)
    wdb = _open(db)
    records = catalog.check_deletable(wdb, runs, force=force)   # refuse before asking
    if not yes:
        shown = "; ".join(f"{r['ref']} {clean(r['name'], oneline=True)}" for r in records)
        typer.confirm(f"delete {len(records)} run(s): {shown}?", abort=True)
    deleted = catalog.delete_runs(wdb, runs, force=force)
    if as_json:
        print(json.dumps({"deleted": deleted}))
    else:
        console().print(escape(f"deleted {len(deleted)} run(s): {', '.join(deleted)}"))


@runs_app.command("curves")
def curves_cmd(runs: List[str] = typer.Argument(..., help="training run ids (t<id>)"),
               tag: str = typer.Option("charts/reward_mean", "--tag",
                                       help="the scalar (charts/reward_mean, "
                                            "charts/eval_reward, losses/policy, ...)"),
               db: OptPath = DbOption, as_json: bool = JsonOption) -> None:
    """Training runs' curves of one scalar on a common step axis (CSV, or --json)."""
    import csv
    import sys

    from re2llm_tui.evaluation.run_compare import train_curves

    _check_refs(runs)
    curves = train_curves(_open(db), runs, tag=tag)
    if as_json:
        print(json.dumps(curves))
        return
    from re2llm_tui.safe_files import spreadsheet_row

    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(spreadsheet_row(["step", *curves["series"]]))
    for i, step in enumerate(curves["steps"]):
        w.writerow([step, *("" if s[i] is None else repr(float(s[i]))
                            for s in curves["series"].values())])


@runs_app.command("export-scalars")
def export_scalars_cmd(run: str = typer.Argument(..., help="training run id (t<id> or <id>)"),
                       fmt: str = typer.Option("csv", "--format", "-f",
                                               help="csv, or tensorboard (event files; needs "
                                                    "the optional tensorboard extra)"),
                       output: OptPath = typer.Option(
                           None, "--output", "-o",
                           help="CSV file (default: stdout) or TensorBoard log folder "
                                "(default: ./tb/train-<id>)"),
                       db: OptPath = DbOption) -> None:
    """Export a training run's scalars as CSV or TensorBoard event files.

    CSV: one row per step, one column per scalar.  TensorBoard (the optional extra:
    pip install 're2llm-tui[tensorboard]'): then run tensorboard --logdir <folder>.
    """
    import sys

    from re2llm_tui.errors import UserError
    from re2llm_tui.evaluation.run_export import (
        SCALAR_FORMATS,
        check_format,
        scalars_csv,
        tensorboard_writer_class,
        write_tensorboard,
    )
    from re2llm_tui.store import catalog

    fmt = check_format(fmt, SCALAR_FORMATS)
    ref = run.strip()
    if ref.isdigit():
        ref = f"t{ref}"       # this command takes training runs only
    _check_refs([ref])
    _check_out(output, db, folder=fmt == "tensorboard")
    if fmt == "tensorboard":
        tensorboard_writer_class()     # a missing extra: one line before anything else
    wdb = _open(db)
    rec = catalog.get_record(wdb, ref)
    scalars = catalog.train_scalars(wdb, rec["id"])
    if not scalars:
        raise UserError(f"training run {rec['ref']} has no scalars yet")
    if fmt == "csv":
        _write_out(scalars_csv(scalars), output, f"the scalars of {rec['ref']}", db)
        return
    from re2llm_tui.store.workspace import workspace_path

    logdir = write_tensorboard(scalars, output or Path("tb") / f"train-{rec['id']}",
                               workspace_path(db))
    print(f"wrote TensorBoard event files to {clean(str(logdir), oneline=True)} "
          f"(view: tensorboard --logdir {clean(str(logdir), oneline=True)})", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
