"""Runs as files: a metric table in CSV, Markdown or LaTeX, and a training run's scalars as
CSV or TensorBoard event files (``re2llm-tui runs export`` / ``export-scalars``).

* :func:`export_table` ``(records, fmt, comparison=None) -> str`` -- one row per run (catalog
  records): configuration, n, every metric with its CI bounds, failed sessions and calls,
  cost, date, status.  With a :class:`~re2llm_tui.evaluation.run_compare.Comparison` the
  metrics are those over the shared sessions and the paired difference to the first run
  is added.  A run of ``--samples N`` adds its between-sample spread (CSV: ``samples`` and
  ``<metric>_sd`` / ``_min`` / ``_max``; Markdown, LaTeX: the spread table the CLI shows);
  runs without samples export as they did before there were samples.
* :func:`scalars_csv` ``(scalars) -> str`` -- one row per step, one column per scalar.
* :func:`write_tensorboard` ``(scalars, logdir) -> Path`` -- TensorBoard event files through
  ``torch.utils.tensorboard`` (the optional ``tensorboard`` extra; without it a one-line
  :class:`UserError` says how to install it).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from re2llm_tui.errors import UserError
from re2llm_tui.safe_files import atomic_write, check_target, check_target_dir, spreadsheet_row
from re2llm_tui.evaluation.metrics import (
    METRICS,
    SPREAD_CAPTION,
    SPREAD_TITLE,
    has_spread,
    spread_cells,
    spread_columns,
    spread_values,
)

EXPORT_FORMATS = ("csv", "md", "latex")
SCALAR_FORMATS = ("csv", "tensorboard")
TENSORBOARD_HINT = ("TensorBoard export needs the optional tensorboard package: "
                    "pip install 're2llm-tui[tensorboard]' (or: pip install tensorboard)")


def check_format(fmt: str, choices=EXPORT_FORMATS) -> str:
    f = str(fmt).strip().lower()
    aliases = {"markdown": "md", "tex": "latex", "tb": "tensorboard"}
    f = aliases.get(f, f)
    if f not in choices:
        raise UserError(f"unknown format {fmt!r} (one of: {', '.join(choices)})")
    return f


# --------------------------------------------------------------------------- metric tables

def _num(v, places: int = 6):
    return "" if v is None else round(float(v), places)


def _summary(rec: dict, comparison) -> dict | None:
    """The metrics a run is exported with: over the shared sessions with a comparison, else
    the stored ones."""
    if comparison is not None:
        return comparison.rows[comparison.labels[rec["ref"]]]
    return rec.get("metrics")


def export_rows(records: list[dict], comparison=None) -> tuple[list[str], list[list]]:
    """Header and one row per run, values as numbers or strings (``""`` where absent).

    When a run has samples (``--samples N``), the between-sample spread follows the
    metrics: ``samples`` and ``<metric>_sd`` / ``_min`` / ``_max`` (``""`` for a run
    without samples); with no such run the columns are as before."""
    sampled = has_spread(_summary(rec, comparison) for rec in records)
    heads = ["run", "name", "kind", "dataset", "split", "model", "prompt_version",
             "kb_version", "n"]
    for m in METRICS:
        heads += [m, f"{m}_lo", f"{m}_hi"]
    if sampled:
        heads += spread_columns()
    if comparison is not None:
        mt = comparison.metric
        heads += ["dropped", f"diff_{mt}", f"diff_{mt}_lo", f"diff_{mt}_hi", f"diff_{mt}_p"]
    heads += ["failed", "failed_calls", "cost_usd", "created_at", "status"]
    rows = []
    for rec in records:
        summary = _summary(rec, comparison)
        row = [rec["ref"], rec["name"], rec["kind"], rec["dataset"], rec["split"],
               rec.get("model") or "", rec.get("prompt_version") or "",
               rec.get("kb_version") or "",
               summary["n"] if summary else (rec.get("n") if rec.get("n") is not None else "")]
        for m in METRICS:
            if summary and m in summary:
                lo, hi = summary["ci"][m]
                row += [_num(summary[m]), _num(lo), _num(hi)]
            else:
                row += ["", "", ""]
        if sampled:
            row += spread_values(summary, _num)
        if comparison is not None:
            p = comparison.paired.get(comparison.labels[rec["ref"]])
            row += [comparison.dropped[rec["ref"]]]
            row += ["", "", "", ""] if p is None else \
                [_num(p["diff"]), _num(p["lo"]), _num(p["hi"]), _num(p["p"])]
        row += [rec.get("failed", 0), rec.get("failed_calls", 0), _num(rec.get("cost")),
                rec.get("created_at") or "", rec["status"]]
        rows.append(row)
    return heads, rows


def _ci_text(summary: dict | None, m: str) -> str:
    if not summary or m not in summary:
        return "—"
    lo, hi = summary["ci"][m]
    return f"{summary[m]:.3f} [{lo:.3f}, {hi:.3f}]"


def _diff_text(p: dict | None) -> str:
    if not p:
        return "—"
    return f"{p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]"


def _display_rows(records, comparison):
    heads = ["run", "name", "kind", "dataset/split", "model", "n",
             *(m.upper() for m in METRICS)]
    if comparison is not None:
        heads.append(f"Δ{comparison.metric.upper()} vs {comparison.refs[0]}")
    heads += ["failed", "cost $"]
    rows = []
    for rec in records:
        summary = _summary(rec, comparison)
        n = summary["n"] if summary else rec.get("n")
        row = [rec["ref"], rec["name"], rec["kind"], f"{rec['dataset']}/{rec['split']}",
               rec.get("model") or "—", "—" if n is None else str(n),
               *(_ci_text(summary, m) for m in METRICS)]
        if comparison is not None:
            row.append(_diff_text(comparison.paired.get(comparison.labels[rec["ref"]])))
        row += [str(rec.get("failed", 0)), f"{float(rec.get('cost') or 0):.4f}"]
        rows.append(row)
    return heads, rows


def _spread_rows(records, comparison):
    """The between-sample spread as the CLI shows it under its table (``samples`` and each
    metric's sd), one row per run with samples; None when no run has samples."""
    sampled = [(rec, _summary(rec, comparison)) for rec in records]
    sampled = [(rec, s) for rec, s in sampled if s and s.get("spread")]
    if not sampled:
        return None
    heads = ["run", "name", "samples", *(m.upper() for m in METRICS)]
    return heads, [[rec["ref"], rec["name"], *spread_cells(s)] for rec, s in sampled]


#: how the exported spread tables name where the min and max are
SPREAD_MINMAX = " (min and max: the CSV export)"


def _md_cell(value) -> str:
    from re2llm_tui.safe_text import clean

    return clean(str(value), oneline=True).replace("\\", "\\\\").replace("|", "\\|")


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\textasciicircum{}"}


_LATEX.update({"Δ": r"$\Delta$", "—": "---", "±": r"$\pm$"})


def latex_escape(value) -> str:
    """``value`` as LaTeX text: special characters escaped, Δ / — / ± as LaTeX."""
    from re2llm_tui.safe_text import clean

    return "".join(_LATEX.get(ch, ch) for ch in clean(str(value), oneline=True))


def export_table(records: list[dict], fmt: str, comparison=None) -> str:
    """The runs as ``csv`` (every field, CI bounds in their own columns), ``md`` (a GitHub
    Markdown table) or ``latex`` (a ``tabular``, booktabs rules); data strings escaped for
    the format.  Runs with samples add the between-sample spread (:func:`export_rows`;
    Markdown and LaTeX: a second table under the first, titled as the CLI's)."""
    fmt = check_format(fmt)
    if fmt == "csv":
        from re2llm_tui.safe_text import clean

        heads, rows = export_rows(records, comparison)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(spreadsheet_row(heads))
        for row in rows:   # control characters as visible \xNN text, never raw to a terminal;
            # a name like =HYPERLINK(...) stays text in a spreadsheet (leading apostrophe)
            w.writerow(spreadsheet_row(clean(c, oneline=True) if isinstance(c, str) else c
                                       for c in row))
        return buf.getvalue()
    heads, rows = _display_rows(records, comparison)
    spread = _spread_rows(records, comparison)
    if fmt == "md":
        lines = _md_table(heads, rows, 5)
        if spread is not None:      # under the table, as the CLI shows it
            lines += ["", _md_cell(SPREAD_TITLE), "", *_md_table(*spread, 2), "",
                      _md_cell(SPREAD_CAPTION + SPREAD_MINMAX)]
        return "\n".join(lines) + "\n"
    lines = [r"% booktabs: \usepackage{booktabs}", *_latex_table(heads, rows, 5)]
    if spread is not None:
        lines += [r"\par\medskip\noindent " + latex_escape(SPREAD_TITLE) + r"\par",
                  *_latex_table(*spread, 2),
                  r"\par\noindent " + latex_escape(SPREAD_CAPTION + SPREAD_MINMAX) + r"\par"]
    return "\n".join(lines) + "\n"


def _md_table(heads: list, rows: list[list], left: int) -> list[str]:
    """A GitHub Markdown table, its first ``left`` columns left-aligned, the rest right."""
    lines = ["| " + " | ".join(_md_cell(h) for h in heads) + " |",
             "|" + "|".join("---" if i < left else "---:" for i in range(len(heads))) + "|"]
    return lines + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]


