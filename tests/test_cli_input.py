"""What users type into the CLI (issue 10): usage errors, markup and terminal control
characters in data, and database failures -- each a short message and the right exit code,
never a traceback, never data read as markup or sent raw to the terminal."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from io import StringIO

import pytest

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.kb import store as kb
from re2llm_tui.store.workspace import open_workspace

HOSTILE = ["[/]", "x[/bold]", "[link=file:///etc/passwd]y[/link]", "[bold]b[/bold]"]
CONTROL = ["\x1b]0;pwned\x07", "\x1b[31mred", "\x9b2J", "nul\x00tail"]


def _raw_controls(s: str) -> list[str]:
    """Control characters a terminal would act on (newlines and tabs excepted)."""
    return [c for c in s if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f]


@pytest.fixture
def wide(monkeypatch):
    """Rich tables as wide as needed, so that cell text is not folded across lines."""
    monkeypatch.setenv("COLUMNS", "400")


# --------------------------------------------------------------------------- usage errors

USAGE = [
    (("kb", "list", "--bogus"), "No such option: --bogus"),
    (("kb", "search", "x", "--limit", "abc"), "Invalid value for '--limit'"),
    (("kb", "history", "-n", "0"), "Invalid value for '--limit'"),
    (("kb", "show", "abc"), "Invalid value for 'hint_id'"),
    (("kb", "add"), "Missing argument"),
    (("recommend", "--limit", "abc"), "Invalid value for '--limit'"),
    (("train", "--steps", "many"), "Invalid value for '--steps'"),
    (("evaluate", "--bogus"), "No such option: --bogus"),
    (("explore", "--sessions", "0"), "Invalid value for '--sessions'"),
    (("score",), "Missing argument"),
    (("data", "info", "--json", "--bogus"), "No such option: --bogus"),
    (("run", "--split"), "requires an argument"),
    (("nosuch",), "No such command 'nosuch'"),
]


@pytest.mark.parametrize("args, message", USAGE)
def test_usage_error_is_usage_and_one_error_line_exit_2(run_cli, workspace, args, message):
    code, out, err = run_cli(*args, "--db", workspace) if args[0] == "kb" else run_cli(*args)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert err.splitlines()[0].startswith(("Usage: re2llm-tui", "Error:"))
    assert len(err.splitlines()) <= 5
    assert not workspace.exists(), "a usage error touches nothing"


def test_usage_error_in_a_real_process_exits_2_without_traceback(tmp_path):
    """The console script path (``entry``), not only ``main``: no traceback, exit 2."""
    res = subprocess.run([sys.executable, "-c", "from re2llm_tui.cli import entry; entry()",
                          "kb", "list", "--limit", "abc", "--db", str(tmp_path / "kb.sqlite")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "Error: No such option: --limit" in res.stderr


def test_help_exits_0_and_no_command_shows_help(run_cli):
    code, out, err = run_cli("kb", "list", "--help")
    assert code == 0 and "--status" in out and err == ""
    code, out, err = run_cli()
    assert code == 2 and "Usage" in out and "Traceback" not in err and err.strip() == ""


def test_ctrl_c_is_one_line_exit_130(run_cli, data_dir, workspace, monkeypatch):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(kb.KnowledgeBase, "hints", interrupted)
    code, out, err = run_cli("kb", "list", "--db", workspace)
    assert code == 130 and err.count("\n") == 1 and "interrupted" in err


@pytest.mark.parametrize("cause, code_expected, word", [
    (KeyboardInterrupt, 130, "interrupted"),   # Ctrl+C at a prompt: typer raises Abort from it
    (EOFError, 1, "aborted"),                  # end of input at a prompt
])
def test_aborted_prompt_is_one_line(run_cli, data_dir, workspace, monkeypatch, cause, code_expected, word):
    import typer

    def prompt(*a, **kw):
        try:
            raise cause
        except KeyboardInterrupt:
            raise typer.Abort() from None
        except EOFError:
            raise

    monkeypatch.setattr(kb.KnowledgeBase, "hints", prompt)
    code, out, err = run_cli("kb", "list", "--db", workspace)
    assert code == code_expected and err.count("\n") == 1 and word in err, err


def test_undecodable_argument_is_one_line(run_cli, workspace, data_dir):
    code, out, err = run_cli("kb", "add", "bad byte \udc9b here", "--db", workspace,
                             "--data-dir", data_dir)
    assert code == 0, err           # stored with U+FFFD, not a traceback
    assert "bad byte \ufffd here" in out
    code, out, err = run_cli("kb", "search", "\udc9b", "--db", workspace, "--data-dir", data_dir)
    assert code == 2 and err.startswith("re2llm-tui: error:") and "Traceback" not in err


# --------------------------------------------------------------------------- markup

def test_format_table_shows_names_and_title_verbatim():
    from rich.console import Console

    from re2llm_tui.evaluation.metrics import format_table, summarize

    s = summarize([1, None, 3], n_boot=10)
    rows = {f"run {i}: {h}": s for i, h in enumerate(HOSTILE)}
    table = format_table(rows, title="title " + " ".join(HOSTILE), baseline="[/]base",
                         paired={k: {"metric": "ndcg@10", "diff": 0.0, "lo": 0.0, "hi": 0.0}
                                 for k in rows})
    buf = StringIO()
    Console(file=buf, width=600, emoji=False).print(table)
    out = buf.getvalue()
    for h in HOSTILE:
        assert h in out
    assert "vs [/]base" in out


def test_score_with_hostile_labels_and_file_name(data_dir, tmp_path, workspace, run_cli, wide):
    from replies import ranked_reply

    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.evaluation.scoring import format_output_file

    sessions = load_sessions("games", "test", data_dir)
    bad = {3: HOSTILE[0], 7: HOSTILE[1], 11: HOSTILE[2], 13: HOSTILE[3], 17: "ctl \x1b[31mred"}
    blocks = [(bad.get(s.index, s.target), ranked_reply(s, 1)) for s in sessions]
    f = tmp_path / "[red]out[bold].txt"
    f.write_text(format_output_file(blocks))
    code, out, err = run_cli("score", "-d", "games", "-s", "test", f, "--db", workspace,
                             "--data-dir", data_dir)
    assert code == 0, err
    for h in HOSTILE:
        assert h in out, h
    assert "[red]out[bold].txt" in out
    assert "5 label(s) do not match" in out
    assert not _raw_controls(out) and "\\x1b[31mred" in out


def test_kb_output_shows_markup_verbatim(run_cli, workspace, data_dir, wide):
    base = ("-d", "games", "--db", workspace, "--data-dir", data_dir)
    text = "Mind " + " ".join(HOSTILE) + " :fire: titles."
    code, out, err = run_cli("kb", "add", text, *base)
    assert code == 0 and text in out, err
    for args in (("kb", "list"), ("kb", "show", "21"), ("kb", "search", "titles"),
                 ("kb", "history")):
        code, out, err = run_cli(*args, *base)
        assert code == 0, (args, err)
        for h in ([text] if args[1] != "history" else []):
            assert h in out or all(x in out for x in HOSTILE), (args, out)
        assert ":fire:" in out or args[1] == "history"
    code, out, err = run_cli("kb", "edit", "21", "Now [/] again", *base)
    assert code == 0 and "edited #21: Now [/] again" in out


def test_error_messages_with_markup_and_controls_are_one_plain_line(run_cli, workspace, data_dir,
                                                                   tmp_path):
    missing = tmp_path / "[/]x[/bold]\x1b]0;pwned\x07.json"
    code, out, err = run_cli("kb", "import", missing, "-d", "games", "--db", workspace,
                             "--data-dir", data_dir)
    assert code == 2 and err.count("\n") == 1 and "file not found" in err
    assert "[/]x[/bold]" in err and "\\x1b]0;pwned\\x07" in err and not _raw_controls(err)


def test_data_info_title_with_markup_in_path(data_dir, tmp_path, run_cli, wide):
    link = tmp_path / "[red]release"
    link.symlink_to(data_dir, target_is_directory=True)
    code, out, err = run_cli("data", "info", "-d", "games", "--data-dir", link)
    assert code == 0, err
    assert "[red]release" in out


# --------------------------------------------------------------------------- control characters

def _store_raw(workspace, data_dir, texts):
    """Hints as an older version (or another tool) may have stored them: control characters
    included, bypassing today's normalisation."""
    db = open_workspace(workspace)
    kb.KnowledgeBase(db, Dataset.resolve("games", data_dir))  # seeds the KB
    ids = []
    for t in texts:
        h = kb.KnowledgeBase(db, Dataset.resolve("games")).add("placeholder " + str(len(ids)), status="accepted")
        db.execute("UPDATE hints SET text=?, note=? WHERE dataset='games' AND id=?",
                   [t, t, h.id])
        ids.append(h.id)
    db.conn.close()
    return ids


