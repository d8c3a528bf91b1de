"""The Runs screen (key 6): the list, multi-select, compare (table, CI chart, config diff),
the drill-down to the sessions one run wins and on into session detail, training-curve
overlays; Pilot tests and snapshots at 100×30 and 200×50."""

from __future__ import annotations

import pytest
from tui_snapshot_app import DATASET, N_BASELINE, SIZE_LARGE, SIZE_SMALL, fixture_ranking, \
    make_fixture_app

from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation import metrics
from re2llm_tui.store import runs, train_runs
from re2llm_tui.store.workspace import open_workspace


def add_runs(path, data_dir) -> dict:
    """A second score run over the fixture baseline's 40 sessions (other rankings), and two
    training runs with reward curves."""
    db = open_workspace(path)
    sessions = load_sessions(DATASET, "train", data_dir)[:N_BASELINE]
    rerank = runs.create_run(db, name="fixture rerank", kind="score", dataset=DATASET,
                             split="train", model="fixture-2", prompt_version="release-v1")
    ranks = []
    for i, s in enumerate(sessions):
        ranking = fixture_ranking(s, i * 3 + 1)
        rank = metrics.rank_of(ranking, s.target_index)
        ranks.append(rank)
        runs.add_run_item(db, rerank, s.id, prompt=s.prompt, reply="...", ranking=ranking,
                          hallucinations=[], target_rank=rank)
    runs.finish_run(db, rerank, metrics.summarize(ranks, n_boot=10))
    trains = []
    for seed, slope in ((0, 0.001), (1, 0.002)):
        tid = train_runs.create(db, dataset=DATASET, model="fixture", kb_version="kb1",
                                hint_ids=[1, 2], seed=seed, total_steps=320,
                                config={"lr": 3e-4, "seed": seed}, n_sessions=40)
        for step in range(32, 352, 32):
            train_runs.store_scalars(db, tid, step, {"charts/reward_mean": slope * step})
        train_runs.finish(db, tid, "done", 320, {"llm_calls": 0})
        trains.append(tid)
    # fixed dates: the snapshots show them
    db.execute("UPDATE runs SET created_at='2025-01-0' || id || 'T10:00:00Z'")
    db.execute("UPDATE train_runs SET created_at='2025-02-0' || id || 'T10:00:00Z'")
    db.conn.close()
    return {"rerank": rerank, "rerank_ranks": ranks, "train": trains}


@pytest.fixture
def runs_app(tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))

    def _make():
        app, info = make_fixture_app(tmp_path, data_dir)
        app.show_demo_notice = False
        info.update(add_runs(tmp_path / "kb.sqlite", data_dir))
        base = {r["session_id"]: r["target_rank"] for r in
                runs.run_items(open_workspace(tmp_path / "kb.sqlite"), info["baseline_run"])}
        info["baseline_ranks"] = base
        return app, info

    return _make


def shown(widget, width: int = 200) -> str:
    """A Static's content as plain text (rendered at ``width`` like a terminal would)."""
    import io

    from rich.console import Console

    con = Console(width=width, file=io.StringIO(), record=True)
    con.print(widget.content)
    return con.export_text()


def _select(pilot, refs):
    """Move the cursor onto each run ``ref`` and select it with space."""
    async def go():
        from textual.widgets import DataTable

        table = pilot.app.screen.query_one(DataTable)
        for ref in refs:
            table.move_cursor(row=table.get_row_index(str(ref)))
            await pilot.press("space")
            await pilot.pause()
    return go()


