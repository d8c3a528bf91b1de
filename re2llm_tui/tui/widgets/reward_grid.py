"""A sessions x actions grid drawn line by line (Textual's line API), for the reward table.

A ``DataTable`` renders each cell of a newly visible row as its own renderable (~0.3-1 ms a
cell here): a page of 45 rows x 23 columns cost 200-450 ms per PageDown.  This grid keeps
every cell as one pre-built segment and renders only the visible lines, each a list of
segments, so a key costs the lines it changes: the cursor's two rows, or one screen of
lines after a scroll.  Columns scroll a whole column at a time; the row label and one more
fixed column stay at the left; the header stays at the top.

Keys: arrows, PageUp/PageDown, Home/End; Enter posts :class:`RewardGrid.Selected`; every
cursor move posts :class:`RewardGrid.Moved` (merged when they come faster than the screen).
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

HEADER = Style(bold=True)
CURSOR = Style(reverse=True, bold=True)
LABEL = Style()


class RewardGrid(Widget, can_focus=True):
    DEFAULT_CSS = """
    RewardGrid {
        height: 1fr;
        width: 1fr;
    }
    """
    BINDINGS = [
        Binding("up", "move(-1, 0)", show=False),
        Binding("down", "move(1, 0)", show=False),
        Binding("left", "move(0, -1)", show=False),
        Binding("right", "move(0, 1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "edge(-1)", show=False),
        Binding("end", "edge(1)", show=False),
        Binding("enter", "select", show=False),
    ]

    class Moved(Message):
        """The cursor is on (row key, column index) now."""

        def __init__(self, grid: "RewardGrid", row_key: str, col: int) -> None:
            super().__init__()
            self.grid, self.row_key, self.col = grid, row_key, col

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RewardGrid.Moved) and message.grid is self.grid

    class Selected(Message):
        """Enter on (row key, column index)."""

        def __init__(self, grid: "RewardGrid", row_key: str, col: int) -> None:
            super().__init__()
            self.grid, self.row_key, self.col = grid, row_key, col

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.labels: list[tuple[str, str]] = []      # per row: (label, fixed column text)
        self.fixed_titles = ("", "")
        self.fixed_widths = (11, 6)
        self.col_titles: list[str] = []
        self.col_width = 7
        self.cells: list[list[Segment]] = []          # per row (data order), per column
        self.plain: list[list[str]] = []
        self.order: list[int] = []                    # displayed row -> data row
        self.row_keys: list[str] = []                 # data row -> key
        self.cursor_row = 0                           # displayed row
        self.cursor_col = 0
        self.row_offset = 0
        self.col_offset = 0

    # ----------------------------------------------------------------- data
    def set_data(self, row_keys: list[str], labels: list[tuple[str, str]],
                 fixed_titles: tuple[str, str], col_titles: list[str],
                 cells: list[list[tuple[str, Style]]]) -> None:
        """Rows (keys, label and a fixed column), column titles and each cell's text and
        style (padded to the column width here, once)."""
        w = self.col_width
        self.row_keys = list(row_keys)
        self.labels = list(labels)
        self.fixed_titles = fixed_titles
        self.col_titles = list(col_titles)
        self.plain = [[t for t, _ in row] for row in cells]
        self.cells = [[Segment(f" {t:<{w - 1}}"[:w], s) for t, s in row] for row in cells]
        self.order = list(range(len(row_keys)))
        self.cursor_row = min(self.cursor_row, max(0, len(row_keys) - 1))
        self.cursor_col = min(self.cursor_col, max(0, len(col_titles) - 1))
        self.row_offset = self.col_offset = 0
        self._scroll_to_cursor()
        self.refresh()

    def set_order(self, order: list[int]) -> None:
        """Show the data rows in ``order`` (the cursor stays on the same displayed row)."""
        self.order = list(order)
        self.refresh()
        self._moved()

    @property
    def row_count(self) -> int:
        return len(self.order)

    def displayed_keys(self) -> list[str]:
        return [self.row_keys[i] for i in self.order]

    def cell_text(self, row_key: str, col: int) -> str:
        return self.plain[self.row_keys.index(row_key)][col]

    def cursor_key(self) -> tuple[str, int] | None:
        if not self.order:
            return None
        return self.row_keys[self.order[self.cursor_row]], self.cursor_col

    # ----------------------------------------------------------------- geometry
    @property
    def _page_rows(self) -> int:
        return max(1, self.size.height - 1)

    @property
    def _page_cols(self) -> int:
        fixed = sum(self.fixed_widths) + 2
        return max(1, (self.size.width - fixed) // self.col_width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.order) + 1

    def _scroll_to_cursor(self) -> bool:
        """Keep the cursor visible; True when the offsets changed (a full repaint)."""
        before = (self.row_offset, self.col_offset)
        rows, cols = self._page_rows, self._page_cols
        if self.cursor_row < self.row_offset:
            self.row_offset = self.cursor_row
        elif self.cursor_row >= self.row_offset + rows:
            self.row_offset = self.cursor_row - rows + 1
        if self.cursor_col < self.col_offset:
            self.col_offset = self.cursor_col
        elif self.cursor_col >= self.col_offset + cols:
            self.col_offset = self.cursor_col - cols + 1
        return before != (self.row_offset, self.col_offset)

    # ----------------------------------------------------------------- drawing
    def _fixed(self, label: str, second: str, style: Style) -> list[Segment]:
        a, b = self.fixed_widths
        return [Segment(f" {label:<{a - 1}}"[:a], style), Segment(f" {second:<{b - 1}}"[:b], style),
                Segment(" │", Style(dim=True))]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        cols = range(self.col_offset, min(len(self.col_titles), self.col_offset +
                                          self._page_cols))
        if y == 0:
            segs = self._fixed(*self.fixed_titles, HEADER)
            w = self.col_width
            for c in cols:
                segs.append(Segment(f" {self.col_titles[c]:<{w - 1}}"[:w],
                                    HEADER + (Style(underline=True) if c == self.cursor_col
                                              else Style())))
            return Strip(segs).crop_extend(0, width, None)
        shown = self.row_offset + y - 1
        if shown >= len(self.order):
            return Strip.blank(width)
        data = self.order[shown]
        label, second = self.labels[data]
        on_row = shown == self.cursor_row
        segs = self._fixed(label, second, HEADER if on_row else LABEL)
        row = self.cells[data]
        for c in cols:
            seg = row[c]
            if on_row and c == self.cursor_col:
                seg = Segment(seg.text, (seg.style or Style()) + CURSOR)
            segs.append(seg)
        return Strip(segs).crop_extend(0, width, None)

    # ----------------------------------------------------------------- moving
    def _moved(self) -> None:
        key = self.cursor_key()
        if key is not None:
            self.post_message(self.Moved(self, *key))

    def _go(self, row: int, col: int) -> None:
        if not self.order:
            return
        row = max(0, min(len(self.order) - 1, row))
        col = max(0, min(len(self.col_titles) - 1, col))
        old_row, old_col = self.cursor_row, self.cursor_col
        self.cursor_row, self.cursor_col = row, col
        if self._scroll_to_cursor() or col != old_col:
            self.refresh()                    # a scroll, or the header's underline moved
        elif row != old_row:
            for line in (old_row - self.row_offset + 1, row - self.row_offset + 1):
                self.refresh(Region(0, line, self.size.width, 1))
        else:
            return
        self._moved()

    def action_move(self, drow: int, dcol: int) -> None:
        self._go(self.cursor_row + drow, self.cursor_col + dcol)

    def action_page(self, direction: int) -> None:
        self._go(self.cursor_row + direction * self._page_rows, self.cursor_col)

    def action_edge(self, direction: int) -> None:
        self._go(0 if direction < 0 else len(self.order) - 1, self.cursor_col)

    def action_select(self) -> None:
        key = self.cursor_key()
        if key is not None:
            self.post_message(self.Selected(self, *key))

    def on_mouse_scroll_down(self, event) -> None:
        self._go(self.cursor_row + 3, self.cursor_col)

    def on_mouse_scroll_up(self, event) -> None:
        self._go(self.cursor_row - 3, self.cursor_col)

    def on_resize(self, event) -> None:
        self._scroll_to_cursor()
        self.refresh()
