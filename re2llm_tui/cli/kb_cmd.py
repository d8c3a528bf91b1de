"""``re2llm-tui kb ...``: curate the hint knowledge base (a thin layer over :mod:`re2llm_tui.kb.store`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional

import typer

from re2llm_tui.cli.common import DataDirOption, DatasetOption, DbOption, JsonOption
from re2llm_tui.safe_text import clean
from re2llm_tui.safe_text import text as safe_text

kb_app = typer.Typer(
    name="kb",
    help="Curate the hint knowledge base: list, review, edit, accept/reject, merge, undo, "
         "import/export hints.json.",
    no_args_is_help=True,
)

def _console():
    """Hint texts are data, never rich markup or emoji codes: print with both off (and pass
    every line through :func:`clean`, which shows control characters escaped)."""
    from rich.console import Console

    return Console(highlight=False, markup=False, emoji=False, soft_wrap=True)


def _say(line: str) -> None:
    """Print a line holding data (hint text, a path, a history detail) with its terminal
    control characters shown escaped, never sent to the terminal."""
    print(clean(line))


def _snippet(snip: str):
    """FTS snippet with \x02..\x03 around matches -> rich Text with the matches in bold."""
    from rich.text import Text

    out = Text()
    for i, part in enumerate(re.split(r"[\x02\x03]", snip)):
        out.append(clean(part, oneline=True), style="bold" if i % 2 else "")
    return out


def _open(db_path, dataset: str, data_dir):
    """The command's edge: the workspace and the dataset resolved once -> the KB handle."""
    from re2llm_tui.data.dataset import Dataset
    from re2llm_tui.kb import KnowledgeBase
    from re2llm_tui.store.workspace import open_workspace

    ds = Dataset.resolve(dataset, data_dir)
    if not ds.imported:     # the seed file checked before a workspace is created
        from re2llm_tui.data.release import read_hints_json

        read_hints_json(ds.folder / "hints.json")
    return KnowledgeBase(open_workspace(db_path), ds)


def _header(kbh) -> str:
    from re2llm_tui.kb.store import STATUSES

    hints = kbh.hints()
    counts = {s: sum(h.status == s for h in hints) for s in STATUSES}
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return (f"{kbh.name} KB: {parts or 'empty'} | version {kbh.version()} "
            f"(revision {kbh.revision()})")


def _hint_table(hints, title: str | None = None, snippets=None):
    from rich.table import Table

    table = Table(title=safe_text(title) if title else None, show_lines=False, expand=False)
    table.add_column("id", justify="right")
    table.add_column("status")
    table.add_column("source")
    table.add_column("text", overflow="fold")
    table.add_column("sim", justify="right")
    for i, h in enumerate(hints):
        sim = f"{h.similarity:.2f}" if h.similarity is not None else ""
        text = _snippet(snippets[i]) if snippets else safe_text(h.text, oneline=True)
        table.add_row(str(h.id), safe_text(h.status), safe_text(h.source), text, sim)
    return table


_JSON_C1 = re.compile(r"[\x7f-\x9f]")


def _as_json(hints) -> str:
    """JSON of the hints; json.dumps escapes C0 controls, and DEL and the C1 range (which
    some terminals obey, e.g. CSI \\x9b) are escaped here too: the JSON means the same."""
    from dataclasses import asdict

    out = json.dumps([asdict(h) for h in hints], indent=2, ensure_ascii=False)
    return _JSON_C1.sub(lambda m: f"\\u{ord(m.group(0)):04x}", out)