async def test_list_select_compare_and_drill_down(runs_app):
    from textual.widgets import DataTable, Static

    from re2llm_tui.tui.screens.run_sessions import RunSessionsScreen
    from re2llm_tui.tui.screens.runs import RunsScreen
    from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

    app, info = runs_app()
    async with app.run_test(size=SIZE_LARGE) as pilot:
        await pilot.press("6")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one(DataTable)
        assert table.row_count == 3                     # the output runs of games
        base, rerank = info["baseline_run"], info["rerank"]
        await _select(pilot, [base, rerank])
        assert screen.selected == [str(base), str(rerank)]
        await pilot.press("c")
        await pilot.pause()
        cmp = screen.comparison
        assert cmp is not None and len(cmp.sessions) == N_BASELINE
        # the paired difference shown is the run's minus the baseline's, on shared sessions
        ranks_b = [info["baseline_ranks"][s] for s in cmp.sessions]
        order = {s.id: r for s, r in zip(load_sessions(DATASET, "train",
                                                       app.config.ds.folder.parent)[:N_BASELINE],
                                         info["rerank_ranks"])}
        ranks_r = [order[s] for s in cmp.sessions]
        diff = sum(metrics.ndcg_at(r, 10) for r in ranks_r) / len(ranks_r) - \
            sum(metrics.ndcg_at(r, 10) for r in ranks_b) / len(ranks_b)
        assert f"{diff:+.3f}" in shown(screen.query_one("#runs-compare-table", Static))
        chart = shown(screen.query_one("#runs-ci-chart", Static))
        assert f"run {base}" in chart and f"run {rerank}" in chart and "├" in chart
        diff_text = shown(screen.query_one("#runs-config-diff", Static))
        assert "model" in diff_text and "fixture-2" in diff_text
        wins = sum(metrics.ndcg_at(r, 10) > metrics.ndcg_at(b, 10)
                   for r, b in zip(ranks_r, ranks_b))
        losses = sum(metrics.ndcg_at(r, 10) < metrics.ndcg_at(b, 10)
                     for r, b in zip(ranks_r, ranks_b))
        assert f"better on {wins}, worse on {losses}" in diff_text
        # drill down: the sessions where the rerank beats the baseline
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, RunSessionsScreen)
        drill = app.screen.query_one(DataTable)
        assert drill.row_count == wins > 0
        first = drill.coordinate_to_cell_key(drill.cursor_coordinate).row_key.value
        assert order[first] is not None
        await pilot.press("s")                           # swapped: the baseline's wins
        await pilot.pause()
        assert app.screen.query_one(DataTable).row_count == losses
        await pilot.press("s", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SessionDetailScreen)
        assert app.screen.session_id == first
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)


async def test_metric_cycles_and_bad_selections_notify(runs_app):
    from textual.widgets import Static

    app, info = runs_app()
    async with app.run_test(size=SIZE_SMALL) as pilot:
        await pilot.press("6")
        await pilot.pause()
        screen = app.screen
        await pilot.press("c")                           # nothing selected
        await pilot.pause()
        assert screen.comparison is None
        assert any("select two or more runs" in n.message for n in app._notifications)
        # the hinted run shares one session with the baseline; the rerank too: still fine
        await _select(pilot, [info["baseline_run"], info["rerank"]])
        await pilot.press("c", "m")
        await pilot.pause()
        assert screen.metric == "mrr@10"                 # after ndcg@10
        assert screen.comparison.metric == "mrr@10"
        assert "MRR@10 with 95% bootstrap CIs" in shown(screen.query_one("#runs-ci-chart",
                                                                         Static))


async def test_runs_of_no_shared_session_notify_not_crash(runs_app, data_dir):
    app, info = runs_app()
    db = open_workspace(app.config.db_path)
    test_s = load_sessions(DATASET, "test", data_dir)[0]
    other = runs.create_run(db, name="test split run", kind="score", dataset=DATASET,
                            split="test", model="fixture")
    runs.add_run_item(db, other, test_s.id, ranking=[0], target_rank=None)
    runs.finish_run(db, other, metrics.summarize([None], n_boot=10))
    db.conn.close()
    async with app.run_test(size=SIZE_SMALL) as pilot:
        await pilot.press("6")
        await pilot.pause()
        await _select(pilot, [info["baseline_run"], other])
        await pilot.press("c")
        await pilot.pause()
        assert app.screen.comparison is None
        assert any("share no scored session" in n.message for n in app._notifications)


