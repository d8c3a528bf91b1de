"""Your own data at real scale (issue 22): RecBole's atomic files, the stored dataset read a
session at a time, the earlier layout, and faults during an import.

Small generated data; the benchmark (benchmarks/bench_data_import.py) measures the sizes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from replies import as_listed

from re2llm_tui.data import imported as imp
from re2llm_tui.data import release, store
from re2llm_tui.data.dataset import Dataset
from re2llm_tui.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
N_ITEMS = 300
T0 = 1_600_000_000 - 1_600_000_000 % 86400 + 3600       # 01:00 UTC


def write_recbole_item(path: Path, n: int = N_ITEMS) -> Path:
    lines = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq"]
    lines += [f"{k}\tFilm number {k}\t{1950 + k % 60}\t{['Drama', 'Comedy Crime'][k % 2]}"
              for k in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_recbole_inter(path: Path, users: int = 12, per_day: int = 6, days: int = 2,
                        seed: int = 3) -> Path:
    """``user_id:token item_id:token rating:float timestamp:float`` (RecBole's ml-100k
    layout), rows shuffled as a dump may have them."""
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        for d in range(days):
            for k in range(per_day):
                rows.append(f"{u + 1}\t{rng.randrange(1, N_ITEMS + 1)}\t4.0\t"
                            f"{T0 + d * 86400 + 60 * k + u}.0")
    rng.shuffle(rows)
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                    + "\n".join(rows) + "\n")
    return path


reply_from_prompt = as_listed("1. Prefer films of the same genre.")


# --------------------------------------------------------------------------- RecBole

def test_recbole_atomic_files_import_and_run_recommend_and_evaluate(tmp_path, run_cli):
    from re2llm_tui.llm.scripted import register_scripted

    inter = write_recbole_inter(tmp_path / "ml.inter")
    item = write_recbole_item(tmp_path / "ml.item")
    base = ["--data-dir", tmp_path / "dd", "--db", tmp_path / "kb.sqlite"]
    code, out, err = run_cli("data", "import", "mlrb", "--sessions", inter, "--items", item,
                             "--noun", "movie", "--test-share", "0.5", "--seed", "2", "--json",
                             *base)
    assert code == 0, err
    res = json.loads(out)
    # 12 users x 2 days of 6 interactions: 24 sessions of 5 + the target
    assert res["sessions_format"] == "log" and sum(res["sessions"].values()) == 24
    assert res["notes"]["interactions"] == 144 and res["notes"]["short_days_dropped"] == 0
    ds = Dataset.resolve("mlrb", tmp_path / "dd")
    s = ds.first("test", 1)[0]
    assert len(s.history) == 5 and len(s.candidates) == 50
    assert s.prompt.startswith("I watched the following movies in order: Film number")
    # the .item's attribute columns (types dropped) make the session encoder's text
    title = s.history[0]
    k = int(title.rsplit(" ", 1)[1])
    assert Dataset.resolve("mlrb", tmp_path / "dd").item_text(title) == \
        f"{title}; release_year: {1950 + k % 60}; genre: {['Drama', 'Comedy Crime'][k % 2]}"

    register_scripted("scripted", reply_from_prompt)
    code, out, err = run_cli("recommend", "--dataset", "mlrb", "--model", "scripted/rb",
                             "--limit", "3", "--json", *base)
    assert code == 0, err
    rec = json.loads(out)
    assert rec["n"] == 3 and rec["done"] == 3 and rec["failed"] == 0
    code, out, err = run_cli("evaluate", "--dataset", "mlrb", "--content-only", "--json",
                             "--model", "no-such/model", *base)
    assert code == 0, err
    ev = json.loads(out)
    assert ev["n"] == 12 and list(ev["rows"]) == ["content ranker (no LLM)"]


def test_recbole_session_id_inter_gives_the_sessions_themselves(tmp_path):
    """Diginetica / Yoochoose prepared for RecBole: ``session_id:token``; a session runs
    across midnight and is not cut by day; one of three interactions is dropped."""
    rows = ["session_id:token\titem_id:token\ttimestamp:float"]
    for k in range(6):                              # session 7: 23:00 to 04:00
        rows.append(f"7\t{10 + k}\t{T0 + 86400 - 7200 + 3600 * k}")
    rows += [f"8\t{20 + k}\t{T0 + 60 * k}" for k in range(3)]     # too short
    rows += [f"9\t{30 + k}\t{T0 + 60 * k}" for k in (3, 1, 2, 0)]   # out of order
    inter = tmp_path / "digi.inter"
    inter.write_text("\n".join(rows) + "\n")
    res = imp.import_dataset("digi", inter, write_recbole_item(tmp_path / "digi.item"),
                             data_dir=tmp_path / "dd", test_share=1)
    assert res.counts == {"train": 0, "test": 2}
    assert res.notes == {"interactions": 13, "log_sessions": 3, "short_sessions_dropped": 1}
    a, b = Dataset.resolve("digi", tmp_path / "dd").sessions("test")
    assert a.history == tuple(f"Film number {10 + k}" for k in range(5))
    assert a.target == "Film number 15"
    assert b.history == ("Film number 30", "Film number 31", "Film number 32")
    assert b.target == "Film number 33"


# --------------------------------------------------------------------------- reading

def write_big(tmp_path: Path, n: int, name: str = "s.jsonl") -> tuple[Path, Path]:
    """``n`` JSON-lines sessions over N_ITEMS items (candidates drawn at import)."""
    rng = random.Random(n)
    path = tmp_path / name
    with open(path, "w") as f:
        for _ in range(n):
            ids = rng.sample(range(N_ITEMS), 6)
            f.write(json.dumps({"history": [f"i{k}" for k in ids[:-1]],
                                "target": f"i{ids[-1]}"}) + "\n")
    items = tmp_path / "items.csv"
    items.write_text("id,title\n" + "".join(f"i{k},Item number {k}\n"
                                            for k in range(N_ITEMS)))
    return path, items


def count_built(monkeypatch) -> list[int]:
    """A list whose sum is the number of sessions read from dataset files from now on."""
    built: list[int] = []
    original = store.SqliteSource._build

    def counting(self, rows):
        built.append(len(rows))
        return original(self, rows)

    monkeypatch.setattr(store.SqliteSource, "_build", counting)
    return built


def test_dataset_methods_read_only_the_sessions_they_return(tmp_path, monkeypatch):
    sessions, items = write_big(tmp_path, 3000)
    imp.import_dataset("big", sessions, items, data_dir=tmp_path / "dd", seed=5)
    built = count_built(monkeypatch)
    ds = Dataset.resolve("big", tmp_path / "dd")
    assert ds.count("train") == 2400 and ds.count("test") == 600 and sum(built) == 0
    one = ds.session("test-0123")
    assert one.id == "test-0123" and sum(built) == 1
    sample = ds.sample("train", 7, seed=1)
    assert sum(built) == 8
    page = ds.page("train", 1000, 50)
    assert [s.index for s in page] == list(range(1000, 1050)) and sum(built) == 58
    # the same sample as the one drawn from the whole list (results stay comparable)
    from re2llm_tui.evaluation.sampling import select_sessions

    whole = ds.sessions("train")
    assert [s.id for s in select_sessions(whole, sample=7, seed=1)] == [s.id for s in sample]
    assert ds.select("train", limit=3) == whole[:3]
    assert ds.by_ids(["train-0002", "test-9999", "nope", "train-0001"]) == [whole[2], whole[1]]
    # search: the title match of the Sessions screen, a page at a time
    hits, nxt = ds.search("train", "number 17", 0, 5)
    expect = [s for s in whole if any("number 17" in t.casefold()
                                      for t in (*s.history, s.target))]
    assert hits == expect[:5] and nxt == expect[4].index + 1
    more, _ = ds.search("train", "NUMBER 17", nxt, 1000)
    assert hits + more == expect
    with pytest.raises(DataError, match="no session 'test-0600'"):
        ds.session("test-0600")
    # the digests written while importing are those a later verification computes
    manifest = json.loads((ds.folder / "manifest.json").read_text())
    conn = sqlite3.connect(ds.folder / "dataset.sqlite")
    assert store.digests(conn, ("train", "test")) == {
        k: manifest[k] for k in ("candidates_sha256", "sessions_sha256", "items_sha256")}
    conn.close()


def test_one_session_command_reads_one_session_at_two_sizes(tmp_path, run_cli, monkeypatch):
    """``recommend --limit 1 --dry-run``, ``--sample 5`` and ``data info`` read what they
    use, at 500 and at 5,000 sessions alike (before: every command read every session)."""
    from re2llm_tui.llm.scripted import register_scripted

    register_scripted("scripted", reply_from_prompt)
    reads = {}
    for n in (500, 5000):
        folder = tmp_path / str(n)
        folder.mkdir()
        sessions, items = write_big(folder, n)
        base = ["--dataset", f"n{n}", "--data-dir", folder / "dd", "--db", folder / "kb.sqlite"]
        assert run_cli("data", "import", f"n{n}", "--sessions", sessions, "--items", items,
                       "--data-dir", folder / "dd", "--db", folder / "kb.sqlite")[0] == 0
        built = count_built(monkeypatch)
        got = []
        for args in (["data", "info"],
                     ["recommend", "--limit", "1", "--dry-run", "--model", "scripted/x"],
                     ["recommend", "--sample", "5", "--seed", "1", "--dry-run", "--model",
                      "scripted/x"]):
            before = sum(built)
            code, out, err = run_cli(*args, *base)
            assert code == 0, (args, err)
            got.append(sum(built) - before)
        reads[n] = got
        monkeypatch.undo()
        register_scripted("scripted", reply_from_prompt)
    assert reads == {500: [0, 1, 5], 5000: [0, 1, 5]}


def test_a_long_line_is_one_line_and_big_inputs_are_not_size_capped(tmp_path, monkeypatch):
    sessions, items = write_big(tmp_path, 50)
    monkeypatch.setattr(imp, "LINE_LIMIT", 200)
    # the file is larger than the whole-file bound: streamed, it imports all the same
    from re2llm_tui import safe_files

    monkeypatch.setattr(safe_files, "IMPORT_INPUT_LIMIT", 100)
    monkeypatch.setattr(imp, "IMPORT_INPUT_LIMIT", 100)
    res = imp.import_dataset("fine", sessions, items, data_dir=tmp_path / "dd")
    assert sum(res.counts.values()) == 50
    long = tmp_path / "long.jsonl"
    long.write_text(sessions.read_text() + json.dumps(
        {"history": ["i1"] * 100, "target": "i2"}) + "\n")
    with pytest.raises(DataError, match=r"long.jsonl line 51: longer than"):
        imp.import_dataset("long", long, items, data_dir=tmp_path / "dd")
    assert sorted(p.name for p in (tmp_path / "dd" / "imported").iterdir()) == ["fine"]


# --------------------------------------------------------------------------- compatibility

def test_an_import_of_the_earlier_layout_still_loads(tmp_path):
    """manifest.json (format 1) + sessions.jsonl + items.jsonl: the same sessions and
    answers through the same Dataset methods."""
    sessions, items = write_big(tmp_path, 40)
    imp.import_dataset("new", sessions, items, data_dir=tmp_path / "dd", seed=4)
    new = tmp_path / "dd" / "imported" / "new"
    old = tmp_path / "dd" / "imported" / "old"
    old.mkdir()
    manifest = json.loads((new / "manifest.json").read_text())
    conn = sqlite3.connect(new / "dataset.sqlite")
    lines = [store._session_line(*r) for sp in ("train", "test") for r in conn.execute(
        "SELECT split, idx, history, target, candidates, source, user FROM sessions "
        "WHERE split=? ORDER BY idx", [sp])]
    item_lines = [store._items_line(r) for r in conn.execute(
        "SELECT id, title, text, attributes FROM items ORDER BY ord")]
    conn.close()
    (old / "sessions.jsonl").write_text("".join(lines))
    (old / "items.jsonl").write_text("".join(item_lines))
    for key in ("stats", "store", "items_with_attributes"):
        manifest.pop(key)
    (old / "manifest.json").write_text(json.dumps({**manifest, "format": 1, "name": "old"}))
    a, b = Dataset.resolve("new", tmp_path / "dd"), Dataset.resolve("old", tmp_path / "dd")
    strip = lambda ss: [(s.id, s.history, s.candidates, s.target, s.prompt) for s in ss]  # noqa: E731
    for split in ("train", "test"):
        assert strip(a.sessions(split)) == strip(b.sessions(split))
        assert a.count(split) == b.count(split)
    assert strip(a.sample("train", 5, 2)) == strip(b.sample("train", 5, 2))
    assert strip([a.session("test-0003")]) == strip([b.session("test-0003")])
    assert imp.session_item_ids(a, "train-0004") == imp.session_item_ids(b, "train-0004")
    from re2llm_tui.data.info import dataset_overview

    assert dataset_overview(a)["splits"] == dataset_overview(b)["splits"]


# --------------------------------------------------------------------------- faults

def _cli(*args) -> list[str]:
    return [sys.executable, "-c", "from re2llm_tui.cli import entry; entry()", *map(str, args)]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_a_kill_during_import_leaves_nothing_visible(tmp_path):
    sessions, items = write_big(tmp_path, 60_000)
    dd = tmp_path / "dd"
    cmd = _cli("data", "import", "killed", "--sessions", sessions, "--items", items,
               "--data-dir", dd, "--db", tmp_path / "kb.sqlite")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    root = dd / "imported"
    try:
        while time.monotonic() < deadline:     # kill it while it writes its files
            tmp = list(root.glob(".killed.importing-*")) if root.exists() else []
            if tmp and any(p.name.endswith(".sqlite") for p in tmp[0].iterdir()):
                break
            assert proc.poll() is None, "the import finished before it could be killed"
            time.sleep(0.02)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == []
    out = subprocess.run(_cli("data", "info", "--dataset", "killed", "--data-dir", dd),
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "unknown dataset 'killed'" in out.stderr
    assert out.stderr.count("\n") == 1
    # the next import removes the hidden leftovers of the killed one
    small, _ = write_big(tmp_path, 30, "small.jsonl")
    imp.import_dataset("other", small, items, data_dir=dd)
    assert sorted(p.name for p in root.iterdir()) == ["other"]


def test_disk_full_during_import_is_one_line_and_leaves_nothing(tmp_path):
    """The file-size limit stands in for a full disk: writes fail with EFBIG/ENOSPC."""
    sessions, items = write_big(tmp_path, 5000)
    dd = tmp_path / "dd"
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
            "from re2llm_tui.cli import entry\n"
            "sys.argv = ['re2llm-tui'] + sys.argv[1:]\n"
            "entry()\n")
    out = subprocess.run([sys.executable, "-c", code, "data", "import", "full", "--sessions",
                          str(sessions), "--items", str(items), "--data-dir", str(dd),
                          "--db", str(tmp_path / "kb.sqlite")],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out
    assert out.stderr.startswith("re2llm-tui: error:") and out.stderr.count("\n") == 1, out
    assert "nothing was imported" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in (dd / "imported").iterdir()) == []


# --------------------------------------------------------------------------- the TUI

async def test_the_sessions_screen_pages_a_large_split(tmp_path, monkeypatch):
    from textual.widgets import DataTable, Input

    from re2llm_tui.tui.app import make_app

    sessions, items = write_big(tmp_path, 1400)
    imp.import_dataset("paged", sessions, items, data_dir=tmp_path / "dd", test_share=0.0)
    monkeypatch.chdir(tmp_path)
    built = count_built(monkeypatch)
    app = make_app("paged", db="kb.sqlite", data_dir=tmp_path / "dd", split="train")
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(DataTable)
        assert table.row_count == 500 and sum(built) <= 501     # one page, not 1,400
        assert table.get_row_at(0)[0] == "train-0000"
        await pilot.press("right_square_bracket")
        assert table.get_row_at(0)[0] == "train-0500" and table.row_count == 500
        await pilot.press("right_square_bracket")
        assert table.row_count == 400
        await pilot.press("left_square_bracket")
        assert table.get_row_at(0)[0] == "train-0500"
        # search: a page of matches from the start of the split
        ds = Dataset.resolve("paged", tmp_path / "dd")
        expect = [s.id for s in ds.sessions("train")
                  if any("number 42" in t.casefold() for t in (*s.history, s.target))]
        app.screen.query_one("#search", Input).value = "Number 42"
        await pilot.press("slash")
        await pilot.press("enter")
        await pilot.pause()
        assert [r.id for r in app.screen._visible()] == expect[:500]