def test_stored_control_characters_are_escaped_on_output(run_cli, workspace, data_dir, wide,
                                                         tmp_path):
    texts = [f"hint {i} {c} word{i}" for i, c in enumerate(CONTROL)]
    ids = _store_raw(workspace, data_dir, texts)
    base = ("-d", "games", "--db", workspace, "--data-dir", data_dir)
    outputs = {}
    for args in (("kb", "list"), ("kb", "show", str(ids[0])), ("kb", "show", str(ids[3])),
                 ("kb", "search", "word0"), ("kb", "search", "hint"), ("kb", "history"),
                 ("kb", "list", "--json"), ("kb", "export")):
        code, out, err = run_cli(*args, *base)
        assert code == 0, (args, err)
        assert not _raw_controls(out + err), (args, [hex(ord(c)) for c in _raw_controls(out)])
        outputs[args] = out
    listed = outputs[("kb", "list")]
    assert "\\x1b]0;pwned\\x07" in listed and "\\x1b[31mred" in listed and "\\x9b2J" in listed
    assert "nul\\x00tail word3" in outputs[("kb", "show", str(ids[3]))]
    # the JSON outputs mean the same text: decoding gives back the stored strings
    as_json = {h["id"]: h["text"] for h in json.loads(outputs[("kb", "list", "--json")])}
    assert [as_json[i] for i in ids] == texts
    assert set(texts) <= set(json.loads(outputs[("kb", "export")]))


