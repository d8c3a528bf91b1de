"""Hint detail: a hint's text and provenance, its evidence (kb/evidence.py), a histogram of
its rewards and its sessions sorted by gain.

Enter on a session opens session detail with this hint's ranking (from the reward table)
beside the no-hint one; ``o`` opens the session the hint came from, ``v`` its reflection,
``t`` the reward table sorted by this hint.  The evidence is computed in a worker (the
bootstrap, and MiniLM for the similar hints unless their vectors are cached).
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from re2llm_tui.safe_text import clean
from re2llm_tui.store import changes
from re2llm_tui.tui.screens._base import WorkbenchScreen, cursor_row_key
from re2llm_tui.tui.screens._hints_common import STATUS_STYLE
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.footer import WorkbenchFooter

BADGE_STYLE = {"hurts": "bold red", "no effect": "yellow", "acts like": "magenta",
               "unused": "dim"}
HIST_BINS = 10


class EvidenceReady(Message):
    """The worker finished: the evidence (or the one-line reason there is none)."""

    def __init__(self, evidence=None, report=None, error: str = "") -> None:
        super().__init__()
        self.evidence = evidence
        self.report = report
        self.error = error


def short_label(badge) -> str:
    """A badge in a list column: "acts like #3" is "≈#3"."""
    return f"≈#{badge.other}" if badge.kind == "acts like" else badge.label


def badge_text(badges, *, why: bool = False) -> Text:
    """Badges as styled labels (short, for a column), or with their reasons, one a line,
    when ``why``."""
    t = Text()
    for i, b in enumerate(badges):
        if why:
            t.append(f"{b.label}", style=BADGE_STYLE.get(b.kind, "bold"))
            t.append(f": {clean(b.why, oneline=True)}\n")
        else:
            if i:
                t.append(" ")
            t.append(short_label(b), style=BADGE_STYLE.get(b.kind, ""))
    return t


def histogram_text(rewards, n_bins: int = HIST_BINS, width: int = 24) -> Text:
    from re2llm_tui.kb.evidence import histogram

    bins = histogram(rewards, n_bins=n_bins)
    top = max((c for *_, c in bins), default=0) or 1
    t = Text()
    t.append("rewards (NDCG@10 gain per session)\n", style="bold")
    for lo, hi, c in bins:
        bar = "█" * max(1 if c else 0, round(c / top * width))
        style = "red" if hi <= 0 else "green"
        t.append(f"{lo:+.1f}…{hi:+.1f} ", style="dim")
        t.append(f"{bar:<{width}}", style=style)
        t.append(f" {c}\n")
    return t


def evidence_text(ev, report) -> Text:
    t = Text()
    t.append(f"{report.scope()} · {report.model}\n", style="dim")
    if report.left_out:
        t.append(report.left_out_line(ev) + "\n", style="dim")
    if ev.stale or not ev.n:
        t.append(clean(ev.note or "no evidence", oneline=True) + "\n",
                 style="yellow" if ev.stale else "dim")
    else:
        lo, hi = ev.ci
        t.append("mean reward ", style="bold")
        t.append(f"{ev.mean:+.3f}", style="red" if hi < 0 else ("green" if lo > 0 else ""))
        t.append(f" NDCG@10, 95% CI [{lo:+.3f}, {hi:+.3f}] over {ev.n} sessions\n")
        t.append(f"helped {ev.helped}", style="green")
        t.append(" · ")
        t.append(f"hurt {ev.hurt}", style="red")
        t.append(f" · unchanged {ev.unchanged}\n")
        if ev.gains:
            t.append("largest gains: ", style="bold")
            t.append(", ".join(f"{e.session_id} {e.reward:+.2f}" for e in ev.gains[:3]) + "\n")
        if ev.losses:
            t.append("largest losses: ", style="bold")
            t.append(", ".join(f"{e.session_id} {e.reward:+.2f}" for e in ev.losses[:3]) + "\n")
    a = ev.agent
    t.append("agent: ", style="bold")
    if a is None:
        t.append("no finished training run\n", style="dim")
    elif not a.is_action:
        t.append(f"not an action of training run #{a.run_id}\n", style="dim")
    else:
        how = "argmax" if a.source == "greedy" else "last sampled window"
        t.append(f"{a.share or 0:.0%} of run #{a.run_id}'s {how} choices")
        if a.sessions is not None:
            t.append(f" · routes {len(a.sessions)} session(s) to it")
        t.append("\n")
    if ev.badges:
        t.append("suggestions (never applied):\n", style="bold")
        t.append_text(badge_text(ev.badges, why=True))
    else:
        t.append("suggestions: none\n", style="dim")
    if ev.similar:
        t.append("similar hints (MiniLM):\n", style="bold")
        for s in ev.similar:
            corr = "—" if s.correlation is None else f"{s.correlation:+.2f}"
            t.append(f" #{s.hint_id} cos {s.cosine:.2f} · reward r {corr} ({s.common}) ")
            t.append(clean(s.text, oneline=True) + "\n", style="italic")
    return t


class HintDetailScreen(WorkbenchScreen):
    # a KB change or a finished training run recomputes the evidence; new outcomes while
    # the table fills do not (that would be a bootstrap a second): reopen to see them
    DATA_SOURCES = (changes.KB, changes.TRAIN_RUNS)
    AUTO_FOCUS = "#hd-sessions"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("t", "reward_table", "Reward table"),
        Binding("o", "origin", "Origin session"),
        Binding("v", "reflection", "Reflection"),
        Binding("enter", "open", "Open session", show=False),
    ]

    def __init__(self, hint_id: int) -> None:
        super().__init__()
        self.hint_id = int(hint_id)
        self.hint = None
        self.evidence = None
        self.report = None
        self.error = ""

    def compose(self) -> ComposeResult:
        yield AppHeader(f"Hint #{self.hint_id}")
        yield Static("", id="hd-head")
        with Horizontal(id="hd-body"):
            with VerticalScroll(id="hd-left"):
                yield Static(Text("computing the evidence …", style="dim"), id="hd-evidence")
                yield Static("", id="hd-hist")
            with Vertical(id="hd-right"):
                yield Static("", id="hd-sessions-title")
                yield DataTable(id="hd-sessions", cursor_type="row", zebra_stripes=True)
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        t = self.query_one("#hd-sessions", DataTable)
        t.add_column("session", key="session", width=11)
        t.add_column("gain", key="gain", width=6)
        t.add_column("rank w/o→w", key="rank", width=10)
        t.add_column("agent", key="agent", width=5)
        self.reload()

    def reload(self) -> None:
        from re2llm_tui.errors import UserError

        try:
            self.hint = self.app.kb().get(self.hint_id)
        except UserError as exc:
            self.app.notify(str(exc), title="hint detail", severity="error", timeout=6)
            self.query_one("#hd-head", Static).update(Text(str(exc), style="red"))
            self.query_one("#hd-evidence", Static).update("")
            return
        self._head()
        self._compute(self.hint_id)

    def _head(self) -> None:
        h = self.hint
        t = Text()
        t.append(f"#{h.id} ", style="bold")
        t.append(h.status, style=STATUS_STYLE.get(h.status, ""))
        t.append(f" · {h.source}")
        if h.session_id:
            t.append(" · from session ")
            t.append(h.session_id, style="underline")
            t.append(" (o)")
            if h.reflection_id:
                t.append(f" · reflection #{h.reflection_id} (v)")
        t.append("\n")
        t.append(clean(h.text, oneline=True), style="italic")
        self.query_one("#hd-head", Static).update(t)

    @work(thread=True, exclusive=True, exit_on_error=False, group="evidence",
          description="hint evidence")
    def _compute(self, hint_id: int) -> None:
        from re2llm_tui.errors import UserError
        from re2llm_tui.kb import KnowledgeBase
        from re2llm_tui.kb.evidence import hint_evidence

        db = self.app.open_db()
        try:
            hints = KnowledgeBase(db, self.app.config.ds).hints()
            ev, report = hint_evidence(db, self.app.config.dataset, hints, hint_id,
                                       model=self.app.config.model)
        except UserError as exc:
            self.post_message(EvidenceReady(error=str(exc)))
            return
        finally:
            db.conn.close()
        self.post_message(EvidenceReady(ev, report))

    def on_evidence_ready(self, message: EvidenceReady) -> None:
        self.evidence, self.report, self.error = message.evidence, message.report, \
            message.error
        out = self.query_one("#hd-evidence", Static)
        table = self.query_one("#hd-sessions", DataTable)
        table.clear()
        if message.error:
            self.app.notify(message.error, title="hint evidence", severity="warning",
                            timeout=6)
            out.update(Text(message.error, style="yellow"))
            self.query_one("#hd-hist", Static).update("")
            self.query_one("#hd-sessions-title", Static).update("")
            return
        ev = message.evidence
        if ev.stale:
            self.app.notify(ev.note, title=f"hint #{ev.hint_id}", severity="warning",
                            timeout=6)
        out.update(evidence_text(ev, message.report))
        self.query_one("#hd-hist", Static).update(
            histogram_text(ev.rewards) if ev.n else "")
        self.query_one("#hd-sessions-title", Static).update(Text(
            f"{ev.n} session(s) by gain · Enter: this hint's ranking beside the no-hint one",
            style="dim"))
        for e in ev.sessions:
            style = "green" if e.reward > 0 else ("red" if e.reward < 0 else "dim")
            agent = "" if e.agent_pick is None else ("◆" if e.agent_pick else "·")
            table.add_row(e.session_id, Text(f"{e.reward:+.2f}", style=style),
                          f"{e.rank_without or '—'}→{e.rank_with or '—'}", agent,
                          key=e.session_id)

    # ----------------------------------------------------------------- actions
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open(event.row_key.value)

    def action_open(self) -> None:
        sid = cursor_row_key(self.query_one("#hd-sessions", DataTable))
        if sid:
            self._open(sid)

    def _open(self, session_id: str) -> None:
        from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

        if self.report is None or self.evidence is None:
            return
        self.app.push_screen(SessionDetailScreen(session_id, reward_hint={
            "model": self.report.model, "context": self.report.context,
            "hint_id": self.evidence.hint_id, "hint_key": self.evidence.hint_key,
            "text": self.evidence.text}))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reward_table(self) -> None:
        from re2llm_tui.tui.screens.reward_table import RewardTableScreen

        self.app.push_screen(RewardTableScreen(sort_hint=self.hint_id))

    def action_origin(self) -> None:
        if self.hint is None or not self.hint.session_id:
            self.app.notify(f"hint #{self.hint_id} did not come from a session",
                            severity="warning", timeout=3)
            return
        from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

        self.app.push_screen(SessionDetailScreen(self.hint.session_id))

    def action_reflection(self) -> None:
        if self.hint is None or not self.hint.session_id:
            self.app.notify(f"hint #{self.hint_id} did not come from a reflection",
                            severity="warning", timeout=3)
            return
        from re2llm_tui.tui.screens.reflection import ReflectionScreen

        screen = ReflectionScreen(self.hint.session_id)
        screen.reflection_id = self.hint.reflection_id
        self.app.push_screen(screen)

    def palette_actions(self):
        return [(f"Hint #{self.hint_id}: reward table sorted by it", "", self.action_reward_table),
                (f"Hint #{self.hint_id}: the session it came from", "", self.action_origin),
                (f"Hint #{self.hint_id}: its reflection", "", self.action_reflection),
                ("Back", "", self.action_back)]
