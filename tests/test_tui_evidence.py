"""The curation views in the app: KB badges (filter, why) -> hint detail (evidence,
histogram, sessions by gain) -> session detail (the hint's ranking beside the no-hint one),
and the reward table view (from the Training screen and from hint detail); snapshots.

The reward table is planted (fixed ranks written as ``reward_outcomes`` rows, as the reward
engine stores them) over the fixture workspace of tui_snapshot_app.py; no model is called.
"""

from __future__ import annotations

import json

import pytest
from test_tui_app import notes, plain, settle
from tui_snapshot_app import DATASET, SIZE_LARGE, SIZE_SMALL, fixture_ranking, make_fixture_app

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation.metrics import ndcg_at
from re2llm_tui.kb import store as kb
from re2llm_tui.store import train_runs
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.utilization.rewards import hint_key

MODEL = "local/smollm2-135m"          # the fixture app's model
CONTEXT = "release-v1+hint-v1|rank=local|k=10|t=0.0|seed=0|rank-by=reply"
SIZE = (120, 40)


def planted_rank(i: int, hid: int, base: int) -> int | None:
    """Hint 1 puts the target first on every fourth session and drops it elsewhere; hint 2
    is its twin; hint 3 does nothing; hint 4 always first; the others scatter it."""
    if hid in (1, 2):
        return 1 if i % 4 == 0 else None
    if hid == 3:
        return base
    if hid == 4:
        return 1
    r = (i * 7 + hid * 13) % 12 + 1
    return r if r <= 10 else None


def plant_rewards(path, data_dir, *, n_sessions: int = 40, model: str = MODEL,
                  hint_ids=range(1, 21), run: bool = True) -> dict:
    """Outcomes of ``n_sessions`` train sessions x (no hint + ``hint_ids``), and a finished
    training run whose agent routes each session to its best hint (hint 4)."""
    sessions = load_sessions(DATASET, "train", data_dir)[:n_sessions]
    db = open_workspace(path)
    texts = {h.id: h.text for h in kb.KnowledgeBase(db, Dataset.resolve(DATASET)).hints()}
    rows = []
    for i, s in enumerate(sessions):
        base = 3 + i % 5
        for hid, rank in [(0, base)] + [(h, planted_rank(i, h, base)) for h in hint_ids]:
            ranking = fixture_ranking(s, (rank - 1) if rank else 12)
            rows.append((DATASET, model, CONTEXT, s.id, hint_key(texts.get(hid, "")),
                         hid, rank, ndcg_at(rank, 10), json.dumps(ranking)))
    db.conn.executemany("INSERT INTO reward_outcomes (dataset, model, context, session_id, "
                        "hint_key, hint_id, target_rank, ndcg, ranking) VALUES "
                        "(?,?,?,?,?,?,?,?,?)", rows)
    info = {"sessions": [s.id for s in sessions]}
    if run:
        ids = [0, *hint_ids]
        choices = {s.id: 4 for s in sessions}
        rid = train_runs.create(db, dataset=DATASET, model=model, kb_version="v",
                                hint_ids=ids, seed=1, total_steps=64, config={},
                                n_sessions=len(sessions))
        train_runs.finish(db, rid, "done", 64, {
            "greedy_hist": [sum(1 for c in choices.values() if c == h) for h in ids],
            "greedy_choices": choices})
        info["run_id"] = rid
    db.conn.close()
    return info


@pytest.fixture
def evidence_app(tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))

    def _make(plant: bool = True, **kw):
        app, info = make_fixture_app(tmp_path, data_dir, **kw)
        app.show_demo_notice = False
        if plant:
            info.update(plant_rewards(tmp_path / "kb.sqlite", data_dir))
        return app, info

    return _make


async def open_hint(pilot, hint_id: int):
    await pilot.press("3")
    await pilot.pause()
    table = pilot.app.screen.query_one("#kb-table")
    table.move_cursor(row=table.get_row_index(str(hint_id)))
    await pilot.pause()
    await pilot.press("enter")
    await settle(pilot)


async def test_kb_badges_filter_and_say_why(evidence_app):
    app, _ = evidence_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        table = screen.query_one("#kb-table")
        badge = lambda hid: str(table.get_cell(str(hid), "badges"))  # noqa: E731
        assert badge(1) == "hurts unused"
        assert badge(2) == "hurts ≈#1 unused"
        assert badge(3) == "no effect unused"
        assert badge(4) == ""
        table.move_cursor(row=table.get_row_index("2"))
        await pilot.pause()
        detail = plain(screen.query_one("#kb-detail"))
        assert "acts like #1: its rewards correlate r = 1.00" in detail
        assert "entirely below 0" in detail
        # b cycles the filter: any badge, then hurts only, ...
        await pilot.press("b")
        await pilot.pause()
        assert table.row_count == len([h for h in screen._every if screen._badges.get(h.id)])
        await pilot.press("b")
        await pilot.pause()
        assert {str(table.get_row_at(i)[0]) for i in range(table.row_count)} == {"1", "2"}
        for _ in range(len(screen.BADGE_FILTERS) - 2):
            await pilot.press("b")
        await pilot.pause()
        assert screen.badge_filter is None and table.row_count == len(screen._every)


