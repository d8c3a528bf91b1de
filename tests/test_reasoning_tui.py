"""The TUI shows a reasoning model's thinking on demand (issue 20): ``t`` toggles the thinking
behind a call in session detail (rankings A and B) and in the reflection transcript; the
footer still shows ``q Quit`` at 100x30 on both screens."""

from __future__ import annotations

import pytest
from tui_snapshot_app import SIZE_LARGE, SIZE_SMALL, make_fixture_app

from re2llm_tui.store.workspace import open_workspace

THINK_A = "THINKING-A: the user replays franchises, so rank sequels first."
THINK_TURN = "THINKING-TURN: which genre did I overweight?"


def plain(widget) -> str:
    import io

    from rich.console import Console

    console = Console(width=300, record=True, file=io.StringIO(), color_system=None)
    console.print(widget.content)
    return console.export_text()


@pytest.fixture
def thinking_app(tmp_path, data_dir, monkeypatch):
    """The fixture workspace with reasoning stored for the missed session's baseline call and
    for the reflection's turn-2 reply (that one a cache hit of the original call)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))
    app, info = make_fixture_app(tmp_path, data_dir)
    db = open_workspace(tmp_path / "kb.sqlite")

    def call(reasoning, cache_of=None):
        return db.execute(
            "INSERT INTO calls (key, model, purpose, status, cached, cache_of, reasoning, "
            "reasoning_tokens) VALUES (?,?,?,?,?,?,?,?)",
            [f"k{reasoning and reasoning[:8]}{cache_of}", "fixture", "rank", "ok",
             1 if cache_of else 0, cache_of, reasoning, 40 if reasoning else 0]).lastrowid

    a = call(THINK_A)
    db.execute("UPDATE run_items SET call_id=? WHERE run_id=? AND session_id=?",
               [a, info["baseline_run"], info["missed"]])
    original = call(THINK_TURN)
    hit = call(None, cache_of=original)
    db.execute("UPDATE reflection_turns SET call_id=? WHERE reflection_id=? AND kind='mistakes' "
               "AND role='assistant'", [hit, info["reflection_id"]])
    db.conn.close()
    return app, info


def _quit_visible(app) -> bool:
    from textual.widgets._footer import FooterKey

    keys = list(app.screen.query(FooterKey))
    quits = [k for k in keys if k.key == "q"]
    palette = [k for k in keys if k.has_class("-command-palette")]
    return bool(quits and palette) and quits[0].region.width >= len("q Quit") and \
        quits[0].region.right <= palette[0].region.x


@pytest.mark.parametrize("size", [SIZE_SMALL, SIZE_LARGE])
async def test_t_toggles_the_thinking_in_session_detail(thinking_app, size):
    from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

    app, info = thinking_app
    async with app.run_test(size=size) as pilot:
        app.push_screen(SessionDetailScreen(info["missed"]))
        await pilot.pause()
        col = app.screen.query_one("#thinking-col")
        assert not col.display                          # hidden until asked
        assert THINK_A not in plain(app.screen.query_one("#ranking-a"))
        await pilot.press("t")
        await pilot.pause()
        assert col.display and col.region.height > 0
        text = plain(app.screen.query_one("#thinking"))
        assert "A · thinking: " + THINK_A in " ".join(text.split()) or THINK_A in text
        assert "B · thinking: (none stored" in " ".join(text.split())
        assert _quit_visible(app)
        await pilot.press("t")
        await pilot.pause()
        assert not col.display


@pytest.mark.parametrize("size", [SIZE_SMALL, SIZE_LARGE])
async def test_t_toggles_the_thinking_in_the_reflection_transcript(thinking_app, size):
    from re2llm_tui.tui.screens.reflection import ReflectionScreen

    app, info = thinking_app
    async with app.run_test(size=size) as pilot:
        app.push_screen(ReflectionScreen(info["missed"]))
        await pilot.pause()
        transcript = app.screen.query_one("#transcript")
        assert THINK_TURN not in plain(transcript)
        await pilot.press("t")
        await pilot.pause()
        flat = " ".join(plain(transcript).split())
        # the thinking of the turn-2 reply (served from the cache: the original's), under it
        assert ("I focused on the genre of the last item only. thinking: " + THINK_TURN) in flat
        assert "thinking: (none stored)" in flat          # the other replies had none
        assert _quit_visible(app)
        await pilot.press("t")
        await pilot.pause()
        assert THINK_TURN not in plain(transcript)
