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


# -- shared LLM options: declared once in cli/common.py, the same help everywhere -----------

LLM_FLAGS = ("--model", "--api-base", "--concurrency", "--max-cost", "--max-calls", "--timeout",
             "--retries", "--local-workers", "--client-procs", "--transport")
# `score --model` names the model that produced an imported file: a label, not the LLM
NOT_THE_LLM = {(("score",), "--model"),
               # whose stored reward table to read (no LLM is called)
               (("kb", "evidence"), "--model"), (("rewards", "export"), "--model")}
WIDE = {"COLUMNS": "400"}   # help rendered without wrapping or an ellipsis in a narrow column


def _leaf_commands():
    """(path, click command) of every command of the CLI, e.g. (("kb", "list"), ...)."""
    import typer.main

    from re2llm_tui.cli import app

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                yield from walk(sub, (*path, name))
        else:
            yield path, cmd

    return list(walk(typer.main.get_command(app), ()))


def _flag(cmd, flag):
    return next((p for p in cmd.params if flag in getattr(p, "opts", ())), None)


def _plain(text: str) -> str:
    """Help output without the panel's borders, wrapping and padding."""
    return " ".join(text.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


def test_llm_options_have_one_help_text(run_cli):
    from re2llm_tui.cli import common

    declared = {"--model": common.ModelOption, "--api-base": common.ApiBaseOption,
                "--concurrency": common.ConcurrencyOption, "--max-cost": common.MaxCostOption,
                "--max-calls": common.MaxCallsOption, "--timeout": common.TimeoutOption,
                "--retries": common.RetriesOption, "--local-workers": common.LocalWorkersOption,
                "--client-procs": common.ClientProcsOption, "--transport": common.TransportOption}
    assert set(declared) == set(LLM_FLAGS)
    users: dict[str, list[tuple[str, ...]]] = {flag: [] for flag in LLM_FLAGS}
    for path, cmd in _leaf_commands():
        shown = None
        for flag in LLM_FLAGS:
            param = _flag(cmd, flag)
            if param is None or (path, flag) in NOT_THE_LLM:
                continue
            users[flag].append(path)
            assert param.help == declared[flag].help, (path, flag, param.help)
            if shown is None:
                code, out, err = run_cli(*path, "--help", env=WIDE)
                assert code == 0, err
                shown = _plain(out)
            assert _plain(declared[flag].help) in shown, (path, flag)
    # the test sees the commands that talk to the LLM (it cannot pass by finding none)
    assert set(users["--model"]) == {("run",), ("recommend",), ("explore",), ("train",),
                                     ("evaluate",)}
    assert {("recommend",), ("train",), ("evaluate",)} <= set(users["--concurrency"])
    assert set(users["--local-workers"]) == {("train",), ("evaluate",)}
    assert {("recommend",), ("train",), ("evaluate",)} <= set(users["--client-procs"])
    assert {("recommend",), ("train",), ("evaluate",)} <= set(users["--transport"])
    assert ("recommend",) in users["--timeout"] and ("recommend",) in users["--retries"]


def test_every_command_taking_model_shows_the_same_help(run_cli):
    """Read from each command's rendered --help: one text for --model wherever it picks the
    LLM, and every such command reads $RE2LLM_MODEL."""
    from re2llm_tui.cli import common

    texts = {}
    for path, cmd in _leaf_commands():
        param = _flag(cmd, "--model")
        if param is None or (path, "--model") in NOT_THE_LLM:
            continue
        assert sorted(param.opts) == ["--model", "-m"], (path, param.opts)
        texts[path] = param.help
        assert param.envvar == "RE2LLM_MODEL", path
        code, out, err = run_cli(*path, "--help", env=WIDE)
        assert code == 0, err
        assert _plain(common.ModelOption.help) in _plain(out), path
    assert len(texts) == 5 and len(set(texts.values())) == 1, texts