def _latex_table(heads: list, rows: list[list], left: int) -> list[str]:
    """A booktabs ``tabular``, its first ``left`` columns left-aligned, the rest right."""
    spec = "l" * left + "r" * (len(heads) - left)
    lines = [r"\begin{tabular}{" + spec + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in heads) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    return lines + [r"\bottomrule", r"\end{tabular}"]


def write_exports(records: list[dict], folder, stem: str, comparison=None,
                  formats=("csv", "md", "latex"), workspace=None) -> list[Path]:
    """:func:`export_table` in each of ``formats`` as ``folder/stem.{csv,md,tex}`` (the
    folder is created); returns the paths written.  Each file is written atomically and
    never onto ``workspace``, its side files or another SQLite file (a one-line
    :class:`UserError`, checked for every file before any is written)."""
    folder = Path(folder)
    paths = [folder / f"{stem}.{'tex' if fmt == 'latex' else fmt}" for fmt in formats]
    for path in paths:
        check_target(path, workspace)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the folder ({exc.strerror or exc})") \
            from None
    for fmt, path in zip(formats, paths):
        atomic_write(path, export_table(records, fmt, comparison), workspace)
    return paths


# --------------------------------------------------------------------------- training scalars

def scalars_csv(scalars: dict[str, list]) -> str:
    """``step`` then one column per scalar (sorted names; histograms left out), one row per
    step at which any scalar was reported (empty where one was not)."""
    names = sorted(n for n, pts in scalars.items()
                   if any(isinstance(v, (int, float)) for _, v in pts))
    table: dict[int, dict] = {}
    for name in names:
        for step, value in scalars[name]:
            if isinstance(value, (int, float)):
                table.setdefault(int(step), {})[name] = value
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(spreadsheet_row(["step", *names]))
    for step in sorted(table):
        w.writerow([step, *(repr(float(table[step][n])) if n in table[step] else ""
                            for n in names)])
    return buf.getvalue()


