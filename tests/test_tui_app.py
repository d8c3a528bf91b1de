"""Pilot-driven flows of the workbench on the real data with a scripted LLM (no real model).

Flow: browse -> open a session -> recommend (worker) -> reflect (worker) -> review the
proposed hint -> accept / reject / edit / merge / undo -> KB add / search / delete / export.
Training and evaluation flows are in test_tui_training.py.
"""

from __future__ import annotations

import json

import pytest
from tui_snapshot_app import (
    DATASET,
    GOOD_HINT,
    SCRIPTED_MODEL,
    make_fixture_app,
    register_tui_script,
)

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.data.release import load_sessions
from re2llm_tui.kb import store as kb
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.tui.textual_compat import notifications

SIZE = (120, 40)


@pytest.fixture
def fixture_app(tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))

    def _make(**kw):
        return make_fixture_app(tmp_path, data_dir, **kw)

    return _make


async def settle(pilot):
    """Wait for every worker, then for the messages they posted."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def notes(app) -> list[str]:
    return [n.message for n in notifications(app)]


def plain(widget) -> str:
    """The text a Static widget shows (its rich content rendered without styles)."""
    import io

    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO(), color_system=None)
    console.print(widget.content)
    return console.export_text()


def ws(tmp_path):
    return open_workspace(tmp_path / "kb.sqlite")


async def test_browse_filter_search_and_open(fixture_app, tmp_path):
    from textual.widgets import DataTable

    app, info = fixture_app()
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        assert table.row_count == len(load_sessions(DATASET, "train"))
        await pilot.press("m")                      # misses only
        miss_rows = table.row_count
        assert 0 < miss_rows < 40
        assert all(r.baseline == "miss" for r in app.screen._visible())
        await pilot.press("m", "n")                 # all, then not yet reflected
        assert info["missed"] not in [r.id for r in app.screen._visible()]
        await pilot.press("n")
        # search by a history title of the missed session
        missed = app.session(info["missed"])
        word = missed.history[0]
        await pilot.press("slash")
        app.screen.query_one("#search").value = word
        await pilot.press("enter")
        ids = [r.id for r in app.screen._visible()]
        assert info["missed"] in ids and len(ids) < 500
        await pilot.press("escape")
        assert table.row_count == 500
        # open the missed session from the filtered table
        await pilot.press("m")
        table.move_cursor(row=table.get_row_index(info["missed"]))
        await pilot.press("enter")
        await pilot.pause()
        from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

        assert isinstance(app.screen, SessionDetailScreen)
        a = plain(app.screen.query_one("#ranking-a"))
        b = plain(app.screen.query_one("#ranking-b"))
        cands = plain(app.screen.query_one("#candidates"))
        assert "★ " + missed.target in cands
        assert "miss" in a and "NDCG@10 0.000" in a
        assert "HIT at rank" in b and "← target" in b
        await pilot.press("escape")
        assert app.screen.__class__.__name__ == "SessionsScreen"


async def test_recommend_reflect_review_accept_flow(fixture_app, tmp_path):
    from re2llm_tui.tui.screens.hint_review import HintReviewScreen
    from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

    sessions = load_sessions(DATASET, "train")
    script = register_tui_script(sessions[:50])
    app, info = fixture_app(model=SCRIPTED_MODEL)
    sid = "train-0005"                              # a baseline miss without a reflection
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one("DataTable")
        table.move_cursor(row=table.get_row_index(sid))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SessionDetailScreen)
        await pilot.press("r")                      # recommend without a hint (worker)
        await settle(pilot)
        db = ws(tmp_path)
        runs_ = list(db.query("SELECT * FROM runs WHERE kind='recommend' AND hint_id IS NULL"))
        assert len(runs_) == 1 and script.calls >= 1
        assert any("not in the list" in n for n in notes(app))
        assert app.screen._base.run_id == runs_[0]["id"]   # the view reloaded
        # recommend with hint #3 through the picker dialog
        await pilot.press("h")
        await pilot.pause()
        await pilot.press("down", "down", "down", "enter")  # #0, #1, #2, #3
        await settle(pilot)
        hinted = list(db.query("SELECT * FROM runs WHERE kind='recommend' AND hint_id=3 AND model=?", [SCRIPTED_MODEL]))
        assert len(hinted) == 1
        # the picker's "#0 (no hint)" is the KB's entry 0: no hint sent (the plain prompt,
        # answered from the cache), stored as hint 0 with no text, as `recommend --hint-id 0`
        calls = script.calls
        await pilot.press("h")
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        zero = list(db.query("SELECT * FROM runs WHERE kind='recommend' AND hint_id=0"))
        assert len(zero) == 1 and zero[0]["hint_text"] is None and script.calls == calls
        assert any("(no hint)" in n for n in notes(app))
        # reflect (worker): the scripted LLM proposes one good hint and one leak
        await pilot.press("f")
        await settle(pilot)
        assert any("added as candidates" in n for n in notes(app)), notes(app)
        refl = list(db.query("SELECT * FROM reflections WHERE session_id=?", [sid]))
        assert len(refl) == 1 and refl[0]["status"] == "done"
        verdicts = [r["verdict"] for r in db.query(
            "SELECT verdict FROM reflection_hints WHERE reflection_id=?", [refl[0]["id"]])]
        assert "leak" in verdicts and "added" in verdicts
        await pilot.press("v")                      # the reflection screen shows it
        await pilot.pause()
        transcript = plain(app.screen.query_one("#transcript"))
        assert "possible mistakes" in transcript and GOOD_HINT in transcript
        # review: the new candidate is in the queue; accept it
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(app.screen, HintReviewScreen)
        new = [h for h in app.screen._queue if h.text == GOOD_HINT]
        assert len(new) == 1 and new[0].session_id == sid
        t = app.screen.query_one("DataTable")
        t.move_cursor(row=app.screen._queue.index(new[0]))
        await pilot.press("a")
        await settle(pilot)
        assert kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(new[0].id).status == "accepted"
        assert GOOD_HINT not in [h.text for h in app.screen._queue]
        # undo brings it back to the queue
        await pilot.press("u")
        await settle(pilot)
        assert kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(new[0].id).status == "candidate"
        assert GOOD_HINT in [h.text for h in app.screen._queue]


async def test_review_reject_edit_merge_undo(fixture_app, tmp_path, data_dir):
    from re2llm_tui.data.dataset import Dataset

    app, info = fixture_app()
    # hint #2 is the release's hint 2 (seeded from hints.json)
    kept_text = kb.normalize_text(Dataset.resolve(DATASET, data_dir).release_hints()[2])
    c1, c2 = info["candidate_ids"]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        screen = app.screen
        assert [h.id for h in screen._queue] == [c1, c2]
        db = ws(tmp_path)
        # reject the first
        await pilot.press("x")
        await settle(pilot)
        assert kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(c1).status == "rejected"
        assert [h.id for h in screen._queue] == [c2]
        # edit the second in the modal
        await pilot.press("e")
        await pilot.pause()
        area = app.screen.query_one("#text")
        area.text = "Prefer games for the console the user played last."
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(c2).text == "Prefer games for the console the user played last."
        # merge it into hint #2 (the dialog is prefilled with the most similar hint)
        assert kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(2).text == kept_text
        await pilot.press("m")
        await pilot.pause()
        keep = app.screen.query_one("#keep")
        keep.value = "2"
        await pilot.pause()
        # the text shown follows the id typed: the kept hint's, not the merged one's
        assert app.screen.query_one("#text").text == kept_text
        await pilot.press("ctrl+s")
        await settle(pilot)
        h = kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(c2)
        assert h.status == "archived" and h.merged_into == 2, notes(app)
        # the kept hint keeps its text; the merged hint keeps its edited text (archived)
        assert kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(2).text == kept_text
        assert h.text == "Prefer games for the console the user played last."
        assert screen._queue == []
        # three undos restore the exact previous state
        before = kb.KnowledgeBase(db, Dataset.resolve(DATASET)).history()
        for _ in range(3):
            await pilot.press("u")
            await settle(pilot)
        assert kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(c1).status == "candidate"
        h = kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(c2)
        assert h.status == "candidate" and h.text.startswith("Prefer games for the same console")
        assert len(kb.KnowledgeBase(db, Dataset.resolve(DATASET)).history()) == len(before) + 3


async def test_edit_racing_another_process_keeps_the_users_text(fixture_app, tmp_path):
    """A failed save is a notification and the editor comes back with what was typed."""
    from re2llm_tui.tui.widgets.dialogs import TextEditDialog

    app, info = fixture_app()
    c1, _ = info["candidate_ids"]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        # meanwhile another process (a CLI job) edits the same hint on the same file
        other = ws(tmp_path)
        kb.KnowledgeBase(other, Dataset.resolve(DATASET)).edit(c1, "Changed by someone else.")
        mine = "My careful rewording of the hint."
        app.screen.query_one("#text").text = mine
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert any("changed meanwhile" in n for n in notes(app)), notes(app)
        assert isinstance(app.screen, TextEditDialog)
        assert app.screen.query_one("#text").text == mine
        assert kb.KnowledgeBase(other, Dataset.resolve(DATASET)).get(c1).text == "Changed by someone else."


async def test_kb_add_search_delete_export_import(fixture_app, tmp_path):
    from re2llm_tui.tui.screens.knowledge_base import KnowledgeBaseScreen

    app, info = fixture_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, KnowledgeBaseScreen)
        n0 = len(screen._hints)
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#text").text = "Favour cooperative multiplayer games."
        await pilot.press("ctrl+s")
        await settle(pilot)
        db = ws(tmp_path)
        added = [h for h in kb.KnowledgeBase(db, Dataset.resolve(DATASET)).hints() if h.text.startswith("Favour coop")]
        assert len(added) == 1 and added[0].status == "accepted" and added[0].source == "manual"
        assert len(screen._hints) == n0 + 1
        # a duplicate is refused with a notification, the dialog keeps the text
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#text").text = "favour cooperative multiplayer games"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert any("already in the KB" in n for n in notes(app))
        assert app.screen.query_one("#text").text == "favour cooperative multiplayer games"
        await pilot.press("escape")
        # search
        await pilot.press("slash")
        app.screen.query_one("#kb-search").value = "cooperative"
        await pilot.press("enter")
        await pilot.pause()
        assert [h.id for h in screen._hints] == [added[0].id]
        # delete it, then undo
        await pilot.press("d")
        await settle(pilot)
        assert added[0].id not in [h.id for h in kb.KnowledgeBase(db, Dataset.resolve(DATASET)).hints()]
        await pilot.press("u")
        await settle(pilot)
        assert kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(added[0].id).text == added[0].text
        await pilot.press("escape")                 # clear the search
        assert len(screen._hints) == n0 + 1
        # export the accepted hints
        await pilot.press("o")
        await pilot.pause()
        app.screen.query_one("#path").value = str(tmp_path / "out.json")
        await pilot.press("enter")
        await settle(pilot)
        exported = json.loads((tmp_path / "out.json").read_text())
        assert exported[0] == "" and "Favour cooperative multiplayer games." in exported
        # importing the same file skips everything (duplicates)
        await pilot.press("i")
        await pilot.pause()
        app.screen.query_one("#path").value = str(tmp_path / "out.json")
        await pilot.press("enter")
        await settle(pilot)
        assert any("imported 0 hint(s), skipped" in n for n in notes(app)), notes(app)


async def test_palette_offers_actions_and_help_lists_keys(fixture_app):
    from re2llm_tui.tui.app import ActionsProvider
    from re2llm_tui.tui.screens.help import HelpScreen

    app, _ = fixture_app()
    async with app.run_test(size=SIZE) as pilot:
        titles = [t for t, _, _ in app.palette_actions(app.screen)]
        for want in ("Go to hint review", "Start training", "Run evaluation",
                     "Undo last KB change", "Sessions: toggle misses only"):
            assert want in titles
        assert any(t.startswith("Recommend train-") for t in titles)
        # the palette's provider finds an action by name and runs it
        provider = ActionsProvider(app.screen)
        hits = [h async for h in provider.search("knowledge base")]
        assert hits
        hits[0].command()
        await pilot.pause()
        assert app.current_mode == "kb"
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = plain(app.screen.query_one("#help-keys"))
        for key in ("Accept", "Merge", "Undo", "Start", "Evaluate", "Recommend"):
            assert key in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_worker_failure_is_a_notification(fixture_app, tmp_path):
    """An LLM that always fails: the recommend worker ends, the app stays up and says why."""
    from re2llm_tui.llm.scripted import register_scripted

    def broken(messages):
        raise ValueError("provider exploded")

    register_scripted("scripted", broken)
    app, info = fixture_app(model=SCRIPTED_MODEL)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await settle(pilot)
        assert app.is_running
        assert any("failed" in n.lower() for n in notes(app)), notes(app)


async def test_kb_shows_mean_reward_and_agent_use(fixture_app, tmp_path):
    """The KB's "agent use" and "reward" columns come from the reward table and the latest
    finished training run; switching back refreshes them only when that data changed."""
    from re2llm_tui.utilization.rewards import hint_key

    app, _ = fixture_app()
    app.show_demo_notice = False
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        table = app.screen.query_one("DataTable")
        assert str(table.get_cell("3", "use")) == "—" and str(table.get_cell("3", "reward")) == "—"
        # nothing changed: switching back does not repopulate the table
        table.update_cell("1", "use", "sentinel")
        await pilot.press("1", "3")
        await pilot.pause()
        assert str(table.get_cell("1", "use")) == "sentinel"
        # meanwhile another process stores rewards and finishes a training run
        db = ws(tmp_path)
        model = app.config.model
        h3 = kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(3).text
        for sid, without, with_ in (("train-0001", 0.2, 0.5), ("train-0002", 0.4, 0.4)):
            for text, ndcg in (("", without), (h3, with_)):
                db.execute("INSERT INTO reward_outcomes (dataset, model, context, session_id, "
                           "hint_key, ndcg) VALUES (?,?,?,?,?,?)",
                           [DATASET, model, "ctx|rank-by=reply", sid, hint_key(text), ndcg])
        cur = db.execute("INSERT INTO train_runs (dataset, model, kb_version, hint_ids, seed, "
                         "total_steps, step, status, summary) VALUES (?,?,?,?,?,?,?,?,?)",
                         [DATASET, model, "v", json.dumps([0, 3, 5]), 1, 64, 64, "done",
                          json.dumps({"greedy_hist": [1, 2, 1]})])
        db.conn.close()
        await pilot.press("1", "3")
        await pilot.pause()
        assert str(table.get_cell("3", "reward")) == "+0.150"
        assert str(table.get_cell("3", "use")) == "50%"
        assert str(table.get_cell("5", "use")) == "25%"
        assert str(table.get_cell("4", "use")) == "—"         # not an action of that run
        assert str(table.get_cell("1", "use")) == "—"         # the sentinel is gone
        table.move_cursor(row=table.get_row_index("3"))
        await pilot.pause()
        detail = plain(app.screen.query_one("#kb-detail"))
        assert "+0.150 NDCG@10 over 2 session(s)" in detail
        assert f"50% of training run #{cur.lastrowid}'s argmax choices" in detail


async def test_a_change_reaches_the_current_screen_now_and_hidden_ones_when_shown(
        fixture_app, tmp_path):
    """One message, :class:`WorkspaceChanged`, tells every screen: the current screen
    reloads at once, a hidden one when it is shown again (once, however many changes came
    meanwhile), and a screen ignores the kinds it does not show."""
    from re2llm_tui.tui.screens.knowledge_base import KnowledgeBaseScreen

    app, _ = fixture_app()
    app.show_demo_notice = False
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")                      # mount the KB screen, then leave it
        await pilot.pause()
        kb_screen = app.screen
        assert isinstance(kb_screen, KnowledgeBaseScreen)
        await pilot.press("1")
        await pilot.pause()
        sessions_screen = app.screen
        reloads = {"kb": 0, "sessions": 0}

        def counting(name, real):
            def reload():
                reloads[name] += 1
                real()
            return reload

        kb_screen.reload = counting("kb", kb_screen.reload)
        sessions_screen.reload = counting("sessions", sessions_screen.reload)
        # a hint added by "another process" (a worker's own connection)
        k = kb.KnowledgeBase(ws(tmp_path), Dataset.resolve(DATASET))
        added = k.add("Prefer games of the series the user plays most.", status="accepted")
        app.changed("kb")
        app.changed("runs")
        app.changed("evaluation")                  # neither screen shows it
        await pilot.pause()
        assert reloads == {"kb": 0, "sessions": 2}
        await pilot.press("3")
        await pilot.pause()
        assert reloads == {"kb": 1, "sessions": 2}  # the two changes: one reload
        assert added.id in [h.id for h in kb_screen._hints]
        await pilot.press("1")
        await pilot.pause()
        assert reloads["sessions"] == 2              # nothing new: no reload
