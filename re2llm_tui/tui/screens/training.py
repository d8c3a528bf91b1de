"""Training: start / pause / resume / stop the agent in a background process; live charts.

A run has two phases.  Phase 1 fills the reward table a session at a time: the status line
reads ``reward table <known>/<total>`` with outcomes per minute and the ETA, and the bar
chart shows each hint's mean reward so far, growing as rows arrive.  Phase 2 is PPO on that
table: step, steps/s, reward and the usual curves.

The app owns the process and a :class:`~re2llm_tui.tui.monitor.TrainingMonitor` (bounded
deques); this screen's 4 Hz timer redraws *one* chart per tick (the next one whose data
changed), so a tick blocks the UI for one plot build (~10-15 ms), not four; the timer is
paused while the screen is hidden.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Static

from re2llm_tui.safe_text import text as safe
from re2llm_tui.tui.screens._base import WorkbenchScreen
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.charts import BarChart, LineChart
from re2llm_tui.tui.widgets.footer import WorkbenchFooter

REDRAW_S = 0.25  # <= 4 Hz
CHARTS = ("chart-reward", "chart-entropy", "chart-losses", "chart-actions")


class TrainingScreen(WorkbenchScreen):
    SHOWS = frozenset({"split"})
    BINDINGS = [
        Binding("s", "start", "Start new"),
        Binding("p", "pause", "Pause"),
        Binding("c", "resume", "Resume"),
        Binding("x", "stop", "Stop"),
        Binding("m", "smoothing", "Smoothing"),
        Binding("t", "reward_table", "Rewards"),
    ]
    #: the smoothing weights ``m`` cycles through (0: raw curves)
    SMOOTHING = (0.0, 0.6, 0.9, 0.99)

    def __init__(self) -> None:
        super().__init__()
        self._drawn = {name: -1 for name in CHARTS}   # monitor version each chart shows
        self._next_chart = 0
        self._status_text = None
        self.smoothing = 0.6
        self.redraws = 0

    def compose(self) -> ComposeResult:
        yield AppHeader("Training")
        yield Static("", id="train-status")
        with Grid(id="train-grid"):
            yield LineChart("reward (moving avg) and eval reward", id="chart-reward")
            yield LineChart("entropy", id="chart-entropy")
            yield LineChart("losses", id="chart-losses")
            yield BarChart("hint choices", id="chart-actions")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        # the charts as composed show "(no data yet)": draw them when the monitor changes
        self._drawn = dict.fromkeys(CHARTS, self.app.training.monitor.version)
        self._status()
        self._timer = self.set_interval(REDRAW_S, self._tick)

    def on_screen_suspend(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.pause()

    def on_resumed(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is None:          # the first visit: on_mount starts the timer
            return
        # the status line now; the charts on the timer, after the screen is shown
        self._status()
        self.call_after_refresh(timer.resume)

    def _tick(self) -> None:
        if not self.is_current:
            return
        self._status()
        version = self.app.training.monitor.version
        for _ in CHARTS:
            name = CHARTS[self._next_chart]
            self._next_chart = (self._next_chart + 1) % len(CHARTS)
            if self._drawn[name] != version:
                self._drawn[name] = version
                self.redraws += 1
                self._draw(name)
                return

    def _draw(self, name: str) -> None:
        mon = self.app.training.monitor
        in_table = self.app.training.phase == "table"
        if name == "chart-reward" and in_table:
            self.query_one("#chart-reward", LineChart).draw(
                {"outcomes known": mon.xy("table/done")},
                title="phase 1: reward-table outcomes known", xlabel="minutes")
            return
        if name == "chart-actions" and (in_table or mon.action_hist is None) and \
                isinstance(mon.latest.get("table/hint_means"), list):
            means = mon.latest["table/hint_means"]
            labels = (list(mon.action_labels) if len(mon.action_labels) == len(means)
                      else [str(i) for i in range(len(means))])
            pairs = [(lab, float(m)) for lab, m in zip(labels, means) if m is not None]
            self.query_one("#chart-actions", BarChart).draw(
                [p[0] for p in pairs], [p[1] for p in pairs],
                title="mean reward per hint (reward table so far)")
            return
        w = self.smoothing
        tag = f" (smoothing {w:g}, m changes it)" if w else " (m smooths)"
        if name == "chart-reward":
            series = {"reward": mon.smoothed("charts/reward_mean", w),
                      "eval": mon.smoothed("charts/eval_reward", w),
                      "best eval so far": mon.best_so_far("charts/eval_reward")}
            self.query_one("#chart-reward", LineChart).draw(
                series, title="reward (moving avg), eval reward" + tag)
        elif name == "chart-entropy":
            self.query_one("#chart-entropy", LineChart).draw(
                {"entropy": mon.smoothed("losses/entropy", w)}, title="entropy" + tag)
        elif name == "chart-losses":
            self.query_one("#chart-losses", LineChart).draw({
                "policy": mon.smoothed("losses/policy", w),
                "value": mon.smoothed("losses/value", w)}, title="losses" + tag)
        else:
            hist = mon.action_hist
            labels, values = [], []
            if isinstance(hist, dict):
                labels = [str(k) for k in hist]
                values = [float(v) for v in hist.values()]
            elif isinstance(hist, (list, tuple)):
                labels = (list(mon.action_labels) if len(mon.action_labels) == len(hist)
                          else [str(i) for i in range(len(hist))])
                values = [float(v) for v in hist]
            self.query_one("#chart-actions", BarChart).draw(labels, values)

    def _status(self) -> None:
        self._set_status(self.app.training.status_line())

    def _set_status(self, text: str) -> None:
        if text != self._status_text:     # an unchanged status costs no layout
            self._status_text = text
            self.query_one("#train-status", Static).update(safe(text))

    def action_smoothing(self) -> None:
        """Cycle the smoothing of the curves (a debiased EMA; the raw data is kept)."""
        i = self.SMOOTHING.index(self.smoothing) if self.smoothing in self.SMOOTHING else 0
        self.smoothing = self.SMOOTHING[(i + 1) % len(self.SMOOTHING)]
        for chart in ("chart-reward", "chart-entropy", "chart-losses"):
            self._drawn[chart] = -1          # redraw on the next ticks
        self.app.notify(f"smoothing {self.smoothing:g}", title="training charts", timeout=2)

    def action_reward_table(self) -> None:
        from re2llm_tui.tui.screens.reward_table import RewardTableScreen

        self.app.push_screen(RewardTableScreen())

    def action_start(self) -> None:
        self.app.training.propose()

    def action_pause(self) -> None:
        self.app.training.pause()

    def action_resume(self) -> None:
        self.app.training.resume()

    def action_stop(self) -> None:
        self.app.training.stop()

    def palette_actions(self):
        return [("Training: start a new run", "in a background process", self.action_start),
                ("Training: continue / resume", "a paused or stopped run", self.action_resume),
                ("Training: the reward table", "sessions x hints", self.action_reward_table)]
