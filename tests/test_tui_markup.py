"""Titles and hints are shown as text, never parsed as Rich markup."""

from __future__ import annotations

from test_tui_app import SIZE, fixture_app, settle, ws  # noqa: F401  (fixture)

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.kb import store as kb
from re2llm_tui.tui.textual_compat import notifications

HINT = "Prefer [b]bold[/b] picks [/] and [Download] editions"


async def test_hint_text_with_brackets_shows_verbatim(fixture_app, tmp_path):  # noqa: F811
    from textual.widgets import DataTable

    app, _ = fixture_app()
    async with app.run_test(size=SIZE) as pilot:
        kb.KnowledgeBase(ws(tmp_path), Dataset.resolve("games")).add(HINT, status="candidate")
        await pilot.press("2")  # hint review: the candidate queue
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        cells = [str(getattr(c, "plain", c)) for r in range(table.row_count)
                 for c in table.get_row_at(r)]
        assert HINT in cells


HOSTILE = ["[/]", "x[/bold]", "[link=file:///etc/passwd]y[/link]", "[bold]b[/bold]",
           "\x1b]0;pwned\x07title", "a [/] b [red]"]


async def test_hostile_search_text_never_kills_the_app(fixture_app, tmp_path):  # noqa: F811
    """What a user types into the searches is shown as text (it was parsed as markup)."""
    from textual.widgets import Input

    app, _ = fixture_app()
    async with app.run_test(size=SIZE) as pilot:
        for mode, field in (("1", "#search"), ("3", "#kb-search")):
            await pilot.press(mode)
            await settle(pilot)
            for q in HOSTILE:
                await pilot.press("slash")
                inp = app.screen.query_one(field, Input)
                inp.value = q
                await pilot.press("enter")
                await settle(pilot)
                assert app.is_running
                await pilot.press("escape")
        # a notification carrying markup-like text and control characters
        app.notify("cannot import [/]not-a-file[bold] \x1b[31m", title="x[/b]")
        await settle(pilot)
        assert app.is_running
        shown = [n.message for n in notifications(app)]
        assert any("[/]not-a-file[bold]" in m and "\x1b" not in m for m in shown)
    assert app.return_code in (0, None)


async def test_a_crashed_app_exits_non_zero(monkeypatch, tmp_path, data_dir):
    """A crash leaves a non-zero return code, which run_app hands to the shell."""
    from pathlib import Path

    from re2llm_tui.tui import app as app_mod

    class Boom(app_mod.Re2LLMApp):
        CSS_PATH = str(Path(app_mod.__file__).with_name("app.tcss"))

        def on_mount(self) -> None:
            raise RuntimeError("boom")

    monkeypatch.chdir(tmp_path)
    built = app_mod.make_app("games", data_dir=data_dir, db=str(tmp_path / "kb.sqlite"))
    crashing = Boom(built.config)
    try:
        async with crashing.run_test() as pilot:
            await pilot.pause()
    except RuntimeError:
        pass
    assert crashing.return_code == 1
