"""Files the tool writes and reads (issue 19, cases 1, 7, 8, 9 and 16).

Real CLI processes on real files: an export aimed at the workspace (or its ``-wal`` /
``-shm``, or another SQLite file) is refused in one line and the workspace still opens with
its hints and runs; an ordinary file is still overwritten, atomically; ``/dev/zero``, a FIFO
and an oversized file are refused fast; hostile JSON costs one line; CSV text cells never
start a formula; a failed import creates no workspace.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import integrity, only_error_line
from replies import ranked_reply

from re2llm_tui.data.release import load_sessions
from re2llm_tui.errors import UserError
from re2llm_tui.evaluation.scoring import format_output_file

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from re2llm_tui.cli import entry; entry()"]
#: generous: these commands end in well under a second; the machine may be busy
SLOW = 120


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    env.pop("RE2LLM_DB", None)
    return env


def _limit_memory():            # a reader that reads until memory runs out ends at 3 GiB
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def cli(*args, cwd, timeout: float = SLOW, preexec=_limit_memory):
    p = subprocess.run([*CLI, *map(str, args)], cwd=cwd, env=_env(), capture_output=True,
                       text=True, timeout=timeout, preexec_fn=preexec)
    return p.returncode, p.stdout, p.stderr


def counts(db: Path) -> dict:
    """Row counts through a fresh SQLite connection (and its integrity check)."""
    conn = sqlite3.connect(str(db))
    try:
        out = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
               for t in ("hints", "runs", "run_items")}
    finally:
        conn.close()
    out["integrity"] = integrity(db)
    return out


@pytest.fixture
def ws(data_dir, tmp_path):
    """A workspace ``kb.sqlite`` in ``tmp_path`` with the games KB seeded and one score
    run named ``=HYPERLINK("http://x","click")`` (model ``@SUM(A1)``)."""
    sessions = load_sessions("games", "test", data_dir)
    out = tmp_path / "out.txt"
    out.write_text(format_output_file([(s.target, ranked_reply(s, (i % 10) + 1))
                                       for i, s in enumerate(sessions)]))
    code, _, err = cli("score", out, "-d", "games", "-s", "test", "--data-dir", data_dir,
                       "--db", "kb.sqlite", "--name", '=HYPERLINK("http://x","click")',
                       "--model", "@SUM(A1)", cwd=tmp_path)
    assert code == 0, err
    code, _, err = cli("kb", "list", "-d", "games", "--data-dir", data_dir, "--db",
                       "kb.sqlite", cwd=tmp_path)
    assert code == 0, err
    db = tmp_path / "kb.sqlite"
    before = counts(db)
    assert before["hints"] > 0 and before["runs"] == 1 and before["integrity"] == "ok"
    return db, before


def _other_sqlite(path: Path) -> bytes:
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE t(x)")
    conn.execute("INSERT INTO t VALUES (42)")
    conn.commit()
    conn.close()
    return path.read_bytes()


# --------------------------------------------------------------------------- case 1


@pytest.mark.parametrize("target", ["kb.sqlite", "kb.sqlite-wal", "kb.sqlite-shm",
                                    "./sub/../kb.sqlite", "link-to-ws"])
@pytest.mark.parametrize("command", ["runs", "kb"])
def test_an_export_onto_the_workspace_is_refused_and_it_still_opens(ws, data_dir, tmp_path,
                                                                     command, target):
    db, before = ws
    (tmp_path / "sub").mkdir()
    (tmp_path / "link-to-ws").symlink_to("kb.sqlite")
    wal = (tmp_path / "kb.sqlite-wal")
    wal_bytes = wal.read_bytes() if wal.exists() else None
    args = (["runs", "export", "1", "--format", "csv", "-o", target, "--db", "kb.sqlite"]
            if command == "runs" else
            ["kb", "export", target, "-d", "games", "--data-dir", data_dir, "--db", "kb.sqlite"])
    code, out, err = cli(*args, cwd=tmp_path)
    only_error_line(code, err, "workspace in use", "refusing to overwrite")
    assert out == ""
    if wal_bytes is not None:
        assert wal.read_bytes() == wal_bytes
    after = counts(db)
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("name", ["other.sqlite", "notes.csv", "other.db-journal"])
def test_another_sqlite_file_is_never_overwritten(ws, data_dir, tmp_path, name):
    db, before = ws
    target = tmp_path / name
    if name.endswith("-journal"):
        _other_sqlite(tmp_path / "other.db")
        target.write_bytes(b"journal")
        old = target.read_bytes()
    else:
        old = _other_sqlite(target)
    for args in (["runs", "export", "1", "--format", "csv", "-o", name, "--db", "kb.sqlite"],
                 ["kb", "export", name, "-d", "games", "--data-dir", data_dir, "--db",
                  "kb.sqlite"]):
        code, out, err = cli(*args, cwd=tmp_path)
        only_error_line(code, err, "refusing to overwrite")
        assert target.read_bytes() == old
    assert counts(db) == before


def test_export_scalars_and_tensorboard_refuse_the_workspace(ws, tmp_path):
    db, before = ws
    from re2llm_tui.store import train_runs
    from re2llm_tui.store.workspace import open_workspace

    w = open_workspace(db)
    tid = train_runs.create(w, dataset="games", model="m", kb_version="kb-1",
                            hint_ids=[0, 1], seed=0, total_steps=100, config={},
                            n_sessions=4)
    train_runs.store_scalars(w, tid, 100, {"charts/reward_mean": -0.12})
    w.conn.close()
    before = counts(db)
    for fmt, target in (("csv", "kb.sqlite"), ("csv", "kb.sqlite-shm"),
                        ("tensorboard", "kb.sqlite"), ("tensorboard", "kb.sqlite-wal")):
        code, out, err = cli("runs", "export-scalars", f"t{tid}", "--format", fmt, "-o", target,
                             "--db", "kb.sqlite", cwd=tmp_path)
        only_error_line(code, err, "workspace in use")
    assert counts(db) == before


def test_evaluate_out_refuses_the_workspace(data_dir, tmp_path):
    """A workspace named ws.json and ``evaluate --out ws.json`` (the .json suffix passes the
    format check): refused before any work; the workspace is intact."""
    code, _, err = cli("kb", "list", "-d", "games", "--data-dir", data_dir, "--db", "ws.json",
                       cwd=tmp_path)
    assert code == 0, err
    before = counts(tmp_path / "ws.json")
    code, out, err = cli("evaluate", "-d", "games", "--content-only", "--limit", "3",
                         "--data-dir", data_dir, "--db", "ws.json", "--out", "ws.json",
                         cwd=tmp_path)
    only_error_line(code, err, "--out ws.json", "workspace in use")
    assert counts(tmp_path / "ws.json") == before


def test_an_ordinary_file_is_still_overwritten_and_keeps_its_mode(ws, data_dir, tmp_path):
    target = tmp_path / "hints.json"
    target.write_text("old content " * 10)
    target.chmod(0o640)
    code, _, err = cli("kb", "export", "hints.json", "-d", "games", "--data-dir", data_dir,
                       "--db", "kb.sqlite", cwd=tmp_path)
    assert code == 0, err
    got = json.loads(target.read_text())
    assert got[0] == "" and len(got) > 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    code, _, err = cli("runs", "export", "1", "--format", "md", "-o", "hints.json",
                       "--db", "kb.sqlite", cwd=tmp_path)
    assert code == 0, err
    assert target.read_text().startswith("| run |")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _file_size_limit(n: int):
    def limit():
        _limit_memory()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past it fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return limit


def test_a_failure_mid_write_leaves_the_old_file_and_no_temp_file(ws, data_dir, tmp_path):
    """Writes past 64 kB fail (RLIMIT_FSIZE): the export of ~110 kB of hints fails half
    way; the old file is unchanged, no temporary file is left, one line."""
    db, _ = ws
    hints = tmp_path / "many.json"
    hints.write_text(json.dumps([""] + [f"Prefer items of kind {i} " + "x" * 150
                                        for i in range(600)]))
    code, _, err = cli("kb", "import", hints, "-d", "games", "--data-dir", data_dir,
                       "--db", "kb.sqlite", cwd=tmp_path)
    assert code == 0, err
    conn = sqlite3.connect(str(db))         # an empty WAL: opening it writes nothing big
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = counts(db)
    target = tmp_path / "export.json"
    target.write_text('["", "the old export"]')
    old = target.read_bytes()
    code, out, err = cli("kb", "export", "export.json", "-d", "games", "--data-dir", data_dir,
                         "--db", "kb.sqlite", cwd=tmp_path, preexec=_file_size_limit(64_000))
    only_error_line(code, err, "export.json", "cannot write")
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []
    assert counts(db) == before


def test_atomic_file_removes_its_temp_file_on_any_error(tmp_path):
    from re2llm_tui.safe_files import atomic_file, atomic_write

    target = tmp_path / "x.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["x.csv"]
    atomic_write(target, "new")
    assert target.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["x.csv"]


def test_the_open_workspace_is_recognised_without_a_new_descriptor(tmp_path):
    """No ``workspace=`` given: the file this process holds open as an SQLite database is
    still refused, read through the descriptor it already has (a new descriptor's close
    would drop this process's fcntl locks on it)."""
    from re2llm_tui.safe_files import atomic_write
    from re2llm_tui.store.workspace import open_workspace

    db = open_workspace(tmp_path / "store.bin")
    db.execute("INSERT INTO meta(key, value) VALUES ('k', 'v')")
    opened = []
    real_open = os.open

    def spy(path, *a, **kw):
        opened.append(os.fspath(path))
        return real_open(path, *a, **kw)

    os.open = spy
    try:
        with pytest.raises(UserError, match="is an SQLite database"):
            atomic_write(tmp_path / "store.bin", "csv text")
    finally:
        os.open = real_open
    assert str(tmp_path / "store.bin") not in opened
    assert db.execute("SELECT value FROM meta WHERE key='k'").fetchone()[0] == "v"
    db.conn.close()


def test_runs_screen_exports_refuse_an_sqlite_file_in_exports(ws, tmp_path):
    """The Runs screen's ``exports/`` writer (write_exports): a stray SQLite file named like
    one of its outputs is refused before any file is written."""
    from re2llm_tui.evaluation.run_export import write_exports
    from re2llm_tui.store import catalog
    from re2llm_tui.store.workspace import open_workspace

    db, _ = ws
    folder = tmp_path / "exports"
    folder.mkdir()
    old = _other_sqlite(folder / "runs-1.md")
    w = open_workspace(db)
    records = [catalog.get_record(w, "1")]
    with pytest.raises(UserError, match="refusing to overwrite"):
        write_exports(records, folder, "runs-1", workspace=db)
    assert (folder / "runs-1.md").read_bytes() == old
    assert not (folder / "runs-1.csv").exists()
    paths = write_exports(records, tmp_path / "exports2", "runs-1", workspace=db)
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex"]
    w.conn.close()


def test_a_checkpoint_is_never_written_onto_an_sqlite_file(tmp_path):
    torch = pytest.importorskip("torch")
    from re2llm_tui.utilization.agent.checkpoints import write_checkpoint

    other = tmp_path / "train-0001.pt"
    old = _other_sqlite(other)
    with pytest.raises(UserError, match="is an SQLite database"):
        write_checkpoint({"format": "x", "w": torch.zeros(2)}, other)
    assert other.read_bytes() == old
    fine = write_checkpoint({"format": "x", "w": torch.ones(2)}, tmp_path / "ck" / "a.pt")
    assert torch.load(fine, weights_only=True)["w"].tolist() == [1.0, 1.0]
    assert sorted(os.listdir(tmp_path / "ck")) == ["a.pt"]


# --------------------------------------------------------------------------- case 7


def _items_csv(path: Path) -> Path:
    path.write_text("id,title\n" + "".join(f"i{k},Item {k}\n" for k in range(60)))
    return path


@pytest.mark.parametrize("command", ["kb", "score", "data"])
def test_dev_zero_is_refused_fast_with_bounded_memory(data_dir, tmp_path, command):
    _items_csv(tmp_path / "items.csv")
    args = {"kb": ["kb", "import", "/dev/zero", "-d", "games", "--data-dir", data_dir],
            "score": ["score", "/dev/zero", "-d", "games", "--data-dir", data_dir],
            "data": ["data", "import", "mine", "--sessions", "/dev/zero", "--items",
                     "items.csv", "--data-dir", tmp_path]}[command]
    t0 = time.monotonic()
    code, out, err = cli(*args, "--db", "new.sqlite", cwd=tmp_path)
    only_error_line(code, err, "/dev/zero", "character device", "not a regular file")
    assert time.monotonic() - t0 < SLOW
    assert not (tmp_path / "new.sqlite").exists()


def test_a_fifo_is_refused_without_being_opened(data_dir, tmp_path):
    """``score FIFO`` with no writer: before, open() waited forever (SIGTERM too); now the
    FIFO is refused from its stat, never opened."""
    fifo = tmp_path / "outputs.txt"
    os.mkfifo(fifo)
    p = subprocess.Popen([*CLI, "score", str(fifo), "-d", "games", "--data-dir",
                          str(data_dir), "--db", "new.sqlite"], cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=10)
            pytest.fail("score waited on the FIFO until SIGTERM")
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail("score waited on the FIFO and ignored SIGTERM")
    only_error_line(p.returncode, err, "FIFO", "not a regular file")
    assert not (tmp_path / "new.sqlite").exists()


def test_an_oversized_input_names_the_limit(data_dir, tmp_path):
    big = tmp_path / "huge.json"
    with open(big, "wb") as f:           # sparse: no disk used
        f.truncate((256 << 20) + 1)
    code, out, err = cli("kb", "import", big, "-d", "games", "--data-dir", data_dir,
                         "--db", "new.sqlite", cwd=tmp_path)
    only_error_line(code, err, "huge.json", "larger than the 256 MiB limit")
    assert not (tmp_path / "new.sqlite").exists()


# --------------------------------------------------------------------------- case 8


def _deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize("kind,needle", [
    ("deep-list", "nested deeper than"),
    ("deep-line", "nested deeper than"),
    ("long-id", "5000 digits"),
    ("long-target", "5000 digits"),
])
def test_hostile_json_in_data_import_is_one_line(tmp_path, kind, needle):
    _items_csv(tmp_path / "items.csv")
    digits = "7" * 5000
    text = {
        "deep-list": _deep(100_000),
        "deep-line": json.dumps({"history": ["i1", "i2"], "target": "i3"}) + "\n"
                     + '{"history": ' + _deep(100_000) + ', "target": "i4"}\n',
        "long-id": '{"history": [' + digits + ', "i2"], "target": "i3"}\n',
        "long-target": '[{"history": ["i1", "i2"], "target": ' + digits + '}]',
    }[kind]
    (tmp_path / "sessions.jsonl").write_text(text)
    code, out, err = cli("data", "import", "mine", "--sessions", "sessions.jsonl", "--items",
                         "items.csv", "--data-dir", tmp_path, "--db", "new.sqlite",
                         cwd=tmp_path)
    only_error_line(code, err, "sessions.jsonl", needle)
    assert not (tmp_path / "new.sqlite").exists()
    assert not (tmp_path / "imported").exists() or not any((tmp_path / "imported").iterdir())


def test_hostile_json_items_file_is_one_line(tmp_path):
    (tmp_path / "items.jsonl").write_text('{"id": ' + "9" * 5000 + ', "title": "A"}\n')
    (tmp_path / "sessions.jsonl").write_text('{"history": ["a"], "target": "b"}\n')
    code, out, err = cli("data", "import", "mine", "--sessions", "sessions.jsonl", "--items",
                         "items.jsonl", "--data-dir", tmp_path, "--db", "new.sqlite",
                         cwd=tmp_path)
    only_error_line(code, err, "items.jsonl", "5000 digits")


@pytest.mark.parametrize("text,needle", [
    ('["", ' + "1" * 5000 + "]", "5000 digits"),
    (_deep(100_000), "nested deeper than"),
    ("[" * 300 + "]" * 300, "nested deeper than 200"),
], ids=["long-number", "deep-100000", "deep-300"])
def test_hostile_json_in_kb_import_is_one_line(data_dir, tmp_path, text, needle):
    (tmp_path / "h.json").write_text(text)
    code, out, err = cli("kb", "import", "h.json", "-d", "games", "--data-dir", data_dir,
                         "--db", "new.sqlite", cwd=tmp_path)
    only_error_line(code, err, "h.json", needle)


def test_bounded_json_keeps_what_is_fine():
    from re2llm_tui.safe_files import load_json

    ok = {"a": [[["x"]]], "n": -12345678901234567890, "f": -0.5e-3, "s": "[[[[" * 300}
    assert load_json(json.dumps(ok), "t") == ok


# --------------------------------------------------------------------------- case 9


def test_csv_text_cells_never_start_a_formula_and_numbers_stay_numbers(ws, tmp_path):
    db, _ = ws
    code, _, err = cli("runs", "export", "1", "--format", "csv", "-o", "runs.csv",
                       "--db", "kb.sqlite", cwd=tmp_path)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())))
    assert rows[0]["name"] == "'" + '=HYPERLINK("http://x","click")'
    assert rows[0]["model"] == "'@SUM(A1)"
    assert float(rows[0]["ndcg@10"]) > 0          # a number, not text
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), row
            if cell.startswith("-"):
                float(cell)                       # only a plain number may start with -

    from re2llm_tui.store import train_runs
    from re2llm_tui.store.workspace import open_workspace

    w = open_workspace(db)
    tid = train_runs.create(w, dataset="games", model="m", kb_version="kb-1",
                            hint_ids=[0, 1], seed=0, total_steps=100, config={},
                            n_sessions=4)
    train_runs.store_scalars(w, tid, 100, {"=cmd|' /C calc'!A0": 1.0, "losses/policy": -0.12})
    w.conn.close()
    code, out, err = cli("runs", "export-scalars", f"t{tid}", "--db", "kb.sqlite",
                         cwd=tmp_path)
    assert code == 0, err
    got = list(csv.reader(io.StringIO(out)))
    assert got[0] == ["step", "'=cmd|' /C calc'!A0", "losses/policy"]
    assert got[1] == ["100", "1.0", "-0.12"]


