"""Charts over textual-plotext: drawn from bounded series, redrawn only when asked.

A plotext redraw of a 100×26 chart costs ~16 ms here, so the owner calls :meth:`draw` at
most 4 times a second and only when the data changed (see the training screen).
"""

from __future__ import annotations

from textual_plotext import PlotextPlot


class LineChart(PlotextPlot):
    """Several named (x, y) series on one plot."""

    def __init__(self, title: str, **kw) -> None:
        super().__init__(**kw)
        self.title = title

    def on_mount(self) -> None:
        super().on_mount()
        self.draw({})

    def draw(self, series: dict[str, tuple[list, list]]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        any_data = False
        for label, (xs, ys) in series.items():
            if xs:
                plt.plot(xs, ys, label=label, marker="braille")
                any_data = True
        if not any_data:
            plt.title(f"{self.title} (no data yet)")
        self.refresh()


class BarChart(PlotextPlot):
    """One bar per label."""

    def __init__(self, title: str, **kw) -> None:
        super().__init__(**kw)
        self.title = title

    def on_mount(self) -> None:
        super().on_mount()
        self.draw([], [])

    def draw(self, labels: list[str], values: list[float]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title if labels else f"{self.title} (no data yet)")
        if labels:
            plt.bar(labels, values)
        self.refresh()
