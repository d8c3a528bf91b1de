"""Titles and hints are shown as text, never parsed as Rich markup."""

from __future__ import annotations

from re2llm_tui import kb

from test_tui_app import SIZE, fixture_app, settle, ws  # noqa: F401  (fixture)

HINT = "Prefer [b]bold[/b] picks [/] and [Download] editions"


async def test_hint_text_with_brackets_shows_verbatim(fixture_app, tmp_path):  # noqa: F811
    from textual.widgets import DataTable

    app, _ = fixture_app()
    async with app.run_test(size=SIZE) as pilot:
        kb.add_hint(ws(tmp_path), "games", HINT, status="candidate")
        await pilot.press("2")  # hint review: the candidate queue
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        cells = [str(getattr(c, "plain", c)) for r in range(table.row_count)
                 for c in table.get_row_at(r)]
        assert HINT in cells