def test_spreadsheet_cell_rules():
    from re2llm_tui.safe_files import spreadsheet_row

    assert spreadsheet_row(["=1+2", "+x", "-x", "@x", "\tx", "\rx", "-0.12", "+3", "1e-5",
                            "-1e+5", "a=b", "", -0.12, 3, None]) == \
        ["'=1+2", "'+x", "'-x", "'@x", "'\tx", "'\rx", "-0.12", "+3", "1e-5", "-1e+5", "a=b",
         "", -0.12, 3, None]


# --------------------------------------------------------------------------- case 16


@pytest.mark.parametrize("content", ['["ok", 3]', "{not json", "", '{"a": 1}'])
def test_a_bad_kb_import_file_creates_no_workspace(data_dir, tmp_path, content):
    (tmp_path / "bad.json").write_text(content)
    code, out, err = cli("kb", "import", "bad.json", "-d", "games", "--data-dir", data_dir,
                         "--db", "new.sqlite", cwd=tmp_path)
    only_error_line(code, err, "bad.json")
    for name in ("new.sqlite", "new.sqlite-wal", "new.sqlite-shm"):
        assert not (tmp_path / name).exists()


def test_a_bad_release_hints_file_creates_no_workspace(data_dir, tmp_path):
    release = tmp_path / "release" / "game"
    release.mkdir(parents=True)
    for f in (data_dir / "game").iterdir():
        if f.name != "hints.json":
            (release / f.name).symlink_to(f)
    (release / "hints.json").write_text('["", {"not": "a hint"}]')
    for args in (["kb", "list"], ["kb", "export", "out.json"],
                 ["kb", "import", str(data_dir / "game" / "hints.json")]):
        code, out, err = cli(*args, "-d", "games", "--data-dir", tmp_path / "release",
                             "--db", "new.sqlite", cwd=tmp_path)
        only_error_line(code, err, "hints.json", "expected a JSON list of hint strings")
        for name in ("new.sqlite", "new.sqlite-wal", "new.sqlite-shm", "out.json"):
            assert not (tmp_path / name).exists()


def test_a_bad_data_import_creates_no_workspace(tmp_path):
    _items_csv(tmp_path / "items.csv")
    (tmp_path / "sessions.jsonl").write_text('{"history": ["i1"], "target": "nope"}\n')
    code, out, err = cli("data", "import", "mine", "--sessions", "sessions.jsonl", "--items",
                         "items.csv", "--data-dir", tmp_path, "--db", "new.sqlite",
                         cwd=tmp_path)
    only_error_line(code, err, "unknown item id")
    assert not (tmp_path / "new.sqlite").exists()
    shutil.rmtree(tmp_path / "imported", ignore_errors=True)
