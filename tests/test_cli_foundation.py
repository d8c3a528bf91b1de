"""CLI behaviour of the foundation commands: data info, errors, start-up hygiene."""

from __future__ import annotations

import json
import subprocess
import sys


def test_data_info_table_and_json(data_dir, run_cli):
    code, out, err = run_cli("data", "info", "--dataset", "games", "--data-dir", data_dir)
    assert code == 0, err
    assert "100.0%" in out and "train" in out and "test" in out
    code, out, _ = run_cli("data", "info", "--dataset", "movie", "--data-dir", data_dir, "--json")
    ov = json.loads(out)
    assert ov["dataset"] == "movies"
    tr = ov["splits"]["train"]
    assert tr["sessions"] == 500 and tr["candidates_min"] == tr["candidates_max"] == 50
    assert tr["target_in_candidates"] == 1.0
    assert ov["splits"]["test"]["pickled_id_sessions"] == 4790
    j = ov["movie_join"]
    assert j["candidate_mentions"] == 30000
    assert j["unmatched"] + j["exact_title"] + j["matched_case_insensitive"] == 30000
    assert j["ambiguous_resolved"] > 0


def test_missing_dataset_is_one_line_exit_2(tmp_path, run_cli):
    code, out, err = run_cli("data", "info", "--data-dir", tmp_path / "nope")
    assert code == 2 and err.startswith("re2llm-tui: error:") and err.count("\n") == 1


def test_unknown_dataset(run_cli):
    code, _, err = run_cli("data", "info", "--dataset", "books")
    assert code == 2 and "unknown dataset" in err


def test_cli_start_up_imports_nothing_heavy():
    code = ("import sys; import re2llm_tui.cli; "
            "bad=[m for m in ('torch','litellm','textual','llama_cpp','sentence_transformers') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_core_does_not_import_the_ui():
    """Every core module imports without textual or typer (harlequin-style hygiene)."""
    import pkgutil

    import re2llm_tui

    mods = [m.name for m in pkgutil.walk_packages(re2llm_tui.__path__, "re2llm_tui.")
            if not m.name.startswith(("re2llm_tui.cli", "re2llm_tui.tui"))]
    assert "re2llm_tui.exploration.reflection" in mods and "re2llm_tui.llm.client" in mods
    code = ("import sys, importlib; "
            f"[importlib.import_module(m) for m in {mods!r}]; "
            "bad = [m for m in ('textual', 'typer') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
