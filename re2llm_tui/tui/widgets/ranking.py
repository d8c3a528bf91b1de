"""Views of one session: history, candidates (target marked) and a stored ranking."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

TARGET_STYLE = "bold black on green"
HIT_STYLE = "bold green"
HALLUCINATION_STYLE = "italic red"


class HistoryView(Static):
    """The session's history titles, in order (oldest first)."""

    def show(self, history) -> None:
        t = Text()
        t.append(f"History ({len(history)} items, oldest first)\n", style="bold underline")
        for i, title in enumerate(history, 1):
            t.append(f"{i:>2}. ", style="dim")
            t.append(f"{title}\n")
        self.update(t)


class CandidatesView(Static):
    """The 50 candidates; the target marked ★, candidates in the shown rankings marked."""

    def show(self, candidates, target_index: int, marks: dict[int, str] | None = None) -> None:
        marks = marks or {}
        t = Text()
        t.append(f"Candidates ({len(candidates)}; ★ target", style="bold underline")
        t.append(", A/B = in ranking A/B)\n" if marks else ")\n", style="bold underline")
        for i, title in enumerate(candidates):
            mark = marks.get(i, "")
            t.append(f"{i + 1:>2}{mark:<3}", style="dim")
            if i == target_index:
                t.append("★ " + title, style=TARGET_STYLE)
                t.append("\n")
            else:
                t.append(f"{title}\n")
        self.update(t)


class RankingView(Static):
    """One stored ranking: top-10 titles, the target highlighted, NDCG@10, hallucinations."""

    def show_empty(self, title: str, why: str) -> None:
        t = Text()
        t.append(title + "\n", style="bold underline")
        t.append(why, style="dim italic")
        self.update(t)

    def show(self, title: str, stored, candidates, target_index: int) -> None:
        table = Table(box=None, show_header=False, pad_edge=False, expand=True,
                      title=None)
        table.add_column("#", justify="right", style="dim", width=3, no_wrap=True)
        table.add_column("title", ratio=1, overflow="fold")
        # the reply's listed lines in their positions (an invented or repeated title keeps
        # its slot, as the target's rank counts it); an engine's ranking is its reply
        positions: list = list(stored.ranking[:10])
        invented: list[str] = []
        if stored.reply and stored.hallucinations:
            from re2llm_tui.llm.parsing import parse_ranking

            parsed = parse_ranking(stored.reply, candidates, 10)
            positions, invented = list(parsed.positions[:10]), list(parsed.hallucinations)
        seen: set[int] = set()
        for pos, idx in enumerate(positions, 1):
            if idx is None:
                name = invented.pop(0) if invented else "?"
                table.add_row(f"{pos}.", Text("✗ " + name + "  (not a candidate)",
                                              style=HALLUCINATION_STYLE))
                continue
            name = candidates[idx] if 0 <= idx < len(candidates) else f"<candidate {idx}?>"
            if idx in seen:
                table.add_row(f"{pos}.", Text(name + "  (repeated)", style="dim"))
            elif idx == target_index:
                table.add_row(f"{pos}.", Text("★ " + name + "  ← target", style=TARGET_STYLE))
            else:
                table.add_row(f"{pos}.", name)
            seen.add(idx)
        head = Text()
        head.append(title + "\n", style="bold underline")
        head.append(stored.label, style="bold")
        if stored.hint_text:
            head.append("\nhint: ", style="dim")
            head.append(stored.hint_text, style="italic")
        head.append("\n")
        if stored.target_rank is not None and stored.target_rank <= 10:
            head.append(f"HIT at rank {stored.target_rank}", style=HIT_STYLE)
        elif stored.target_rank is not None:
            head.append(f"miss (target at rank {stored.target_rank})", style="bold red")
        else:
            head.append("miss (target not listed)", style="bold red")
        head.append(f"   NDCG@10 {stored.ndcg10:.3f}")
        if len(stored.ranking) < 10:
            head.append(f"   only {len(stored.ranking)} valid items", style="yellow")
        tail = Text()
        if stored.error:
            tail.append(f"\nerror: {stored.error}", style="bold red")
        if stored.hallucinations:
            tail.append(f"\nhallucinated ({len(stored.hallucinations)}, not candidates):",
                        style="bold red")
            for h in stored.hallucinations[:10]:
                tail.append(f"\n  ✗ {h}", style=HALLUCINATION_STYLE)
            if len(stored.hallucinations) > 10:
                tail.append(f"\n  … {len(stored.hallucinations) - 10} more", style="dim")
        from rich.console import Group

        self.update(Group(head, table, tail))
