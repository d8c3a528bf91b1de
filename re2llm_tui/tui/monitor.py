"""Bounded series of the training scalars (no Textual: the app feeds it, charts read it)."""

from __future__ import annotations

from collections import deque

#: points kept per series (older ones are dropped: the chart shows the recent window)
MAXLEN = 600
SERIES = ("charts/reward_mean", "charts/eval_reward", "losses/policy", "losses/value",
          "losses/entropy", "charts/steps_per_s", "charts/llm_calls", "charts/cache_hits",
          "charts/cost")
STEP_KEYS = ("global_step", "step", "steps")
#: records whose x is elapsed minutes, not a PPO step (the reward table's progress)
TIMED_PREFIX = "table/"


class TrainingMonitor:
    """Keeps the last :data:`MAXLEN` (step, value) points of each scalar and the latest values.

    Accepts both shapes a trainer may emit: ``{"name": ..., "value": ..., "step": ...}`` per
    scalar, or one dict of ``{name: value, ..., "global_step": n}`` per update.
    ``version`` increases with every change, so a chart redraws only when something changed.
    """

    def __init__(self, maxlen: int = MAXLEN) -> None:
        self.maxlen = maxlen
        self.clear()

    def clear(self) -> None:
        self.series: dict[str, deque] = {}
        self.latest: dict[str, object] = {}
        self.action_hist: list | dict | None = None
        #: labels of the actions, in the order of ``charts/action_hist`` (set by the app)
        self.action_labels: list[str] = []
        self.step = 0
        self.n_points = 0
        # never back: a chart that drew version n must see a cleared monitor as new
        self.version = getattr(self, "version", -1) + 1

    def _put(self, name: str, value, step) -> None:
        if name == "charts/action_hist":
            self.action_hist = value
            self.latest[name] = value
            return
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.latest[name] = value
            return
        self.latest[name] = v
        self.series.setdefault(name, deque(maxlen=self.maxlen)).append((step, v))

    def add(self, scalars) -> None:
        for item in scalars or ():
            if not isinstance(item, dict):
                continue
            if "name" in item and "value" in item:
                step = item.get("step", self.step)
                if not str(item["name"]).startswith(TIMED_PREFIX):
                    self.step = max(self.step, int(step or 0))
                self._put(item["name"], item["value"], step)
            else:
                step = next((item[k] for k in STEP_KEYS if k in item), self.step)
                self.step = max(self.step, int(step or 0))
                for k, v in item.items():
                    if k not in STEP_KEYS:
                        self._put(k, v, step)
            self.n_points += 1
        self.version += 1

    def smoothed(self, name: str, weight: float) -> tuple[list, list]:
        """The series with a debiased exponential moving average (TensorBoard's smoothing):
        ``s_t = w s_{t-1} + (1 - w) x_t``, divided by ``1 - w**t`` so the start is not pulled
        towards 0.  ``weight`` 0 returns the series as is."""
        return xs_ema(*self.xy(name), weight)

    def best_so_far(self, name: str) -> tuple[list, list]:
        """The running maximum of a series (a step line under the curve)."""
        xs, ys = self.xy(name)
        out, best = [], float("-inf")
        for y in ys:
            best = max(best, y)
            out.append(best)
        return xs, out

    def xy(self, name: str) -> tuple[list, list]:
        pts = self.series.get(name)
        if not pts:
            return [], []
        xs, ys = zip(*pts)
        return list(xs), list(ys)


def xs_ema(xs: list, ys: list, weight: float) -> tuple[list, list]:
    """Debiased exponential moving average of ``ys`` (see :meth:`TrainingMonitor.smoothed`)."""
    if not weight or not ys:
        return list(xs), list(ys)
    out, acc = [], 0.0
    for t, y in enumerate(ys, 1):
        acc = weight * acc + (1.0 - weight) * y
        out.append(acc / (1.0 - weight ** t))
    return list(xs), out
