"""Training: start / pause / resume / stop the agent in a background process; live charts.

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

from ..widgets.app_header import AppHeader
from ..widgets.charts import BarChart, LineChart
from ..widgets.footer import WorkbenchFooter
from ._base import WorkbenchScreen

REDRAW_S = 0.25  # <= 4 Hz
CHARTS = ("chart-reward", "chart-entropy", "chart-losses", "chart-actions")


class TrainingScreen(WorkbenchScreen):
    BINDINGS = [
        Binding("s", "start", "Start new"),
        Binding("p", "pause", "Pause"),
        Binding("c", "resume", "Continue/resume"),
        Binding("x", "stop", "Stop"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._drawn = {name: -1 for name in CHARTS}   # monitor version each chart shows
        self._next_chart = 0
        self._status_text = None
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
        version = self.app.monitor.version
        for _ in CHARTS:
            name = CHARTS[self._next_chart]
            self._next_chart = (self._next_chart + 1) % len(CHARTS)
            if self._drawn[name] != version:
                self._drawn[name] = version
                self.redraws += 1
                self._draw(name)
                return

    def _draw(self, name: str) -> None:
        mon = self.app.monitor
        if name == "chart-reward":
            self.query_one("#chart-reward", LineChart).draw({
                "reward": mon.xy("charts/reward_mean"), "eval": mon.xy("charts/eval_reward")})
        elif name == "chart-entropy":
            self.query_one("#chart-entropy", LineChart).draw(
                {"entropy": mon.xy("losses/entropy")})
        elif name == "chart-losses":
            self.query_one("#chart-losses", LineChart).draw({
                "policy": mon.xy("losses/policy"), "value": mon.xy("losses/value")})
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
        app = self.app
        mon = app.monitor
        latest = mon.latest

        def val(name, fmt="{:.0f}"):
            v = latest.get(name)
            return "—" if v is None else (fmt.format(v) if isinstance(v, (int, float)) else str(v))

        text = (
            f"state [b]{app.training_state}[/b] · step {mon.step} · "
            f"steps/s {val('charts/steps_per_s')} · LLM calls {val('charts/llm_calls')} · "
            f"cache hits {val('charts/cache_hits')} · cost ${val('charts/cost', '{:.4f}')}"
            + (f" · prefill {val('prefill/done')}/{val('prefill/total')}"
               if 'prefill/total' in latest else "") + " · "
            f"reward {val('charts/reward_mean', '{:+.4f}')} · "
            f"eval {val('charts/eval_reward', '{:+.4f}')}")
        if text != self._status_text:     # an unchanged status costs no layout
            self._status_text = text
            self.query_one("#train-status", Static).update(text)

    def action_start(self) -> None:
        self.app.start_training()

    def action_pause(self) -> None:
        self.app.pause_training()

    def action_resume(self) -> None:
        self.app.resume_training()

    def action_stop(self) -> None:
        self.app.stop_training()

    def palette_actions(self):
        return [("Training: start a new run", "in a background process", self.action_start),
                ("Training: continue / resume", "a paused or stopped run", self.action_resume)]
