"""`runs list|show|compare|export|rm|curves|export-scalars` over runs made with the real CLI."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import only_error_line
from replies import ranked_reply

from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation.scoring import format_output_file

MISMATCHED = (3, 7)   # sessions whose label is wrong in run B: not scored there


def _ranks_a(i: int):
    return None if i % 3 == 0 else (i % 10) + 1


def _ranks_b(i: int):
    return None if i % 4 == 0 else (i % 7) + 1


def _score(run_cli, data_dir, path, workspace, sessions, rank_of, *args, dataset="games",
           split="test", bad_labels=()):
    blocks = [("Some Other Game" if i in bad_labels else s.target, ranked_reply(s, rank_of(i)))
              for i, s in enumerate(sessions)]
    path.write_text(format_output_file(blocks))
    code, out, err = run_cli("score", path, "-d", dataset, "-s", split, "--db", workspace,
                             "--data-dir", data_dir, "--json", *args)
    assert code == 0, err
    return json.loads(out)["run_id"]


@pytest.fixture
def two_runs(data_dir, tmp_path, workspace, run_cli):
    """Two `score` imports of games/test: A (all 100 sessions), B (a model, 2 labels wrong)."""
    sessions = load_sessions("games", "test", data_dir)
    a = _score(run_cli, data_dir, tmp_path / "a.txt", workspace, sessions, _ranks_a)
    b = _score(run_cli, data_dir, tmp_path / "b.txt", workspace, sessions, _ranks_b,
               "--model", "gpt[bold]x", "--name", "B [/] & 50%_run",
               bad_labels=MISMATCHED)
    return sessions, a, b


def _ndcg10(rank):
    return 1 / math.log2(rank + 1) if rank is not None and rank <= 10 else 0.0


# --------------------------------------------------------------------------- compare


def test_compare_paired_difference_matches_a_hand_computed_bootstrap(two_runs, workspace,
                                                                      run_cli):
    sessions, a, b = two_runs
    code, out, err = run_cli("runs", "compare", a, b, "--db", workspace, "--json")
    assert code == 0, err
    got = json.loads(out)
    # by hand: the sessions both scored, in session-id order; B minus A per session
    shared = sorted(s.id for i, s in enumerate(sessions) if i not in MISMATCHED)
    index = {s.id: i for i, s in enumerate(sessions)}
    d = np.array([_ndcg10(_ranks_b(index[sid])) - _ndcg10(_ranks_a(index[sid]))
                  for sid in shared])
    n = len(d)
    # a plain percentile bootstrap of the mean difference: 1000 resamples, seed 0
    idx = np.random.default_rng(0).integers(0, n, size=(1000, n))
    means = d[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    assert got["n_shared"] == n == 98 and got["baseline"] == str(a)
    pb = got["runs"][1]["paired"]
    assert pb["n"] == n
    assert pb["diff"] == pytest.approx(d.mean(), abs=1e-6)
    assert pb["lo"] == pytest.approx(lo, abs=1e-6) and pb["hi"] == pytest.approx(hi, abs=1e-6)
    assert pb["lo"] < pb["diff"] < pb["hi"]
    assert got["runs"][0]["paired"] is None
    # the dropped sessions: A scored the two that B did not
    assert [r["dropped"] for r in got["runs"]] == [2, 0]
    # each run's metrics are over the shared sessions
    assert got["runs"][0]["metrics"]["n"] == 98
    assert got["runs"][0]["metrics"]["ndcg@10"] == pytest.approx(
        np.mean([_ndcg10(_ranks_a(index[s])) for s in shared]), abs=1e-6)
    wins = got["runs"][1]["wins"]
    assert wins["wins"] == int((d > 0).sum()) and wins["losses"] == int((d < 0).sum())
    assert wins["ties"] == int((d == 0).sum())
    # the table output says the same, with the dropped counts
    code, out, err = run_cli("runs", "compare", a, b, "--db", workspace)
    assert code == 0, err
    text = " ".join(out.split())
    assert f"ΔNDCG@10 {d.mean():+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}]" in text
    assert "98 sessions all runs scored" in text and f"run {a}: 2, run {b}: 0" in text


def test_compare_other_metric_seed_and_resamples(two_runs, workspace, run_cli):
    sessions, a, b = two_runs
    code, out, err = run_cli("runs", "compare", b, a, "--metric", "HR@10", "--seed", "3",
                             "--resamples", "200", "--db", workspace, "--json")
    assert code == 0, err
    got = json.loads(out)
    index = {s.id: i for i, s in enumerate(sessions)}
    shared = sorted(s.id for i, s in enumerate(sessions) if i not in MISMATCHED)

    def hit(r):
        return 1.0 if r is not None and r <= 10 else 0.0

    d = np.array([hit(_ranks_a(index[s])) - hit(_ranks_b(index[s])) for s in shared])
    means = d[np.random.default_rng(3).integers(0, len(d), size=(200, len(d)))].mean(axis=1)
    p = got["runs"][1]["paired"]
    assert got["metric"] == "hr@10" and got["baseline"] == str(b)
    assert p["diff"] == pytest.approx(d.mean(), abs=1e-6)
    assert [p["lo"], p["hi"]] == pytest.approx(np.percentile(means, [2.5, 97.5]), abs=1e-6)


def test_drill_down_lists_the_sessions_where_one_run_beats_the_other(two_runs, workspace):
    from re2llm_tui.evaluation.run_compare import compare_runs
    from re2llm_tui.store.workspace import open_workspace

    sessions, a, b = two_runs
    cmp = compare_runs(open_workspace(workspace), [a, b])
    index = {s.id: i for i, s in enumerate(sessions)}
    better = cmp.sessions_where(str(b), str(a))
    expected = {sid for sid in cmp.sessions
                if _ndcg10(_ranks_b(index[sid])) > _ndcg10(_ranks_a(index[sid]))}
    assert {r["session_id"] for r in better} == expected and expected
    gains = [r["gain"] for r in better]
    assert gains == sorted(gains, reverse=True)
    top = better[0]
    assert top["rank_better"] == _ranks_b(index[top["session_id"]])
    per = cmp.per_session()
    assert len(per) == 98 and set(per[0]["ranks"]) == {str(a), str(b)}


def test_config_diff_shows_only_the_fields_that_differ(two_runs, workspace, run_cli):
    _, a, b = two_runs
    code, out, err = run_cli("runs", "compare", a, b, "--db", workspace, "--json")
    diff = json.loads(out)["config_diff"]
    assert diff["model"] == [None, "gpt[bold]x"]
    assert diff["params.mismatches"] == [0, 2]
    assert "params.file" in diff
    for same in ("kind", "dataset", "split", "prompt_version", "params.rank_by",
                 "params.encoding"):
        assert same not in diff
    code, out, err = run_cli("runs", "compare", a, b, "--db", workspace)
    assert code == 0, err
    assert "fields that differ" in out and "gpt[bold]x" in out   # shown verbatim, not markup
    section = out.split("fields that differ")[1]
    assert "params.rank_by" not in section and "split" not in section


def test_compare_of_a_run_with_itself_config_identical(data_dir, tmp_path, workspace,
                                                       run_cli):
    sessions = load_sessions("games", "test", data_dir)
    a = _score(run_cli, data_dir, tmp_path / "x.txt", workspace, sessions, _ranks_a)
    b = _score(run_cli, data_dir, tmp_path / "x.txt", workspace, sessions, _ranks_a)
    code, out, err = run_cli("runs", "compare", a, b, "--db", workspace, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["config_diff"] == {}
    p = got["runs"][1]["paired"]
    assert p["diff"] == 0 and p["lo"] == 0 and p["hi"] == 0 and p["p"] == 1.0
    code, out, err = run_cli("runs", "compare", a, b, "--db", workspace)
    assert "no field differs" in out


# --------------------------------------------------------------------------- list / show


def test_list_with_filters_and_json(two_runs, workspace, run_cli):
    _, a, b = two_runs
    code, out, err = run_cli("runs", "list", "--db", workspace, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert [r["ref"] for r in got] == [str(a), str(b)]
    rb = got[1]
    assert rb["kind"] == "score" and rb["dataset"] == "games" and rb["split"] == "test"
    assert rb["model"] == "gpt[bold]x" and rb["n"] == 98 and rb["status"] == "done"
    assert rb["prompt_version"] and rb["cost"] == 0 and rb["failed"] == 0
    assert rb["label_mismatches"] == 2 and rb["created_at"]
    lo, hi = rb["metrics"]["ci"]["ndcg@10"]
    assert lo <= rb["metrics"]["ndcg@10"] <= hi
    for args, n in ((("--kind", "score"), 2), (("--kind", "recommend"), 0),
                    (("--dataset", "movies"), 0), (("--dataset", "game"), 2),
                    (("--kind", "train"), 0)):
        code, out, err = run_cli("runs", "list", "--db", workspace, "--json", *args)
        assert code == 0, err
        assert len(json.loads(out)) == n, args
    code, out, err = run_cli("runs", "list", "--db", workspace, env={"COLUMNS": "200"})
    assert code == 0, err
    assert "B [/] & 50%_run" in out and "gpt[bold]x" in out and "score:a.txt" in out
    assert "not shown" not in out and "release-v1" in out
    # at 80 columns (a file, a CI log) the minor columns are left out, and say so
    code, out, err = run_cli("runs", "list", "--db", workspace, env={"COLUMNS": "80"})
    assert code == 0, err
    assert max(len(ln) for ln in out.splitlines()) <= 80
    assert "not shown at this width: model" in out and "NDCG@10" in out
    code, out, err = run_cli("runs", "list", "--db", workspace, "--kind", "recommend")
    assert code == 0 and "no runs matching" in out


def test_show_config_metrics_and_session_counts(two_runs, workspace, run_cli):
    _, a, b = two_runs
    code, out, err = run_cli("runs", "show", b, "--db", workspace, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["sessions"] == {"sessions": 100, "scored": 98, "failed": 0,
                               "label_mismatches": 2, "top1": got["sessions"]["top1"],
                               "top10": got["sessions"]["top10"],
                               "unranked": got["sessions"]["unranked"]}
    scored = [i for i in range(100) if i not in MISMATCHED]
    assert got["sessions"]["top1"] == sum(_ranks_b(i) == 1 for i in scored)
    assert got["sessions"]["unranked"] == sum(_ranks_b(i) is None for i in scored)
    assert got["sessions"]["top10"] == 98 - got["sessions"]["unranked"]
    assert got["params"]["rank_by"] == "reply" and got["metrics"]["n"] == 98
    code, out, err = run_cli("runs", "show", b, "--db", workspace)
    assert code == 0, err
    assert "params.rank_by" in out and "98 scored" in out and "2 label mismatches" in out
    assert "NDCG@10" in out and "B [/] & 50%_run" in " ".join(out.split())


# --------------------------------------------------------------------------- export


def test_export_csv_markdown_latex(two_runs, workspace, run_cli, tmp_path):
    _, a, b = two_runs
    code, out, err = run_cli("runs", "export", a, b, "--db", workspace, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    code, js, _ = run_cli("runs", "list", "--db", workspace, "--json")
    stored = {r["ref"]: r["metrics"] for r in json.loads(js)}
    assert [r["run"] for r in rows] == [str(a), str(b)]
    for r in rows:
        m = stored[r["run"]]
        assert float(r["ndcg@10"]) == pytest.approx(m["ndcg@10"], abs=1e-6)
        assert [float(r["ndcg@10_lo"]), float(r["ndcg@10_hi"])] == pytest.approx(
            m["ci"]["ndcg@10"], abs=1e-6)
        assert int(r["n"]) == m["n"]
    assert rows[1]["name"] == "B [/] & 50%_run" and rows[1]["model"] == "gpt[bold]x"

    code, out, err = run_cli("runs", "export", a, b, "--db", workspace, "-f", "md")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4 and all(ln.startswith("|") and ln.endswith("|") for ln in lines)
    assert set(lines[1].replace("|", "").replace(":", "")) == {"-"}
    ncols = lines[0].count(" | ")
    assert all(ln.replace("\\|", "").count(" | ") == ncols for ln in lines[2:])
    assert "NDCG@10" in lines[0]

    f = tmp_path / "t.tex"
    code, out, err = run_cli("runs", "export", a, b, "--db", workspace, "-f", "latex",
                             "-o", f, "--paired")
    assert code == 0, err
    assert out == "" and "wrote" in err
    tex = f.read_text()
    assert tex.count(r"\begin{tabular}") == 1 and r"\end{tabular}" in tex
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\")]
    assert len(body) == 3   # header + two runs
    assert r"B [/] \& 50\%\_run" in tex and r"$\Delta$NDCG@10" in tex
    cols = tex.split(r"\begin{tabular}{")[1].split("}")[0]
    assert all(ln.replace(r"\&", "").count(" & ") == len(cols) - 1 for ln in body)


def test_export_paired_csv_matches_compare(two_runs, workspace, run_cli):
    _, a, b = two_runs
    code, out, err = run_cli("runs", "export", a, b, "--paired", "--db", workspace)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    code, js, _ = run_cli("runs", "compare", a, b, "--db", workspace, "--json")
    p = json.loads(js)["runs"][1]["paired"]
    assert rows[0]["diff_ndcg@10"] == "" and rows[0]["dropped"] == "2"
    assert float(rows[1]["diff_ndcg@10"]) == pytest.approx(p["diff"], abs=1e-6)
    assert float(rows[1]["diff_ndcg@10_lo"]) == pytest.approx(p["lo"], abs=1e-6)
    assert int(rows[0]["n"]) == int(rows[1]["n"]) == 98


# --------------------------------------------------------------------------- rm


def test_rm_asks_then_deletes_runs_and_items(two_runs, workspace, run_cli, monkeypatch):
    from conftest import count_rows

    _, a, b = two_runs
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, out, err = run_cli("runs", "rm", a, "--db", workspace)
    assert code == 1 and count_rows(workspace, "runs") == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, out, err = run_cli("runs", "rm", a, "--db", workspace)
    assert code == 0, err
    assert count_rows(workspace, "runs") == 1 and count_rows(workspace, "run_items") == 100
    code, out, err = run_cli("runs", "rm", b, "--yes", "--db", workspace, "--json")
    assert code == 0 and json.loads(out) == {"deleted": [str(b)]}
    assert count_rows(workspace, "runs") == 0 and count_rows(workspace, "run_items") == 0


def test_rm_refuses_a_running_run_in_one_line(two_runs, workspace, run_cli):
    from conftest import count_rows

    from re2llm_tui.store import runs
    from re2llm_tui.store.workspace import open_workspace

    _, a, _b = two_runs
    db = open_workspace(workspace)
    rid = runs.create_run(db, name="in flight", kind="recommend", dataset="games",
                          split="test", model="m")          # status 'running'
    code, out, err = run_cli("runs", "rm", a, rid, "--yes", "--db", workspace)
    only_error_line(code, err, f"run {rid} is running in process {os.getpid()}")
    assert count_rows(workspace, "runs") == 3                # nothing deleted, not even a
    # its process (this one) is alive: --force does not delete it either
    code, out, err = run_cli("runs", "rm", rid, "--yes", "--force", "--db", workspace)
    only_error_line(code, err, f"run {rid} is running in process {os.getpid()}")
    # its process gone (a finished child's pid): --force is needed, and deletes it
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    db.execute("UPDATE runs SET pid=? WHERE id=?", [gone.pid, rid])
    code, out, err = run_cli("runs", "rm", rid, "--yes", "--db", workspace)
    only_error_line(code, err, f"run {rid} is marked running but its process {gone.pid} is gone")
    code, out, err = run_cli("runs", "rm", rid, "--yes", "--force", "--db", workspace)
    assert code == 0, err
    assert count_rows(workspace, "runs") == 2


# --------------------------------------------------------------------------- training runs


def _train_run(db, seed, points, *, pid=None, status="done"):
    from re2llm_tui.store import train_runs

    tid = train_runs.create(db, dataset="games", model="m", kb_version="kb-1",
                            hint_ids=[0, 1, 2], seed=seed, total_steps=points[-1][0],
                            config={"lr": 3e-4, "seed": seed}, n_sessions=40)
    for step, reward in points:
        train_runs.store_scalars(db, tid, step, {"charts/reward_mean": reward,
                                                 "losses/policy": -reward / 2,
                                                 "charts/action_hist": [1, 2, step // 100]})
    if status == "done":
        train_runs.finish(db, tid, "done", points[-1][0], {"cost": 0.25, "failed": 1,
                                                           "llm_calls": 30})
    if pid is not None:
        db.execute("UPDATE train_runs SET pid=? WHERE id=?", [pid, tid])
    return tid


@pytest.fixture
def train_pair(workspace):
    from re2llm_tui.store.workspace import open_workspace

    db = open_workspace(workspace)
    t1 = _train_run(db, 1, [(100, 0.01), (200, 0.06), (300, 0.04)])
    t2 = _train_run(db, 2, [(150, 0.02), (300, 0.05)])
    return t1, t2


def test_training_runs_list_final_best_seed_steps(train_pair, workspace, run_cli):
    t1, t2 = train_pair
    code, out, err = run_cli("runs", "list", "--kind", "train", "--db", workspace, "--json")
    assert code == 0, err
    got = {r["ref"]: r for r in json.loads(out)}
    r1 = got[f"t{t1}"]
    assert r1["final_reward"] == pytest.approx(0.04) and r1["best_reward"] == pytest.approx(0.06)
    assert r1["best_step"] == 200 and r1["seed"] == 1 and r1["step"] == r1["total_steps"] == 300
    assert r1["cost"] == 0.25 and r1["kb_version"] == "kb-1" and r1["status"] == "done"
    assert got[f"t{t2}"]["best_reward"] == pytest.approx(0.05)
    code, out, err = run_cli("runs", "list", "--db", workspace)
    assert code == 0 and "training runs" in out and "+0.0600 (200)" in out
    assert "seed" in out and "300/300" in out
    code, out, err = run_cli("runs", "show", f"t{t1}", "--db", workspace, "--json")
    assert code == 0, err
    assert json.loads(out)["scalars"]["charts/reward_mean"] == 3


def test_curves_are_aligned_by_step(train_pair, workspace, run_cli):
    t1, t2 = train_pair
    code, out, err = run_cli("runs", "curves", f"t{t1}", f"t{t2}", "--db", workspace, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["steps"] == [100, 150, 200, 300]
    s1, s2 = got["series"][f"t{t1}"], got["series"][f"t{t2}"]
    assert s1[1] is None and s1[0] == pytest.approx(0.01) and s1[3] == pytest.approx(0.04)
    assert s2[0] is None and s2[2] is None and s2[1] == pytest.approx(0.02)
    assert s2[3] == pytest.approx(0.05) and got["tag"] == "charts/reward_mean"
    code, out, err = run_cli("runs", "curves", f"t{t1}", f"t{t2}", "--tag", "losses/policy",
                             "--db", workspace)
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["step", f"t{t1}", f"t{t2}"] and rows[4] == ["300", "-0.02", "-0.025"]


def test_export_scalars_csv(train_pair, workspace, run_cli, tmp_path):
    t1, _ = train_pair
    out_file = tmp_path / "s.csv"
    code, out, err = run_cli("runs", "export-scalars", t1, "--db", workspace, "-o", out_file)
    assert code == 0, err
    rows = list(csv.DictReader(out_file.open()))
    assert [int(r["step"]) for r in rows] == [100, 200, 300]
    assert [float(r["charts/reward_mean"]) for r in rows] == pytest.approx([0.01, 0.06, 0.04])
    assert "charts/action_hist" not in rows[0]      # histograms are not CSV columns


def test_export_scalars_tensorboard_writes_readable_event_files(train_pair, workspace,
                                                                run_cli, tmp_path):
    pytest.importorskip("tensorboard", reason="the optional tensorboard extra is not "
                                              "installed (pip install 're2llm-tui[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t1, _ = train_pair
    logdir = tmp_path / "tb"
    code, out, err = run_cli("runs", "export-scalars", f"t{t1}", "--format", "tensorboard",
                             "-o", logdir, "--db", workspace)
    assert code == 0, err
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    events = acc.Scalars("charts/reward_mean")
    assert [e.step for e in events] == [100, 200, 300]
    assert [e.value for e in events] == pytest.approx([0.01, 0.06, 0.04])
    assert "charts/action_hist" in acc.Tags()["histograms"]


def test_tensorboard_missing_is_one_line_with_the_install_hint(train_pair, workspace, run_cli,
                                                               monkeypatch, tmp_path):
    t1, _ = train_pair
    monkeypatch.setitem(sys.modules, "tensorboard", None)     # as if not installed
    code, out, err = run_cli("runs", "export-scalars", f"t{t1}", "--format", "tensorboard",
                             "-o", tmp_path / "tb", "--db", workspace)
    only_error_line(code, err, "pip install 're2llm-tui[tensorboard]'")
    assert not (tmp_path / "tb").exists()


def test_rm_training_run_refused_while_its_process_lives(workspace, run_cli):
    from conftest import count_rows

    from re2llm_tui.store.workspace import open_workspace

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        db = open_workspace(workspace)
        live = _train_run(db, 3, [(100, 0.1)], pid=proc.pid, status="running")
        code, out, err = run_cli("runs", "rm", f"t{live}", "--yes", "--db", workspace)
        only_error_line(code, err, f"training run t{live} is running")
        assert count_rows(workspace, "train_runs") == 1
    finally:
        proc.kill()
        proc.wait()
    code, out, err = run_cli("runs", "rm", f"t{live}", "--yes", "--db", workspace)
    only_error_line(code, err, f"training run t{live} is marked running but its process")
    code, out, err = run_cli("runs", "rm", f"t{live}", "--yes", "--force", "--db", workspace)
    assert code == 0, err
    assert count_rows(workspace, "train_runs") == 0 and count_rows(workspace, "train_scalars") == 0


# --------------------------------------------------------------------------- bad input


def test_runs_on_different_datasets_or_splits_are_refused(data_dir, tmp_path, workspace,
                                                          run_cli):
    games = load_sessions("games", "test", data_dir)
    movies = load_sessions("movies", "test", data_dir)
    g = _score(run_cli, data_dir, tmp_path / "g.txt", workspace, games, _ranks_a)
    m = _score(run_cli, data_dir, tmp_path / "m.txt", workspace, movies, _ranks_a,
               dataset="movies")
    code, out, err = run_cli("runs", "compare", g, m, "--db", workspace)
    only_error_line(code, err, "different datasets", "share no sessions")
    train = load_sessions("games", "train", data_dir)
    t = _score(run_cli, data_dir, tmp_path / "t.txt", workspace, train, _ranks_a,
               split="train")
    code, out, err = run_cli("runs", "compare", g, t, "--db", workspace, "--json")
    only_error_line(code, err, "share no scored session")
    code, out, err = run_cli("runs", "export", g, m, "--paired", "--db", workspace)
    only_error_line(code, err, "different datasets")


@pytest.mark.parametrize("args,needle", [
    (("compare", "1", "99"), "no run with id 99"),
    (("compare", "1"), "at least two runs"),
    (("compare", "1", "1"), "named twice"),
    (("compare", "1", "abc"), "not a run id"),
    (("compare", "1", "2", "--metric", "auc"), "unknown metric"),
    (("compare", "1", "2", "--resamples", "0"), "--resamples must be >= 1"),
    (("show", "42"), "no run with id 42"),
    (("show", "t9"), "no training run with id t9"),
    (("export", "1", "--format", "xlsx"), "unknown format 'xlsx'"),
    (("export", "7"), "no run with id 7"),
    (("rm", "5", "--yes"), "no run with id 5"),
    (("list", "--kind", "bogus"), "unknown run kind 'bogus'"),
    (("export-scalars", "1", "--format", "parquet"), "unknown format 'parquet'"),
    (("export-scalars", "4"), "no training run with id t4"),
    (("curves", "1"), "not a training run"),
    (("export", "1", "-o", "/nonexistent-dir/x.csv"), "cannot write"),
    (("export", "1", "2", "--paired", "--metric", "ndcg@3"), "unknown metric"),
])
def test_bad_input_is_one_line_and_exit_2(two_runs, workspace, run_cli, args, needle):
    code, out, err = run_cli("runs", *args, "--db", workspace)
    only_error_line(code, err, needle)


def test_training_runs_in_compare_or_export_are_refused(two_runs, train_pair, workspace,
                                                        run_cli):
    _, a, _b = two_runs
    t1, _ = train_pair
    code, out, err = run_cli("runs", "compare", a, f"t{t1}", "--db", workspace)
    only_error_line(code, err, "is a training run")
    code, out, err = run_cli("runs", "export", f"t{t1}", "--db", workspace)
    only_error_line(code, err, "export-scalars")


def test_missing_workspace_is_one_line(tmp_path, run_cli):
    code, out, err = run_cli("runs", "list", "--db", tmp_path / "none.sqlite")
    only_error_line(code, err, "workspace not found")
    assert not (tmp_path / "none.sqlite").exists()


def test_core_imports_no_ui():
    code = ("import sys; import re2llm_tui.store.catalog, re2llm_tui.evaluation.run_compare, "
            "re2llm_tui.evaluation.run_export; "
            "assert 'textual' not in sys.modules and 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --------------------------------------------------------------------------- a paid run


def test_recommend_run_failed_calls_cost_and_shared_sessions(data_dir, tmp_path, workspace,
                                                             run_cli):
    """A recommend run through the real client (a scripted provider that charges $0.01 a
    call, one session's call failing): its failed calls and cost come from the call log,
    and a comparison with a full score import keeps only the sessions both scored."""
    from replies import ranked_reply as reply_for

    from re2llm_tui.evaluation.recommend import recommend
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.llm.scripted import register_scripted

    sessions = load_sessions("games", "test", data_dir)
    few = sessions[:4]

    def reply(messages):
        content = messages[-1]["content"]
        if content.startswith(few[2].prompt.rstrip()):
            raise RuntimeError("provider down")
        for i, s in enumerate(few):
            if content.startswith(s.prompt.rstrip()):
                return reply_for(s, i + 1)
        return "no idea"

    register_scripted("scripted", reply, cost_per_call=0.01)
    with LLMClient(workspace, model="scripted/demo", max_retries=1, retry_base=0.001) as c:
        res = recommend(few, c, dataset="games", split="test")
    assert res.failed == 1
    imported = _score(run_cli, data_dir, tmp_path / "a.txt", workspace, sessions, _ranks_a)
    code, out, err = run_cli("runs", "show", res.run_id, "--db", workspace, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["kind"] == "recommend" and got["model"] == "scripted/demo"
    # 4 calls logged (3 answered, 1 failed after its retries), none from the cache
    assert got["failed"] == 1 and got["failed_calls"] == 1 and got["calls"] == 4
    assert got["cached_calls"] == 0
    assert got["cost"] == pytest.approx(0.03)
    assert got["sessions"]["scored"] == 3 and got["sessions"]["failed"] == 1
    code, out, err = run_cli("runs", "compare", imported, res.run_id, "--db", workspace,
                             "--json")
    assert code == 0, err
    cmp = json.loads(out)
    assert cmp["n_shared"] == 3 and [r["dropped"] for r in cmp["runs"]] == [97, 0]
    assert cmp["runs"][1]["metrics"]["hr@1"] == pytest.approx(1 / 3)   # ranks 1, 2, 4
    assert cmp["config_diff"]["kind"] == ["score", "recommend"]
    assert cmp["config_diff"]["model"] == [None, "scripted/demo"]


def test_control_characters_in_stored_names_are_shown_escaped(data_dir, tmp_path, workspace,
                                                              run_cli):
    sessions = load_sessions("games", "test", data_dir)
    hostile = "\x1b]0;pwned\x07 [red]x"
    a = _score(run_cli, data_dir, tmp_path / "a.txt", workspace, sessions, _ranks_a,
               "--name", hostile, "--model", "m\x1b[31m")
    b = _score(run_cli, data_dir, tmp_path / "b.txt", workspace, sessions, _ranks_b)
    for args in (("list",), ("show", a), ("compare", a, b), ("export", a, "-f", "md"),
                 ("export", a, "-f", "latex"), ("export", a)):
        code, out, err = run_cli("runs", *args, "--db", workspace, env={"COLUMNS": "250"})
        assert code == 0, (args, err)
        assert "\x1b" not in out and "\x07" not in out, args
        assert ("x1b" if "latex" in args else "\\x1b") in out, args
    code, out, err = run_cli("runs", "list", "--db", workspace, "--json")
    assert json.loads(out)[0]["name"] == hostile     # JSON keeps the data exactly


def test_rm_of_any_run_changes_the_views_change_key(two_runs, train_pair, workspace, run_cli):
    """The TUI reloads a view when its change key moves: deleting a run that is not the
    newest must move it too."""
    from re2llm_tui.store import changes
    from re2llm_tui.store.workspace import open_workspace

    _, a, _b = two_runs
    t1, _t2 = train_pair
    db = open_workspace(workspace)
    before = changes.change_key(db, (changes.RUNS, changes.TRAIN_RUNS))
    code, out, err = run_cli("runs", "rm", a, "--yes", "--db", workspace)
    assert code == 0, err
    after_run = changes.change_key(db, (changes.RUNS, changes.TRAIN_RUNS))
    assert after_run != before
    code, out, err = run_cli("runs", "rm", f"t{t1}", "--yes", "--db", workspace)
    assert code == 0, err
    assert changes.change_key(db, (changes.RUNS, changes.TRAIN_RUNS)) != after_run


def test_a_deleted_runs_id_is_never_given_to_another_run(two_runs, train_pair, workspace,
                                                         run_cli):
    """`runs rm` of the newest run, then a new run: the new one gets a fresh id, so a
    provenance string `run:<id>` (or a note citing the run) never points at another run."""
    from re2llm_tui.store import runs, train_runs
    from re2llm_tui.store.workspace import open_workspace

    _, a, b = two_runs
    t1, t2 = train_pair
    newest = max(a, b)
    code, _, err = run_cli("runs", "rm", newest, f"t{t2}", "--yes", "--db", workspace)
    assert code == 0, err
    db = open_workspace(workspace)
    new = runs.create_run(db, name="after rm", kind="score", dataset="games", split="test")
    assert new == newest + 1
    new_t = train_runs.create(db, dataset="games", model="m", kb_version="k", hint_ids=[],
                              seed=0, total_steps=1, config={}, n_sessions=1)
    assert new_t == t2 + 1
    # deleting an older run does not lower the mark
    code, _, err = run_cli("runs", "rm", min(a, b), "--yes", "--db", workspace)
    assert code == 0, err
    assert runs.create_run(db, name="next", kind="score", dataset="games",
                           split="test") == newest + 2
