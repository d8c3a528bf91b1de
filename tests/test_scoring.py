"""`score`: recorded outputs in the release format, on the real sessions."""

from __future__ import annotations

import json
import math

import pytest
from replies import ranked_reply

from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation.scoring import format_output_file


def _write(path, sessions, ranks, encoding="utf-8", label_of=None):
    blocks = [((label_of or (lambda s: s.target))(s), ranked_reply(s, r))
              for s, r in zip(sessions, ranks)]
    path.write_bytes(format_output_file(blocks).encode(encoding, errors="replace"))


def _ranks(n):
    return [None if i % 3 == 0 else (i % 10) + 1 for i in range(n)]


def test_score_matches_hand_computation_and_is_stored(data_dir, tmp_path, workspace, run_cli):
    sessions = load_sessions("movies", "train", data_dir)
    ranks = _ranks(len(sessions))
    f = tmp_path / "movie_train_base.txt"
    _write(f, sessions, ranks, encoding="latin-1")  # the release wrote ISO-8859-1
    code, out, err = run_cli("score", "--dataset", "movies", "--split", "train", f, "--db",
                             workspace, "--data-dir", data_dir, "--json")
    assert code == 0, err
    got = json.loads(out)
    hits = [r for r in ranks if r is not None and r <= 10]
    assert got["n"] == 500
    assert got["hr@10"] == pytest.approx(len(hits) / 500)
    assert got["ndcg@10"] == pytest.approx(sum(1 / math.log2(r + 1) for r in hits) / 500, abs=1e-6)
    assert got["hr@1"] == pytest.approx(sum(r == 1 for r in hits) / 500)
    assert got["ci"]["ndcg@10"][0] <= got["ndcg@10"] <= got["ci"]["ndcg@10"][1]
    from re2llm_tui.store import runs
    from re2llm_tui.store.workspace import open_workspace

    db = open_workspace(workspace)
    run = runs.get_run(db, got["run_id"])
    assert run["kind"] == "score" and run["dataset"] == "movies" and run["params"]["encoding"]
    stored = runs.run_ranks(db, got["run_id"])
    assert [stored[s.id] for s in sessions] == ranks


def test_label_mismatches_are_reported_not_scored(data_dir, tmp_path, workspace, run_cli):
    sessions = load_sessions("games", "test", data_dir)
    f = tmp_path / "out.txt"
    _write(f, sessions, [1] * len(sessions),
           label_of=lambda s: "Some Other Game" if s.index in (3, 7) else s.target)
    code, out, err = run_cli("score", "-d", "games", "-s", "test", f, "--db", workspace,
                             "--data-dir", data_dir, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["n"] == 98 and got["label_mismatches"] == 2 and got["hr@1"] == 1.0
    code, out, _ = run_cli("score", "-d", "games", "-s", "test", f, "--db", workspace,
                           "--data-dir", data_dir)
    assert "test-0003" in out and "not scored" in out


@pytest.mark.parametrize("mutate,match", [
    (lambda t: t.split("\n\nLabel:")[0], "1 output blocks but"),
    (lambda t: t + "\n\nLabel:x\nOutput: 1. y\n", "101 output blocks"),
    (lambda t: "garbage first line\n" + t, "expected 'Label:"),
    (lambda t: "", "empty"),
])
def test_bad_outputs_files_exit_2_and_write_nothing(data_dir, tmp_path, workspace, run_cli,
                                                    mutate, match):
    sessions = load_sessions("games", "test", data_dir)
    f = tmp_path / "out.txt"
    _write(f, sessions, [2] * 100)
    f.write_text(mutate(f.read_text()))
    code, out, err = run_cli("score", "-d", "games", "-s", "test", f, "--db", workspace,
                             "--data-dir", data_dir)
    assert code == 2
    assert match in err and err.count("\n") == 1 and "Traceback" not in err
    assert not workspace.exists()


def test_binary_garbage_outputs_file(data_dir, tmp_path, workspace, run_cli):
    f = tmp_path / "bin.txt"
    f.write_bytes(bytes(range(256)) * 10)
    code, _, err = run_cli("score", "-d", "games", f, "--db", workspace, "--data-dir", data_dir)
    assert code == 2 and "binary" in err and not workspace.exists()