def tensorboard_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line :class:`UserError` saying how
    to install the optional extra."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(TENSORBOARD_HINT) from None
    return SummaryWriter


def write_tensorboard(scalars: dict[str, list], logdir: str | Path, workspace=None) -> Path:
    """Write the scalars (``name -> [(step, value)]``; a histogram of action counts as a
    TensorBoard histogram) as event files under ``logdir``; returns ``logdir``.

    ``logdir`` is never the workspace, its side files or an SQLite file (one line); the
    event files are written in a temporary folder inside it and renamed into it when
    complete, so a failure leaves no half-written event file."""
    check_target_dir(logdir, workspace)
    writer_cls = tensorboard_writer_class()
    import shutil
    import tempfile

    import numpy as np

    logdir = Path(logdir)
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tb-writing-", dir=logdir))
    except OSError as exc:
        raise UserError(f"{logdir}: cannot create the log folder ({exc.strerror or exc})") \
            from None
    try:
        _write_events(writer_cls(log_dir=str(tmp)), scalars, np)
        for f in sorted(tmp.iterdir()):
            os.replace(f, logdir / f.name)
    except OSError as exc:
        raise UserError(f"{logdir}: cannot write the event files ({exc.strerror or exc})") \
            from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return logdir


def _write_events(writer, scalars: dict[str, list], np) -> None:
    try:
        for name, points in sorted(scalars.items()):
            for step, value in points:
                if isinstance(value, (int, float)):
                    writer.add_scalar(name, float(value), int(step))
                elif isinstance(value, list) and value and sum(value) > 0:
                    counts = np.asarray(value, dtype=np.int64)
                    writer.add_histogram(name, np.repeat(np.arange(len(counts)), counts),
                                         int(step))
    finally:
        writer.close()
