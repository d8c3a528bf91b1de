"""SVG snapshots of each screen at a fixed terminal size (pytest-textual-snapshot).

Update after an intended change of the UI with ``pytest tests/test_tui_snapshots.py
--snapshot-update`` and look at the report.  The workspace is built from fixtures
(tui_snapshot_app.py), the cwd is the temp folder (stable header), no model is called.
"""

from __future__ import annotations

import pytest
from tui_snapshot_app import SIZE_LARGE, SIZE_SMALL, make_fixture_app


@pytest.fixture
def snap_app(tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))

    def _make():
        app, info = make_fixture_app(tmp_path, data_dir)
        app.show_demo_notice = False   # a timed toast would make snapshots timing-dependent
        return app, info

    return _make


def _goto_missed(info):
    async def run_before(pilot):
        await pilot.pause()
        table = pilot.app.screen.query_one("DataTable")
        table.move_cursor(row=table.get_row_index(info["missed"]))
        await pilot.press("enter")
        await pilot.pause()
    return run_before


def test_sessions_screen(snap_app, snap_compare):
    app, _ = snap_app()
    assert snap_compare(app, terminal_size=SIZE_SMALL, press=["m"])


def test_sessions_screen_large(snap_app, snap_compare):
    app, _ = snap_app()
    assert snap_compare(app, terminal_size=SIZE_LARGE)


def test_session_detail_screen(snap_app, snap_compare):
    app, info = snap_app()
    assert snap_compare(app, terminal_size=SIZE_LARGE, run_before=_goto_missed(info))


def test_session_detail_screen_small(snap_app, snap_compare):
    app, info = snap_app()
    assert snap_compare(app, terminal_size=SIZE_SMALL, run_before=_goto_missed(info))


def test_reflection_screen(snap_app, snap_compare):
    app, info = snap_app()

    async def run_before(pilot):
        await _goto_missed(info)(pilot)
        await pilot.press("v")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE_LARGE, run_before=run_before)


def test_hint_review_screen(snap_app, snap_compare):
    app, _ = snap_app()
    assert snap_compare(app, terminal_size=SIZE_SMALL, press=["2"])


def test_edit_dialog(snap_app, snap_compare):
    app, _ = snap_app()
    assert snap_compare(app, terminal_size=SIZE_SMALL, press=["2", "e"])


def test_knowledge_base_screen(snap_app, snap_compare):
    app, _ = snap_app()
    assert snap_compare(app, terminal_size=SIZE_SMALL, press=["3"])


def test_training_screen(snap_app, snap_compare):
    app, _ = snap_app()
    assert snap_compare(app, terminal_size=SIZE_SMALL, press=["4"])


def test_evaluation_screen(snap_app, snap_compare):
    app, _ = snap_app()
    assert snap_compare(app, terminal_size=SIZE_SMALL, press=["5"])


def test_help_screen(snap_app, snap_compare):
    app, _ = snap_app()
    assert snap_compare(app, terminal_size=SIZE_LARGE, press=["question_mark"])