@kb_app.command("list")
def list_cmd(dataset: str = DatasetOption,
             status: Optional[str] = typer.Option(None, "--status", "-s",
                                                  help="only candidate|accepted|rejected|archived"),
             as_json: bool = JsonOption,
             db: Optional[Path] = DbOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """List the hints of a dataset (entry 0, 'no hint', is implicit)."""
    kbh = _open(db, dataset, data_dir)
    hints = kbh.hints(status)
    if as_json:
        print(_as_json(hints))
        return
    con = _console()
    con.print(_header(kbh))
    if hints:
        con.print(_hint_table(hints))
    else:
        con.print("no hints" + (f" with status {status}" if status else ""))


@kb_app.command("show")
def show_cmd(hint_id: int = typer.Argument(..., help="hint id"), dataset: str = DatasetOption,
             db: Optional[Path] = DbOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Show one hint with its provenance and history."""
    kbh = _open(db, dataset, data_dir)
    h = kbh.get(hint_id)
    _say(f"#{h.id} [{h.status}] ({h.source})")
    _say(f"  text: {h.text}")
    if h.raw_text is not None and h.raw_text != h.text:
        _say(f"  as in file: {h.raw_text!r}")
    if h.session_id:
        _say(f"  from session {h.session_id}, reflection {h.reflection_id}")
    if h.effect:
        e = h.effect
        _say(f"  effectiveness: target rank {e.get('rank_without')} -> {e.get('rank_with')}, "
             f"NDCG@10 {e.get('ndcg_without', 0):.3f} -> {e.get('ndcg_with', 0):.3f}")
    if h.similar_id is not None:
        _say(f"  most similar when proposed: #{h.similar_id} (cosine {h.similarity:.3f})")
    if h.merged_into is not None:
        _say(f"  merged into #{h.merged_into}")
    if h.note:
        _say(f"  note: {clean(h.note, oneline=True)}")
    _say(f"  created {h.created_at}, updated {h.updated_at}")
    _say("  history:")
    for entry in reversed(kbh.history(hint_id=h.id)):
        undone = f" (undone by #{entry['undone_by']})" if entry["undone_by"] else ""
        _say(f"    #{entry['seq']} {entry['at']} {entry['action']}: "
             f"{clean(entry['detail'], oneline=True)}{undone}")


@kb_app.command("add")
def add_cmd(text: str = typer.Argument(..., help="the hint, a short imperative sentence"),
            dataset: str = DatasetOption,
            status: str = typer.Option("accepted", "--status", "-s",
                                       help="accepted (default), candidate or rejected"),
            note: Optional[str] = typer.Option(None, "--note"),
            db: Optional[Path] = DbOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Add a hint by hand."""
    kbh = _open(db, dataset, data_dir)
    h = kbh.add(text, status=status, source="manual", note=note)
    _say(f"added #{h.id} ({h.status}): {h.text}")


@kb_app.command("edit")
def edit_cmd(hint_id: int = typer.Argument(...), text: str = typer.Argument(...),
             dataset: str = DatasetOption, db: Optional[Path] = DbOption,
             data_dir: Optional[Path] = DataDirOption) -> None:
    """Change a hint's text."""
    kbh = _open(db, dataset, data_dir)
    h = kbh.edit(hint_id, text)
    _say(f"edited #{h.id}: {h.text}")


def _status_cmd(status: str, verb: str):
    def command(hint_ids: List[int] = typer.Argument(..., help="hint ids"),
                dataset: str = DatasetOption, db: Optional[Path] = DbOption,
                data_dir: Optional[Path] = DataDirOption) -> None:

        kbh = _open(db, dataset, data_dir)
        changed = kbh.set_status(hint_ids, status)
        for i in hint_ids:
            print(f"{verb} #{i}" if i in changed else f"#{i} was already {status}")
        print(f"KB version {kbh.version()}")

    command.__doc__ = f"Mark hints as {status}."
    return command


kb_app.command("accept")(_status_cmd("accepted", "accepted"))
kb_app.command("reject")(_status_cmd("rejected", "rejected"))


@kb_app.command("merge")
def merge_cmd(keep_id: int = typer.Argument(..., help="the hint that stays"),
              other_ids: List[int] = typer.Argument(..., help="hints merged into it (archived)"),
              text: Optional[str] = typer.Option(None, "--text", help="new text for the kept hint"),
              dataset: str = DatasetOption, db: Optional[Path] = DbOption,
              data_dir: Optional[Path] = DataDirOption) -> None:
    """Merge hints into one: the others are archived, pointing at the kept one."""
    kbh = _open(db, dataset, data_dir)
    h = kbh.merge(keep_id, other_ids, text=text)
    _say(f"merged {', '.join('#' + str(i) for i in other_ids)} into #{h.id}: {h.text}")


@kb_app.command("rm")
def rm_cmd(hint_ids: List[int] = typer.Argument(..., help="hint ids"), dataset: str = DatasetOption,
           db: Optional[Path] = DbOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Delete hints (``kb undo`` brings them back)."""
    kbh = _open(db, dataset, data_dir)
    gone = kbh.delete(hint_ids)
    print("deleted " + ", ".join(f"#{i}" for i in gone))


@kb_app.command("search")
def search_cmd(query: str = typer.Argument(..., help="words that must all occur"),
               dataset: str = DatasetOption,
               status: Optional[str] = typer.Option(None, "--status", "-s"),
               raw: bool = typer.Option(False, "--raw", help="query in FTS5 syntax"),
               limit: int = typer.Option(50, "--limit", "-n", min=1),
               db: Optional[Path] = DbOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Full-text search over hint text (best match first)."""
    kbh = _open(db, dataset, data_dir)
    found = kbh.search(query, status=status, raw=raw, limit=limit)
    con = _console()
    if not found:
        _say(f"no hint matches {query!r}")
        return
    con.print(_hint_table([h for h, _ in found], snippets=[s for _, s in found]))


@kb_app.command("history")
def history_cmd(dataset: str = DatasetOption,
                limit: int = typer.Option(20, "--limit", "-n", min=1),
                hint: Optional[int] = typer.Option(None, "--hint", help="only changes of this hint"),
                db: Optional[Path] = DbOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Changes of the KB, newest first."""
    kbh = _open(db, dataset, data_dir)
    for e in kbh.history(limit=limit, hint_id=hint):
        undone = f" [undone by #{e['undone_by']}]" if e["undone_by"] else ""
        _say(f"#{e['seq']} {e['at']} {e['action']}: {clean(e['detail'], oneline=True)} "
             f"-> {e['kb_version']}{undone}")


@kb_app.command("undo")
def undo_cmd(dataset: str = DatasetOption, db: Optional[Path] = DbOption,
             data_dir: Optional[Path] = DataDirOption) -> None:
    """Revert the last change."""
    kbh = _open(db, dataset, data_dir)
    entry = kbh.undo()
    _say(f"undid #{entry['seq']} ({clean(entry['detail'], oneline=True)}); "
         f"KB version {kbh.version()}")


@kb_app.command("import")
def import_cmd(path: Path = typer.Argument(..., help="a hints.json-style JSON list of strings"),
               dataset: str = DatasetOption,
               status: str = typer.Option("accepted", "--status", "-s",
                                          help="status of imported hints: accepted or candidate"),
               db: Optional[Path] = DbOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Import hints; duplicates are skipped and reported."""
    from re2llm_tui.kb.store import prepare_import

    entries = prepare_import(path, status)     # a bad file: one line, no workspace made
    kbh = _open(db, dataset, data_dir)
    report = kbh.import_file(path, status=status, entries=entries)
    for text, why in report.skipped:
        _say(f"skipped ({why}): {clean(text, oneline=True)}")
    print(f"imported {len(report.added)} hints"
          + (f" (#{report.added[0]}..#{report.added[-1]})" if report.added else "")
          + f", skipped {len(report.skipped)}")


@kb_app.command("export")
def export_cmd(path: Optional[Path] = typer.Argument(None, help="output file (default: stdout)"),
               dataset: str = DatasetOption, db: Optional[Path] = DbOption,
               data_dir: Optional[Path] = DataDirOption) -> None:
    """Write the accepted hints as a hints.json list (entry 0 empty)."""
    import sys

    if path is None or str(path) == "-":
        kbh = _open(db, dataset, data_dir)
        sys.stdout.write(kbh.export_text() + "\n")
        return
    from re2llm_tui.safe_files import check_target
    from re2llm_tui.store.workspace import workspace_path

    check_target(path, workspace_path(db))     # refused before the workspace is opened
    kbh = _open(db, dataset, data_dir)
    n = kbh.export(path)
    print(clean(f"wrote {n} accepted hints (+ entry 0) to {path}"), file=sys.stderr)


# --------------------------------------------------------------------------- evidence

@kb_app.command("evidence")
def evidence_cmd(hint_id: Optional[int] = typer.Argument(None, help="hint id (default: all hints)"),
                 dataset: str = DatasetOption,
                 model: Optional[str] = typer.Option(
                     None, "--model", "-m",
                     help="whose reward table to read (default: the model with the most "
                          "stored outcomes)"),
                 context: Optional[str] = typer.Option(
                     None, "--context", help="the reward table's context (default: the one "
                                             "with the most outcomes)"),
                 split: str = typer.Option(
                     "train", "--split", "-s",
                     help="whose outcomes: train (default: what the KB may be curated on), "
                          "test (held out for evaluation: to look, not to curate) or all"),
                 as_json: bool = JsonOption,
                 as_csv: bool = typer.Option(False, "--csv", help="print CSV, a row per hint"),
                 db: Optional[Path] = DbOption,
                 data_dir: Optional[Path] = DataDirOption) -> None:
    """What each hint does, to which sessions, and how sure we are: mean reward with a
    bootstrap CI, sessions helped / hurt, the agent's use, similar hints, and suggested
    badges (hurts, no effect, acts like #k, unused), each with its reason.  Read from the
    train split's outcomes unless --split says otherwise: the test split's are held out."""
    from re2llm_tui.errors import UserError
    from re2llm_tui.kb import evidence

    if as_json and as_csv:
        raise UserError("choose one of --json or --csv")
    kbh = _open(db, dataset, data_dir)
    hints = kbh.hints()
    if hint_id is not None:
        ev, report = evidence.hint_evidence(kbh.db, kbh.name, hints, hint_id, model=model,
                                            context=context, split=split)
        if ev.stale:
            raise UserError(f"hint #{hint_id}: {ev.note}")
        shown = [ev]
    else:
        report = evidence.compute(kbh.db, kbh.name, hints, model=model, context=context,
                                  similar_for=[h.id for h in hints], split=split)
        shown = list(report.evidence.values())
    if as_json:
        out = json.dumps(report.as_dict([e.hint_id for e in shown]), indent=2,
                         ensure_ascii=False)
        print(_JSON_C1.sub(lambda m: f"\\u{ord(m.group(0)):04x}", out))
        return
    if as_csv:
        _evidence_csv(shown, report.split)
        return
    _say(f"reward table: {report.dataset} · model {report.model} · context {report.context} "
         f"· {report.n_sessions} sessions ({report.n_baselines} with a no-hint outcome)"
         + (f" · agent: training run #{report.agent_run}" if report.agent_run else
            " · no finished training run"))
    _say(report.scope() + (f" · {report.left_out_line()}" if report.left_out else "")
         + ("" if report.split == "train" else
            " · not for curation: the test split is held out for evaluation"))
    if hint_id is None:
        _evidence_table(shown)
    else:
        _evidence_detail(shown[0])


def _fmt_ci(ev) -> str:
    return "" if ev.ci is None else f"[{ev.ci[0]:+.3f}, {ev.ci[1]:+.3f}]"


def _evidence_csv(shown, split: str) -> None:
    import csv
    import sys

    from re2llm_tui.safe_files import spreadsheet_cell

    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["id", "status", "split", "n", "mean", "ci_lo", "ci_hi", "helped", "hurt",
                "unchanged", "left_out", "agent_share", "badges", "stale", "text"])
    for ev in shown:
        share = ev.agent.share if ev.agent is not None else None
        w.writerow([ev.hint_id, ev.status, split, ev.n,
                    "" if ev.mean is None else f"{ev.mean:.6f}",
                    "" if ev.ci is None else f"{ev.ci[0]:.6f}",
                    "" if ev.ci is None else f"{ev.ci[1]:.6f}",
                    ev.helped, ev.hurt, ev.unchanged, ev.left_out,
                    "" if share is None else f"{share:.6f}",
                    ";".join(b.label for b in ev.badges), int(ev.stale),
                    spreadsheet_cell(clean(ev.text, oneline=True))])


def _evidence_table(shown) -> None:
    from rich.table import Table

    table = Table(show_lines=False, expand=False)
    for col, just in (("id", "right"), ("status", "left"), ("n", "right"), ("mean", "right"),
                      ("95% CI", "left"), ("+/-/=", "left"), ("agent", "right"),
                      ("badges", "left"), ("text", "left")):
        table.add_column(col, justify=just, overflow="fold" if col == "text" else "ellipsis")
    for ev in shown:
        share = ev.agent.share if ev.agent is not None else None
        badges = ", ".join(b.label for b in ev.badges) or ("text changed" if ev.stale else "")
        table.add_row(str(ev.hint_id), safe_text(ev.status), str(ev.n),
                      "—" if ev.mean is None else f"{ev.mean:+.3f}", _fmt_ci(ev),
                      f"{ev.helped}/{ev.hurt}/{ev.unchanged}" if ev.n else "",
                      "—" if share is None else f"{share:.0%}", safe_text(badges),
                      safe_text(ev.text, oneline=True))
    _console().print(table)
    for ev in shown:
        for b in ev.badges:
            _say(f"#{ev.hint_id} {b.label}: {b.why}")
        if ev.stale:
            _say(f"#{ev.hint_id}: {ev.note}")


def _evidence_detail(ev) -> None:
    _say(f"#{ev.hint_id} [{ev.status}] {clean(ev.text, oneline=True)}")
    if not ev.n:
        _say(f"  no evidence: {ev.note}")
    else:
        _say(f"  {ev.n} sessions with a reward · mean {ev.mean:+.3f} NDCG@10, 95% CI "
             f"{_fmt_ci(ev)} · helped {ev.helped}, hurt {ev.hurt}, unchanged {ev.unchanged}")

    def effects(label, items):
        if items:
            _say(f"  {label}: " + ", ".join(
                f"{e.session_id} {e.reward:+.3f} (rank {e.rank_without or '—'} -> "
                f"{e.rank_with or '—'})" for e in items))

    effects("largest gains", ev.gains)
    effects("largest losses", ev.losses)
    a = ev.agent
    if a is None:
        _say("  agent: no finished training run")
    elif not a.is_action:
        _say(f"  agent: not an action of training run #{a.run_id}")
    else:
        how = "argmax choices" if a.source == "greedy" else "last sampled window"
        routed = "" if a.sessions is None else (
            f" · routes {len(a.sessions)} session(s) to it" +
            (": " + ", ".join(a.sessions[:10]) + (" …" if len(a.sessions) > 10 else "")
             if a.sessions else ""))
        _say(f"  agent: {a.share or 0:.0%} of training run #{a.run_id}'s {how} "
             f"(step {a.step}){routed}")
    for s in ev.similar or []:
        corr = "—" if s.correlation is None else f"{s.correlation:+.2f}"
        _say(f"  similar: #{s.hint_id} (cosine {s.cosine:.2f}, reward correlation {corr} over "
             f"{s.common} sessions) {clean(s.text, oneline=True)}")
    for b in ev.badges:
        _say(f"  badge {b.label}: {b.why}")
    if not ev.badges:
        _say("  badges: none")


def register(app: typer.Typer) -> None:
    """Add the ``kb`` command group to ``app``."""
    app.add_typer(kb_app, name="kb")