async def test_kb_to_hint_detail_to_session(evidence_app):
    app, info = evidence_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_hint(pilot, 1)
        from re2llm_tui.tui.screens.hint_detail import HintDetailScreen

        screen = app.screen
        assert isinstance(screen, HintDetailScreen) and screen.evidence is not None
        ev = screen.evidence
        n = len(info["sessions"])
        helped = [s for i, s in enumerate(info["sessions"]) if i % 4 == 0]
        assert ev.n == n and ev.helped == len(helped) and ev.hurt == n - len(helped)
        text = plain(screen.query_one("#hd-evidence"))
        assert f"helped {len(helped)} · hurt {n - len(helped)}" in text
        assert "hurts:" in text and "similar hints (MiniLM)" in text
        assert "#2 cos" in text and "reward r +1.00" in text
        hist = plain(screen.query_one("#hd-hist"))
        assert "rewards (NDCG@10 gain per session)" in hist
        # sessions by gain: the helped ones first
        table = screen.query_one("#hd-sessions")
        assert table.row_count == n
        first = [str(table.get_row_at(i)[0]) for i in range(len(helped))]
        assert sorted(first) == sorted(helped)
        # Enter on a session: its ranking under hint 1 beside the no-hint one
        table.move_cursor(row=0)
        await pilot.press("enter")
        await pilot.pause()
        from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

        detail = app.screen
        assert isinstance(detail, SessionDetailScreen) and detail.session_id == first[0]
        a = plain(detail.query_one("#ranking-a"))
        b = plain(detail.query_one("#ranking-b"))
        assert "reward table · no hint" in a and "HIT at rank" in a
        assert "reward table · hint #1" in b and "HIT at rank 1" in b
        # back, then the reward table sorted by this hint
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        from re2llm_tui.tui.screens.reward_table import RewardTableScreen

        rt = app.screen
        assert isinstance(rt, RewardTableScreen) and rt.sort_hint == 1
        t = rt.query_one("#rt-table")
        assert t.row_count == n and len(t.col_titles) == 21
        assert set(t.displayed_keys()[:len(helped)]) == set(helped)


async def test_reward_table_from_training_cursor_sort_and_open(evidence_app):
    app, info = evidence_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        rt = app.screen
        t = rt.query_one("#rt-table")
        sessions = info["sessions"]
        assert t.displayed_keys() == sorted(sessions)
        # the agent's choice marked in each row
        assert t.labels[t.order[0]][1] == "#4" and "◆" in t.cell_text(sessions[0], 4)
        assert "◆" not in t.cell_text(sessions[0], 1)
        status = plain(rt.query_one("#rt-status"))
        assert f"{len(sessions)} sessions × 21 actions" in status
        assert f"training run #{info['run_id']}'s choice" in status
        # the value on the cursor: column 0 is 'none', 1 is hint 1
        await pilot.press("right")
        await pilot.pause()
        cell = plain(rt.query_one("#rt-cell"))
        s0 = sorted(sessions)[0]
        i0 = sessions.index(s0)
        r = ndcg_at(1 if i0 % 4 == 0 else None, 10) - ndcg_at(3 + i0 % 5, 10)
        assert f"{s0} · #1" in cell and f"reward {r:+.3f}" in cell
        # s: sort by the hint under the cursor (largest first); again: smallest first
        await pilot.press("s")
        await pilot.pause()
        order = t.displayed_keys()
        helped = sorted(s for i, s in enumerate(sessions) if i % 4 == 0)
        assert set(order[:len(helped)]) == set(helped)
        await pilot.press("s")
        await pilot.pause()
        assert t.displayed_keys()[-1] in helped
        await pilot.press("i")
        await pilot.pause()
        assert t.displayed_keys() == sorted(sessions)
        # PageDown scrolls a screen; End goes to the last row
        await pilot.press("pagedown")
        await pilot.pause()
        assert t.cursor_row > 0 and t.row_offset > 0
        await pilot.press("end")
        await pilot.pause()
        assert t.cursor_row == t.row_count - 1
        assert sorted(sessions)[-1] in plain(rt.query_one("#rt-cell"))
        # Enter on a cell: the session with that hint's ranking
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.session_id == t.displayed_keys()[t.cursor_row]
        assert "reward table · hint #1" in plain(app.screen.query_one("#ranking-b"))