def test_hint_typed_with_controls_is_stored_clean_and_not_cut(run_cli, workspace, data_dir):
    base = ("-d", "games", "--db", workspace, "--data-dir", data_dir)
    code, out, err = run_cli("kb", "add", "Prefer \x1b[31mred\x1b[0m covers\x00 and the rest",
                             *base)
    assert code == 0, err
    assert not _raw_controls(out) and out.rstrip().endswith("and the rest")
    code, out, _ = run_cli("kb", "list", "--json", *base)
    assert json.loads(out)[-1]["text"] == "Prefer [31mred[0m covers and the rest"


# --------------------------------------------------------------------------- database failures

def _seeded_empty_workspace(path) -> None:
    """A workspace whose games KB counts as seeded (no release data needed), then closed."""
    db = open_workspace(path)
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('kb_seeded:games', 'test')")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()


def test_malformed_workspace_is_one_line_exit_2(run_cli, data_dir, workspace):
    _seeded_empty_workspace(workspace)
    con = sqlite3.connect(workspace)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    roots = [r for (r,) in con.execute(
        "SELECT rootpage FROM sqlite_master WHERE tbl_name='hints' AND rootpage > 0")]
    con.close()
    assert len(roots) >= 2  # the table and its indexes
    with open(workspace, "r+b") as fh:   # overwrite the root pages of the hints b-trees
        for root in roots:
            fh.seek((root - 1) * page_size)
            fh.write(b"\xff" * page_size)
    code, out, err = run_cli("kb", "list", "-d", "games", "--db", workspace)
    assert code == 2, (out, err)
    assert err.startswith("re2llm-tui: error: ") and err.count("\n") == 1, err
    assert "malformed" in err and "Traceback" not in err


def test_full_disk_during_import_is_one_line_exit_2(run_cli, data_dir, workspace, tmp_path, monkeypatch):
    """SQLite's own size limit stands in for a full disk: the same SQLITE_FULL error."""
    import re2llm_tui.store.workspace as ws

    _seeded_empty_workspace(workspace)
    real_open = ws.open_workspace

    def small_disk(*a, **kw):
        db = real_open(*a, **kw)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages}")
        return db

    monkeypatch.setattr(ws, "open_workspace", small_disk)
    f = tmp_path / "many.json"
    f.write_text(json.dumps([""] + [f"Prefer titles of kind {i} when it fits the session."
                                    for i in range(3000)]))
    code, out, err = run_cli("kb", "import", f, "-d", "games", "--db", workspace)
    assert code == 2, (out, err)
    assert err.startswith("re2llm-tui: error: ") and err.count("\n") == 1, err
    assert "database or disk is full" in err and "Traceback" not in err
    monkeypatch.setattr(ws, "open_workspace", real_open)
    db = real_open(workspace)
    assert db.execute("SELECT COUNT(*) FROM hints").fetchone()[0] == 0, "rolled back"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("exc", [sqlite3.OperationalError("database is locked"),
                                 sqlite3.OperationalError("database or disk is full"),
                                 sqlite3.DatabaseError("file is not a database")])
def test_sqlite_error_escaping_a_command_is_one_workspace_line(run_cli, data_dir, workspace, monkeypatch,
                                                               exc):
    def fails(*a, **kw):
        raise exc

    monkeypatch.setattr(kb.KnowledgeBase, "hints", fails)
    code, out, err = run_cli("kb", "list", "--db", workspace)
    assert code == 2
    assert err == f"re2llm-tui: error: workspace: {exc}\n"


def test_score_help_documents_the_input_format(run_cli):
    code, out, _ = run_cli("score", "--help")
    assert code == 0
    for piece in ("Label:<the session's target title>", "Output: 1. <title>", "10. <title>",
                  "ISO-8859-1", "block count"):
        assert piece in out, piece
