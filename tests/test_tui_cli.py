"""`re2llm-tui run`: bad input is one line + exit 2 before any UI; the CLI never imports
Textual at start-up; the core imports without the UI."""

from __future__ import annotations

import subprocess
import sys


def test_cli_and_core_do_not_import_textual():
    code = ("import sys, re2llm_tui.cli, re2llm_tui.kb.store, re2llm_tui.evaluation.recommend, "
            "re2llm_tui.exploration.reflection; print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_run_bad_input_is_one_line(run_cli, tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for args, needle in ((["--dataset", "books"], "unknown dataset"),
                         (["--split", "valid"], "unknown split"),
                         (["--train-steps", "0"], "--train-steps must be >= 1"),
                         (["--data-dir", str(tmp_path)], "not found in --data-dir"),
                         (["--db", str(tmp_path)], "is a directory"),
                         # the model is checked before the UI opens
                         (["--model", "nonexistent/x"], "unknown model string"),
                         (["--model", "gpt-4o-mini"], "needs OPENAI_API_KEY"),
                         (["--model", "hosted_vllm/m", "--api-base", "http://127.0.0.1:9/v1"],
                          "unreachable"),
                         (["--transport", "fast"], "--transport fast needs"),
                         (["--transport", "carrier-pigeon"], "unknown transport"),
                         (["--client-procs", "0"], "--client-procs must be >= 1")):
        monkeypatch.setenv("RE2LLM_TRANSPORT", "auto")   # --transport sets it for children
        code, out, err = run_cli("run", *args)
        assert code == 2, (args, out, err)
        assert err.count("\n") == 1 and needle in err, (args, err)
        assert "Traceback" not in err


def test_make_app_header_marks_the_demo_model(tmp_path, data_dir, monkeypatch):
    from re2llm_tui.tui.app import make_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RE2LLM_MODEL", raising=False)
    app = make_app("game", db="kb.sqlite", data_dir=data_dir)
    assert app.config.dataset == "games" and app.config.is_demo_model
    text = app.header_text("Sessions").plain
    assert "DEMO 135M" in text and "games/train" in text and "kb.sqlite" in text
    other = make_app("movies", model="gpt-4o-mini", db="kb.sqlite", data_dir=data_dir)
    assert "DEMO" not in other.header_text("").plain


def test_run_passes_client_procs_and_transport_to_the_app(run_cli, data_dir, tmp_path,
                                                          monkeypatch):
    """`run --client-procs N --transport T`: the app's training and evaluation jobs use N
    client processes, and the app's client and its jobs take transport T."""
    from stub_server import StubServer

    import re2llm_tui.tui.app as tui_app

    seen = []
    monkeypatch.setattr(tui_app, "run_app", lambda app: seen.append(app) or 0)
    monkeypatch.setenv("RE2LLM_TRANSPORT", "auto")     # restored after the test
    with StubServer() as srv:
        code, out, err = run_cli("run", "--dataset", "games", "--db", tmp_path / "kb.sqlite",
                                 "--model", "hosted_vllm/stub", "--api-base", srv.base_url,
                                 "--client-procs", "3", "--transport", "litellm")
    assert code == 0, err
    (app,) = seen
    assert app.config.train_options["workers"] == 3 and app.config.eval_options["workers"] == 3
    import os

    assert os.environ["RE2LLM_TRANSPORT"] == "litellm"