async def test_bad_input_is_a_notification(evidence_app, tmp_path):
    app, _ = evidence_app(plant=False)
    async with app.run_test(size=SIZE) as pilot:
        # no reward table for the app's model
        await pilot.press("4")
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        assert any("no reward table for dataset games with model" in n for n in notes(app))
        assert app.is_running
        await pilot.press("escape")
        await open_hint(pilot, 3)
        assert any("no reward table" in n for n in notes(app))
        await pilot.press("escape")
        await pilot.pause()
        # a hint that is gone (deleted by another process)
        from re2llm_tui.tui.screens.hint_detail import HintDetailScreen

        app.push_screen(HintDetailScreen(999))
        await settle(pilot)
        assert any("no hint #999" in n for n in notes(app)), notes(app)
        assert app.is_running


async def test_a_changed_text_says_its_evidence_is_empty(evidence_app, tmp_path):
    app, _ = evidence_app()
    db = open_workspace(tmp_path / "kb.sqlite")
    kb.KnowledgeBase(db, Dataset.resolve(DATASET)).edit(1, "An edited hint text.")
    db.conn.close()
    async with app.run_test(size=SIZE) as pilot:
        await open_hint(pilot, 1)
        assert any("text of #1 changed since its 40 outcome(s)" in n for n in notes(app))
        assert "until the reward table is computed again" in plain(
            app.screen.query_one("#hd-evidence"))
        assert app.screen.query_one("#hd-sessions").row_count == 0


async def test_hint_detail_and_badges_read_the_train_split(evidence_app, tmp_path, data_dir):
    """Test-split outcomes (an evaluation's) where hint 3 hurts every session: the KB badge
    and the hint detail stay on the train split, where hint 3 does nothing, and say how many
    outcomes they left out."""
    app, info = evidence_app()
    db = open_workspace(tmp_path / "kb.sqlite")
    text3 = kb.KnowledgeBase(db, Dataset.resolve(DATASET)).get(3).text
    test = load_sessions(DATASET, "test", data_dir)[:30]
    db.conn.executemany(
        "INSERT INTO reward_outcomes (dataset, model, context, session_id, hint_key, "
        "target_rank, ndcg) VALUES (?,?,?,?,?,?,?)",
        [(DATASET, MODEL, CONTEXT, s.id, hint_key(t), r, ndcg_at(r, 10))
         for s in test for t, r in (("", 1), (text3, None))])
    db.conn.close()
    n = len(info["sessions"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        screen = app.screen
        table = screen.query_one("#kb-table")
        assert str(table.get_cell("3", "badges")) == "no effect unused"    # not "hurts"
        assert str(table.get_cell("3", "reward")) == "+0.000"
        table.move_cursor(row=table.get_row_index("3"))
        await pilot.pause()
        detail = plain(screen.query_one("#kb-detail"))
        assert "mean reward (train split): +0.000 NDCG@10 over 40 session(s)" in detail
        assert "60 test-split outcome(s) on 30 session(s) left out (held out for " \
               "evaluation)" in detail.replace("\n", " ")
        await pilot.press("escape")
        await open_hint(pilot, 3)
        ev = app.screen.evidence
        assert ev.n == n and ev.mean == 0 and ev.left_out == 30
        text = plain(app.screen.query_one("#hd-evidence"))
        assert f"evidence: train split, {n * 21} outcomes on {n} sessions" in text
        assert "30 test-split reward(s) of this hint left out (held out for evaluation)" in \
            text.replace("\n", " ")
        assert text.count("left out") == 1
        assert app.screen.query_one("#hd-sessions").row_count == n
        assert not any(s.startswith("test-") for s in
                       (str(app.screen.query_one("#hd-sessions").get_row_at(i)[0])
                        for i in range(n)))


# --------------------------------------------------------------------------- snapshots

def _to_hint(hint_id: int):
    async def run_before(pilot):
        await pilot.pause()
        await open_hint(pilot, hint_id)
        await pilot.pause()
    return run_before


def _to_reward_table(pilot_keys=("right", "down")):
    async def run_before(pilot):
        await pilot.pause()
        await pilot.press("4")
        await pilot.pause()
        await pilot.press("t", *pilot_keys)
        await pilot.pause()
    return run_before


@pytest.mark.parametrize("size", [SIZE_SMALL, SIZE_LARGE], ids=["100x30", "200x50"])
def test_hint_detail_snapshot(evidence_app, snap_compare, size):
    app, _ = evidence_app()
    assert snap_compare(app, terminal_size=size, run_before=_to_hint(2))


@pytest.mark.parametrize("size", [SIZE_SMALL, SIZE_LARGE], ids=["100x30", "200x50"])
def test_reward_table_snapshot(evidence_app, snap_compare, size):
    app, _ = evidence_app()
    assert snap_compare(app, terminal_size=size, run_before=_to_reward_table())


@pytest.mark.parametrize("size", [SIZE_SMALL, SIZE_LARGE], ids=["100x30", "200x50"])
def test_kb_badges_snapshot(evidence_app, snap_compare, size):
    app, _ = evidence_app()

    async def run_before(pilot):
        await pilot.pause()
        await pilot.press("3", "down")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
