"""A horizontal bar chart with CI whiskers, drawn as text for any width.

One line per run: its name, a bar from 0 to the mean, and the CI as a whisker
(``├──┤``) over the same scale, then the figures.  Drawn with :class:`rich.text.Text` (no
plot library), so it reads at 100 columns, in snapshots and over ssh alike.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from re2llm_tui.safe_text import clean

BAR = "█"
WHISKER = "─"


def ci_bars(rows: list[tuple[str, float, float, float]], width: int, *,
            title: str = "", label_width: int = 18) -> Text:
    """``rows``: ``(name, mean, lo, hi)``; the scale runs from min(0, lows) to max(highs)."""
    out = Text(no_wrap=True, overflow="ellipsis")
    if title:
        out.append(title + "\n", style="bold")
    if not rows:
        out.append("(no data)", style="dim")
        return out
    figures = [f" {m:.3f} [{lo:.3f},{hi:.3f}]" for _, m, lo, hi in rows]
    fig_w = max(len(f) for f in figures)
    label_width = min(label_width, max(len(clean(n, oneline=True)) for n, *_ in rows))
    span_w = max(10, width - label_width - fig_w - 2)
    lo_all = min(0.0, *(lo for _, _, lo, _ in rows))
    hi_all = max(1e-9, *(hi for _, _, _, hi in rows))

    def col(v: float) -> int:
        return max(0, min(span_w - 1, round((v - lo_all) / (hi_all - lo_all) * (span_w - 1))))

    zero = col(0.0)
    for (name, mean, lo, hi), fig in zip(rows, figures):
        name = clean(name, oneline=True)
        name = name if len(name) <= label_width else name[:label_width - 1] + "…"
        cells = [" "] * span_w
        a, b = sorted((zero, col(mean)))
        for i in range(a, b + 1):
            cells[i] = BAR
        wl, wh = col(lo), col(hi)
        for i in range(wl, wh + 1):
            if cells[i] == " ":
                cells[i] = WHISKER
        cells[wl], cells[wh] = "├", "┤"
        if wl == wh:
            cells[wl] = "┼"
        line = "".join(cells)
        out.append(f"{name:<{label_width}} ", style="bold")
        for ch in line:
            out.append(ch, style="cyan" if ch == BAR else ("yellow" if ch != " " else ""))
        out.append(fig.ljust(fig_w) + "\n")
    out.append(f"{'':<{label_width}} {lo_all:<.3f}".ljust(label_width + span_w - 4)
               + f"{hi_all:.3f}", style="dim")
    return out


class CIChart(Static):
    """The chart as a widget: redrawn for its width when the data or the size changes."""

    DEFAULT_CSS = """
    CIChart {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self._rows: list = []
        self._title = ""

    def draw(self, rows: list[tuple[str, float, float, float]], title: str = "") -> None:
        self._rows, self._title = list(rows), title
        self._render_chart()

    def on_resize(self) -> None:
        self._render_chart()

    def _render_chart(self) -> None:
        width = (self.size.width or 100) - 2
        self.update(ci_bars(self._rows, width, title=self._title))