async def test_training_runs_overlay(runs_app):
    from textual.widgets import DataTable

    app, info = runs_app()
    async with app.run_test(size=SIZE_LARGE) as pilot:
        await pilot.press("6", "k")
        await pilot.pause()
        screen = app.screen
        table = screen.query_one(DataTable)
        assert table.row_count == 2
        assert screen.query_one("#runs-curves").display
        await _select(pilot, [f"t{t}" for t in info["train"]])
        await pilot.press("c")
        await pilot.pause()
        curves = screen.curves
        assert set(curves["series"]) == {f"t{t}" for t in info["train"]}
        assert curves["steps"][-1] == 320
        t0, t1 = (curves["series"][f"t{t}"] for t in info["train"])
        assert t1[-1] == pytest.approx(2 * t0[-1])
        # the list shows final and best reward
        row = table.get_row(f"t{info['train'][1]}")
        assert "0.640" in [str(c) for c in row]


def _to_runs_compare(info):
    async def run_before(pilot):
        await pilot.press("6")
        await pilot.pause()
        await _select(pilot, [info["baseline_run"], info["rerank"]])
        await pilot.press("c")
        await pilot.pause()
    return run_before


def test_runs_screen_compare_small(runs_app, snap_compare):
    app, info = runs_app()
    assert snap_compare(app, terminal_size=SIZE_SMALL, run_before=_to_runs_compare(info))


def test_runs_screen_compare_large(runs_app, snap_compare):
    app, info = runs_app()
    assert snap_compare(app, terminal_size=SIZE_LARGE, run_before=_to_runs_compare(info))


async def test_every_screen_shows_q_quit_in_the_footer_at_100_columns(runs_app):
    """The footer's keys fit at 100×30 up to q Quit on every screen (long labels pushed it
    off the Sessions and KB screens)."""
    from textual.widgets._footer import FooterKey

    app, info = runs_app()
    async with app.run_test(size=SIZE_SMALL) as pilot:
        for key in ("1", "2", "3", "4", "5", "6"):
            await pilot.press(key)
            await pilot.pause()
            keys = list(app.screen.query(FooterKey))
            quits = [k for k in keys if k.key == "q"]
            palette = [k for k in keys if k.has_class("-command-palette")]
            assert quits and palette, key
            region = quits[0].region
            # wholly on screen, left of the docked "^p palette" key
            assert region.width >= len("q Quit") and region.right <= palette[0].region.x, \
                (key, region, palette[0].region)


async def test_export_writes_the_comparison_beside_the_workspace(runs_app, tmp_path):
    import csv

    app, info = runs_app()
    async with app.run_test(size=SIZE_SMALL) as pilot:
        await pilot.press("6", "x")                      # nothing selected: a warning
        await pilot.pause()
        assert not (tmp_path / "exports").exists()
        base, rerank = info["baseline_run"], info["rerank"]
        await _select(pilot, [base, rerank])
        await pilot.press("c", "x")
        await pilot.pause()
        stem = f"compare-{base}-{rerank}"
        for ext in ("csv", "md", "tex"):
            assert (tmp_path / "exports" / f"{stem}.{ext}").is_file(), ext
        rows = list(csv.DictReader(open(tmp_path / "exports" / f"{stem}.csv")))
        assert [r["run"] for r in rows] == [str(base), str(rerank)]
        cmp = app.screen.comparison
        diff = cmp.paired[cmp.labels[str(rerank)]]["diff"]
        assert float(rows[1]["diff_ndcg@10"]) == pytest.approx(diff, abs=1e-6)
        assert f"{diff:+.3f}" in (tmp_path / "exports" / f"{stem}.md").read_text()
        assert r"\begin{tabular}" in (tmp_path / "exports" / f"{stem}.tex").read_text()
        assert any("wrote" in n.message for n in app._notifications)
