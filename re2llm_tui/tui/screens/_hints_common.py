"""Shared helpers of the hint review and knowledge-base screens (KB calls in workers)."""

from __future__ import annotations

from rich.text import Text

from re2llm_tui.kb import store as kb

STATUS_STYLE = {"accepted": "green", "candidate": "yellow", "rejected": "red",
                "archived": "dim"}


def effect_text(effect: dict | None) -> str:
    if not effect:
        return ""
    w, wo = effect.get("rank_with"), effect.get("rank_without")
    if "rank_with" in effect or "rank_without" in effect:
        return f"{'—' if wo is None else wo}→{'—' if w is None else w}"
    return ", ".join(f"{k}={v}" for k, v in list(effect.items())[:2])


def hint_detail(h: kb.Hint, texts: dict[int, str]) -> Text:
    t = Text()
    t.append(f"#{h.id} ", style="bold")
    t.append(h.status, style=STATUS_STYLE.get(h.status, ""))
    t.append(f" · {h.source}")
    if h.session_id:
        t.append(f" · from session {h.session_id}")
    if h.reflection_id:
        t.append(f" (reflection #{h.reflection_id})")
    t.append("\n")
    t.append(h.text + "\n", style="italic")
    if h.effect:
        t.append("effect: ", style="bold")
        t.append(", ".join(f"{k} {v}" for k, v in h.effect.items()) + "\n")
    if h.similar_id is not None:
        t.append("most similar: ", style="bold")
        t.append(f"#{h.similar_id} ({h.similarity or 0:.2f}) ")
        t.append(texts.get(h.similar_id, "(deleted)") + "\n", style="italic")
    if h.merged_into:
        t.append(f"merged into #{h.merged_into}\n", style="dim")
    if h.note:
        t.append(f"note: {h.note}\n", style="dim")
    return t


class HintActions:
    """Mixin: open / accept / reject / edit / merge / delete / undo of the selected hint."""

    #: id -> text of the hints on screen (for the merge dialog's "most similar")
    _texts: dict[int, str] = {}

    def selected_hint(self) -> kb.Hint | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def on_data_table_row_selected(self, event) -> None:
        """Enter on a hint's row: its detail (provenance and evidence)."""
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        """The selected hint's detail: provenance and evidence."""
        h = self.selected_hint()
        if h:
            self.app.open_hint(h.id)

    def _kb(self, db):
        return self.app.kb(db)

    def action_accept(self) -> None:
        h = self.selected_hint()
        if h:
            def _accept(db):
                done = self._kb(db).accept([h.id])
                return (f"accepted #{h.id}" if done else f"#{h.id} already accepted"), [h.id]

            self.app.kb_change(_accept, "accept")

    def action_reject(self) -> None:
        h = self.selected_hint()
        if h:
            def _reject(db):
                done = self._kb(db).reject([h.id])
                return (f"rejected #{h.id}" if done else f"#{h.id} already rejected"), [h.id]

            self.app.kb_change(_reject, "reject")

    def action_delete(self) -> None:
        h = self.selected_hint()
        if h:
            def _delete(db):
                self._kb(db).delete([h.id])
                return f"deleted #{h.id} (u to undo)", [h.id]

            self.app.kb_change(_delete, "delete")

    def action_undo(self) -> None:
        self.app.undo_kb()

    def action_edit(self, text: str | None = None) -> None:
        from re2llm_tui.tui.widgets.dialogs import TextEditDialog

        h = self.selected_hint()
        if not h:
            return
        original = h.text

        def done(new: str | None) -> None:
            if new is None:
                return

            def retry(exc: Exception) -> None:
                # keep what the user typed: reopen the editor with it
                self.app.push_screen(TextEditDialog(
                    f"Edit hint #{h.id}", new, note=f"not saved: {exc}"), done)

            def _edit(db):
                self._kb(db).edit(h.id, new, expect_text=original)
                return f"edited #{h.id}", [h.id]

            self.app.kb_change(_edit, "edit", on_error=retry)

        self.app.push_screen(TextEditDialog(f"Edit hint #{h.id}", text or h.text), done)

    def action_merge(self) -> None:
        from re2llm_tui.tui.widgets.dialogs import MergeDialog

        h = self.selected_hint()
        if not h:
            return
        texts = self._texts
        keep_id = h.similar_id
        keep_text = texts.get(keep_id, "") if keep_id else ""

        def done(result) -> None:
            if result is None:
                return
            kid, text = result

            def retry(exc: Exception) -> None:
                self.app.push_screen(MergeDialog(h.id, kid, text, note=f"not merged: {exc}",
                                                 texts=texts, edited=True), done)

            def _merge(db):
                current = self._kb(db).get(kid)
                new_text = text if text.strip() and text.strip() != current.text else None
                kept = self._kb(db).merge(kid, [h.id], text=new_text)
                return f"merged #{h.id} into #{kept.id}", [h.id, kept.id]

            self.app.kb_change(_merge, "merge", on_error=retry)

        self.app.push_screen(MergeDialog(h.id, keep_id, keep_text, texts=texts), done)
