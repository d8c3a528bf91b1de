"""Charts over textual-plotext: drawn from bounded series, redrawn only when asked.

A plotext redraw of a 100×26 chart costs ~16 ms here, so the owner calls :meth:`draw` at
most 4 times a second and only when the data changed (see the training screen).
:class:`textual_plotext.PlotextPlot` rebuilds the plot on *every* render -- each repaint of
the screen, e.g. when switching back to it -- so :class:`CachedPlot` keeps the built text
until the data, the size or the theme changes.
"""

from __future__ import annotations

from textual_plotext import PlotextPlot


class CachedPlot(PlotextPlot):
    """A plotext widget that builds its plot once per (data, size, theme)."""

    _cache_key: tuple | None = None
    _cached = None
    _data_version = 0

    def invalidate(self) -> None:
        """The data changed: the next render builds the plot again."""
        self._data_version += 1
        self.refresh()

    def render(self):
        key = (self._data_version, self.size, self.app.theme, self.theme)
        if key != self._cache_key or self._cached is None:
            self._cached = super().render()
            self._cache_key = key
        return self._cached


def thin(xs: list, ys: list, n: int) -> tuple[list, list]:
    """At most ``n`` evenly spaced points of a series, the last one always kept (a braille
    line chart shows 2 points per column: more only cost build time, ~linearly)."""
    if n <= 0 or len(xs) <= n:
        return xs, ys
    step = len(xs) / n
    idx = sorted({min(len(xs) - 1, int(i * step)) for i in range(n)} | {len(xs) - 1})
    return [xs[i] for i in idx], [ys[i] for i in idx]


class LineChart(CachedPlot):
    """Several named (x, y) series on one plot (thinned to 2 points per column)."""

    def __init__(self, title: str, **kw) -> None:
        super().__init__(**kw)
        self.title = title

    def on_mount(self) -> None:
        super().on_mount()
        self.draw({})

    def draw(self, series: dict[str, tuple[list, list]], title: str | None = None,
             xlabel: str | None = None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        title = title or self.title
        plt.title(title)
        if xlabel:
            plt.xlabel(xlabel)
        any_data = False
        width = self.size.width or 100
        for label, (xs, ys) in series.items():
            xs, ys = thin(xs, ys, 2 * width)
            if xs:
                plt.plot(xs, ys, label=label, marker="braille")
                any_data = True
        if not any_data:
            plt.title(f"{title} (no data yet)")
        self.invalidate()


class BarChart(CachedPlot):
    """One bar per label."""

    def __init__(self, title: str, **kw) -> None:
        super().__init__(**kw)
        self.title = title

    def on_mount(self) -> None:
        super().on_mount()
        self.draw([], [])

    def draw(self, labels: list[str], values: list[float], title: str | None = None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        title = title or self.title
        plt.title(title if labels else f"{title} (no data yet)")
        if labels:
            plt.bar(labels, values)
        self.invalidate()
