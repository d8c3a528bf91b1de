"""``data import``: your own session data as a dataset (issue 13, part 2).

Generated files for each format (JSON lines, JSON list, release-format pickle, interaction
logs; CSV, TSV, JSON lines and HetRec items) and for each bad input; the release's pickled
movie test split (4,790 sessions) where the data is on this machine.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pytest
from replies import as_listed

from re2llm_tui.data import imported as imp
from re2llm_tui.data import release
from re2llm_tui.data.dataset import Dataset
from re2llm_tui.errors import DataError, UserError

N_ITEMS = 150


# --------------------------------------------------------------------------- generated files

def items_rows(n: int = N_ITEMS) -> list[dict]:
    return [{"id": f"i{k}", "title": f"Item number {k}", "author": f"Author {k % 7}",
             "genre": ["fantasy", "crime", "poetry"][k % 3]} for k in range(n)]


def write_items_csv(path: Path, n: int = N_ITEMS, sep: str = ",") -> Path:
    lines = [sep.join(("item_id", "title", "author", "genre"))]
    lines += [sep.join((r["id"], r["title"], r["author"], r["genre"])) for r in items_rows(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_items_jsonl(path: Path, n: int = N_ITEMS) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items_rows(n)))
    return path


def session_rows(n: int = 40, seed: int = 1, hist: int = 4) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = rng.sample(range(N_ITEMS), hist + 1)
        out.append({"history": [f"i{k}" for k in ids[:-1]], "target": f"i{ids[-1]}"})
    return out


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def do_import(tmp_path, name="shelf", sessions=None, items=None, **kw):
    sessions = sessions or write_jsonl(tmp_path / "sessions.jsonl", session_rows())
    items = items or write_items_csv(tmp_path / "items.csv")
    kw.setdefault("data_dir", tmp_path / "dd")
    return imp.import_dataset(name, sessions, items, **kw)


def imported_root(tmp_path) -> Path:
    return tmp_path / "dd" / "imported"


def left_behind(tmp_path) -> list[str]:
    root = imported_root(tmp_path)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# --------------------------------------------------------------------------- formats

def test_jsonl_sessions_csv_items_make_a_dataset(tmp_path):
    res = do_import(tmp_path, noun="book", seed=3, test_share=0.25)
    assert res.counts == {"train": 30, "test": 10} and res.drawn == 40
    ds = Dataset.resolve("shelf", tmp_path / "dd")
    assert ds.imported and ds.name == "shelf" and ds.folder == imported_root(tmp_path) / "shelf"
    assert ds.root == tmp_path / "dd"
    assert {p.name for p in ds.folder.iterdir()} == {"manifest.json", "dataset.sqlite"}
    train, test = ds.sessions("train"), ds.sessions("test")
    assert [s.id for s in test[:2]] == ["test-0000", "test-0001"]
    for s in train + test:
        assert len(s.candidates) == 50 and len(set(s.candidates)) == 50
        assert s.candidates[s.target_index] == s.target
        assert not set(s.history) & (set(s.candidates) - {s.target})   # negatives outside
        assert s.domain == "shelf" and s.root == str(ds.root)
        assert s.prompt.startswith("I read the following books in order: "
                                   + "; ".join(s.history) + ". Based on these interactions, "
                                   "recommend a book for me to read next from a candidate "
                                   "set: " + "; ".join(s.candidates) + ". Please recommend")
    assert ds.session("test-0003") == test[3]
    # a name means a folder only where the data folder is known: no process-wide memory
    assert release.canonical_domain("Shelf", tmp_path / "dd") == "shelf"
    with pytest.raises(DataError, match="unknown dataset"):
        release.canonical_domain("Shelf")
    with pytest.raises(DataError, match="not a release dataset"):
        release.load_sessions("shelf", "test", tmp_path / "dd")
    assert not hasattr(release, "_RESOLVED_IMPORTS")
    # the item text of the session encoder: title plus attribute columns
    from re2llm_tui.data.items import item_text

    title = test[0].history[0]
    k = title.rsplit(" ", 1)[1]
    assert item_text("shelf", title, str(ds.root)) == \
        f"{title}; author: Author {int(k) % 7}; genre: {['fantasy', 'crime', 'poetry'][int(k) % 3]}"


def test_seeded_negatives_are_frozen_and_reproducible(tmp_path):
    a = do_import(tmp_path, "one", seed=7)
    b = do_import(tmp_path, "two", seed=7)
    c = do_import(tmp_path, "three", seed=8)
    assert a.candidates_sha256 == b.candidates_sha256 != c.candidates_sha256
    manifest = json.loads((imported_root(tmp_path) / "one" / "manifest.json").read_text())
    assert manifest["candidates_sha256"] == a.candidates_sha256 and manifest["seed"] == 7
    one = Dataset.resolve("one", tmp_path / "dd").sessions("test")
    two = Dataset.resolve("two", tmp_path / "dd").sessions("test")
    assert [s.candidates for s in one] == [s.candidates for s in two]
    # editing the stored candidates is detected on the next load (in a fresh process: the
    # file's stamp changed, so its digests are computed again)
    import sqlite3
    import subprocess
    import sys

    path = imported_root(tmp_path) / "one" / "dataset.sqlite"
    conn = sqlite3.connect(path)
    (cands,) = conn.execute("SELECT candidates FROM sessions WHERE split='test' AND idx=0"
                            ).fetchone()
    cands = json.loads(cands)
    cands[1], cands[2] = cands[2], cands[1]
    conn.execute("UPDATE sessions SET candidates=? WHERE split='test' AND idx=0",
                 [json.dumps(cands)])
    conn.commit()
    conn.close()
    code = ("import sys; from re2llm_tui.data.dataset import Dataset; "
            "from re2llm_tui.errors import DataError\n"
            "try:\n    Dataset.resolve('one', sys.argv[1]).session('test-0003')\n"
            "except DataError as e:\n    print(e); sys.exit(3)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dd")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and "changed since the import" in proc.stdout, proc
    with pytest.raises(DataError, match="changed since the import"):   # this process too
        Dataset.resolve("one", tmp_path / "dd").session("test-0003")


def test_given_candidates_splits_and_repairs(tmp_path):
    rows = session_rows(6)
    rng = random.Random(5)
    for k, r in enumerate(rows):
        own = {*r["history"], r["target"]}
        negs = [f"i{x}" for x in rng.sample(range(N_ITEMS), 60) if f"i{x}" not in own][:49]
        if k == 0:                       # the full set, target included
            r["candidates"] = [*negs[:20], r["target"], *negs[20:]]
        elif k == 1:                     # the negatives only: the target is inserted
            r["candidates"] = negs
        elif k == 2:                     # a negative given twice: the repeat is replaced
            r["candidates"] = [r["target"], *negs[:48], negs[0]]
        r["split"] = "test" if k % 2 else "train"
    res = do_import(tmp_path, sessions=write_jsonl(tmp_path / "s.jsonl", rows), test_share=0.0)
    assert res.counts == {"train": 3, "test": 3}          # the file's splits win
    assert res.target_inserted == 1 and res.repeats_replaced == 1 and res.drawn == 3
    ds = Dataset.resolve("shelf", tmp_path / "dd")
    s0 = ds.session("train-0000")
    assert s0.target_index == 20 and s0.candidates[0] == "Item number " + rows[0]["candidates"][0][1:]
    s2 = ds.session("train-0001")                          # rows[2]: the third train row
    assert len(set(s2.candidates)) == 50 and s2.target_index == 0
    s1 = ds.session("test-0000")
    assert s1.target in s1.candidates and len(s1.candidates) == 50


def test_same_title_candidates_are_replaced_and_titles_stay_plain(tmp_path):
    items = tmp_path / "items.tsv"
    rows = items_rows()
    rows[3]["title"] = rows[4]["title"] = "Hamlet"        # two items, one title
    items.write_text("id\ttitle\n" + "".join(f"{r['id']}\t{r['title']}\n" for r in rows))
    negs = [f"i{k}" for k in range(3, 52)]                # holds i3 and i4
    sess = [{"history": ["i100", "i101"], "target": "i102", "candidates": negs}]
    res = do_import(tmp_path, sessions=write_jsonl(tmp_path / "s.jsonl", sess), items=items,
                    test_share=1)
    assert res.title_clashes_replaced == 1 and res.shared_titles == 0
    (s,) = Dataset.resolve("shelf", tmp_path / "dd").sessions("test")
    assert s.candidates.count("Hamlet") == 1 and len(set(s.candidates)) == 50


def test_json_list_sessions_and_jsonl_items(tmp_path):
    sessions = tmp_path / "s.json"
    sessions.write_text(json.dumps(session_rows(10)))
    res = do_import(tmp_path, sessions=sessions,
                    items=write_items_jsonl(tmp_path / "items.jsonl"), test_share=0.5,
                    n_candidates=20)
    assert res.counts == {"train": 5, "test": 5} and res.items_format == "jsonl"
    s = Dataset.resolve("shelf", tmp_path / "dd").sessions("train")[0]
    assert len(s.candidates) == 20
    assert s.prompt.startswith("I interacted with the following items in order: ")


def test_release_format_pickle_is_read_through_the_restricted_unpickler(tmp_path):
    rng = random.Random(2)
    data = []
    for _ in range(12):
        ids = rng.sample(range(N_ITEMS), 54)
        cands = ids[3:53]
        data.append((ids[:3], cands[17], cands))
    path = tmp_path / "example_test.txt"
    path.write_bytes(pickle.dumps(data, protocol=4))
    items = tmp_path / "items.csv"
    items.write_text("id,title\n" + "".join(f"{k},Film {k}\n" for k in range(N_ITEMS)))
    res = do_import(tmp_path, sessions=path, items=items, noun="movie", test_share=1)
    assert res.sessions_format == "pickle" and res.counts == {"train": 0, "test": 12}
    assert res.drawn == 0
    sessions = Dataset.resolve("shelf", tmp_path / "dd").sessions("test")
    for s, (h, t, c) in zip(sessions, data):
        assert s.history == tuple(f"Film {k}" for k in h)
        assert s.candidates == tuple(f"Film {k}" for k in c)      # the given order, kept
        assert s.target_index == 17
        assert s.prompt.startswith("I watched the following movies in order: ")
    assert Dataset.resolve("shelf", tmp_path / "dd").sessions("train") == []


def test_hetrec_movies_dat_items(tmp_path):
    folder = tmp_path / "hetrec"
    folder.mkdir()
    lines = ["id\ttitle\timdbID\tspanishTitle\tyear"]
    lines += [f"{k}\tFilm {k}\t{k:07d}\tPelícula {k}\t{1950 + k % 50}" for k in range(1, N_ITEMS)]
    lines.append(f"{N_ITEMS}\t\"Family Guy\"\t0182576\tPadre de familia\t1999")
    (folder / "movies.dat").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (folder / "movie_genres.dat").write_text("movieID\tgenre\n1\tComedy\n1\tDrama\n")
    sess = [{"history": ["1", "2", "3"], "target": str(N_ITEMS)}] * 3
    res = do_import(tmp_path, sessions=write_jsonl(tmp_path / "s.jsonl", sess),
                    items=folder / "movies.dat", noun="movie", test_share=1)
    assert res.items_format == "hetrec"
    s = Dataset.resolve("shelf", tmp_path / "dd").sessions("test")[0]
    assert s.target == "Family Guy"                     # unquoted, as in the release
    from re2llm_tui.data.items import item_text

    assert item_text("shelf", "Film 1", str(tmp_path / "dd")) == \
        "Film 1 (1951); genres: Comedy, Drama"


def write_log(path: Path, rows: list[tuple], header: str | None = "user,item,timestamp",
              sep: str = ",") -> Path:
    lines = [header] if header else []
    lines += [sep.join(str(x) for x in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


DAY = 86400
T0 = 1_600_000_000 - 1_600_000_000 % DAY + 3600        # 01:00 UTC on some day


def test_interaction_logs_become_sessions_by_the_release_rule(tmp_path):
    rows = [
        # user a, day 1: five interactions -> history of four, the last the target
        *[("a", f"i{k}", T0 + 60 * k) for k in (5, 1, 2, 3, 4)],
        # user a, day 2: three interactions -> not more than three: dropped
        *[("a", f"i{k}", T0 + DAY + 60 * k) for k in (7, 8, 9)],
        # user b, day 1: four interactions, listed out of order
        ("b", "i13", T0 + 400), ("b", "i10", T0 + 100), ("b", "i11", T0 + 200),
        ("b", "i12", T0 + 300),
        # user c: four interactions across midnight -> two days of two: dropped
        *[("c", f"i{20 + k}", T0 + DAY - 3600 - 7200 + 3600 * k) for k in range(4)],
    ]
    log = write_log(tmp_path / "log.csv", rows)
    res = do_import(tmp_path, sessions=log, test_share=0)
    assert res.sessions_format == "log" and res.counts == {"train": 2, "test": 0}
    assert res.notes["short_days_dropped"] == 3
    a, b = Dataset.resolve("shelf", tmp_path / "dd").sessions("train")
    assert a.history == ("Item number 1", "Item number 2", "Item number 3", "Item number 4")
    assert a.target == "Item number 5"
    assert b.history == ("Item number 10", "Item number 11", "Item number 12")
    assert b.target == "Item number 13"


def test_logs_in_milliseconds_iso_dates_and_headerless_tsv(tmp_path):
    ms = [("u1", f"i{k}", (T0 + 60 * k) * 1000) for k in range(6)]
    res = do_import(tmp_path, "ms", sessions=write_log(tmp_path / "ms.tsv", ms,
                                                       "userId\tmovieID\ttimestamp", "\t"))
    assert sum(res.counts.values()) == 1
    iso = [("u1", f"i{k}", f"2021-03-04T10:0{k}:00") for k in range(5)]
    res = do_import(tmp_path, "iso", sessions=write_log(tmp_path / "iso.csv", iso))
    assert sum(res.counts.values()) == 1
    bare = [("u1", f"i{k}", T0 + k) for k in range(5)]
    res = do_import(tmp_path, "bare", sessions=write_log(tmp_path / "bare.tsv", bare, None, "\t"))
    assert sum(res.counts.values()) == 1


def test_default_location_is_data_imported_under_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sessions = write_jsonl(tmp_path / "s.jsonl", session_rows(5))
    imp.import_dataset("mine", sessions, write_items_csv(tmp_path / "items.csv"))
    assert (tmp_path / "data" / "imported" / "mine" / "manifest.json").is_file()
    ds = Dataset.resolve("mine")                       # no --data-dir: found there
    assert ds.folder == tmp_path / "data" / "imported" / "mine"


def test_prompt_wording_is_the_releases(data_dir):
    """``movie`` and ``video game`` rebuild the release prompts byte for byte."""
    for name, noun, split in (("movies", "movie", "test"), ("games", "video game", "train")):
        checked = 0
        for s in Dataset.resolve(name, data_dir).sessions(split):
            if release.unescape(s.prompt) != s.prompt:
                continue   # entities, doubled spaces: the release's prompt keeps them raw
            assert imp.build_prompt(noun, list(s.history), list(s.candidates)) == s.prompt
            checked += 1
        assert checked >= 10, (name, checked)


# --------------------------------------------------------------------------- the KB and the CLI

def test_kb_of_an_imported_dataset_starts_empty(tmp_path):
    from re2llm_tui.kb import KnowledgeBase
    from re2llm_tui.kb import store as kb
    from re2llm_tui.store.workspace import open_workspace

    do_import(tmp_path)
    db = open_workspace(tmp_path / "kb.sqlite")
    ds = Dataset.resolve("shelf", tmp_path / "dd")
    handle = KnowledgeBase(db, ds)
    assert handle.hints() == [] and handle.actions()[1] == [(0, "")]
    assert ds.release_hints() == [""]
    hint = handle.add("Prefer books by an author the reader already read.")
    assert hint.id == 1 and [h.id for h in kb.KnowledgeBase(db, ds).hints()] == [1]
    assert kb.KnowledgeBase(db, ds).history()[0]["action"] == "add"
    with pytest.raises(UserError, match="unknown dataset"):
        Dataset.resolve("nosuchset", tmp_path / "dd")
    # below the edge a name is not enough: the KB wants the handle (it knows its folder)
    with pytest.raises(TypeError, match="expected a Dataset"):
        kb.KnowledgeBase(db, "shelf")


def test_cli_import_info_and_commands_on_an_imported_dataset(tmp_path, run_cli):
    from re2llm_tui.llm.scripted import register_scripted

    sessions = write_jsonl(tmp_path / "s.jsonl", session_rows(12))
    items = write_items_csv(tmp_path / "items.csv")
    base = ["--data-dir", tmp_path / "dd", "--db", tmp_path / "kb.sqlite"]
    code, out, err = run_cli("data", "import", "shelf", "--sessions", sessions, "--items", items,
                             "--noun", "book", "--test-share", "0.5", "--seed", "4", *base)
    assert code == 0, err
    assert "imported shelf: 6 train + 6 test sessions" in " ".join(out.split())
    code, out, err = run_cli("data", "info", "--dataset", "shelf", "--json", *base)
    assert code == 0, err
    info = json.loads(out)
    assert info["splits"]["test"]["sessions"] == 6
    assert info["splits"]["test"]["target_in_candidates"] == 1.0
    assert info["splits"]["train"]["candidates_min"] == 50
    assert info["import"]["noun"] == "book" and "same sessions" in info["import"]["workspace"]
    code, out, err = run_cli("data", "info", "--dataset", "shelf", *base)
    assert code == 0 and "100.0%" in out and "sha256" in out

    register_scripted("scripted", as_listed("1. Prefer books by the same author."))
    code, out, err = run_cli("kb", "add", "Prefer books by the same author.",
                             "--dataset", "shelf", *base)
    assert code == 0, err
    code, out, err = run_cli("recommend", "--dataset", "shelf", "--model", "scripted/imp",
                             "--limit", "3", *base)
    assert code == 0, err
    assert "shelf/test" in out
    code, out, err = run_cli("train", "--dataset", "shelf", "--model", "scripted/imp",
                             "--steps", "32", "--limit", "3", "--local-workers", "1", *base)
    assert code == 0, err


async def test_the_tui_opens_an_imported_dataset(tmp_path, monkeypatch):
    from textual.widgets import DataTable

    from re2llm_tui.tui.app import make_app
    from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

    monkeypatch.chdir(tmp_path)
    do_import(tmp_path, test_share=0.25)
    app = make_app("shelf", db="kb.sqlite", data_dir=tmp_path / "dd", split="train")
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(DataTable)
        assert table.row_count == 30
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SessionDetailScreen)


async def test_the_tui_opens_a_test_only_import_on_its_test_split(tmp_path, monkeypatch):
    """An imported test set (--test-share 1) has no train sessions: the app opens on test
    rather than on an empty train list; an explicit --split still wins."""
    from textual.widgets import DataTable

    from re2llm_tui.tui.app import make_app

    monkeypatch.chdir(tmp_path)
    do_import(tmp_path, test_share=1)
    app = make_app("shelf", db="kb.sqlite", data_dir=tmp_path / "dd")
    assert app.config.split == "test"
    async with app.run_test(size=(120, 40)):
        assert app.screen.query_one(DataTable).row_count == 40
    assert make_app("shelf", db="kb.sqlite", data_dir=tmp_path / "dd",
                    split="train").config.split == "train"


# --------------------------------------------------------------------------- bad input

def _bad_cases(tmp_path: Path) -> dict[str, tuple[list, str]]:
    """name -> (import arguments after NAME, expected words of the one-line error)."""
    items = write_items_csv(tmp_path / "items.csv")
    good = write_jsonl(tmp_path / "good.jsonl", session_rows(8))

    def sessions(name, text, binary=False):
        path = tmp_path / name
        path.write_bytes(text) if binary else path.write_text(text)
        return path

    def items_file(name, text):
        path = tmp_path / name
        path.write_text(text)
        return path

    rows = session_rows(3)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    cases = {
        "malformed JSONL": (sessions("a.jsonl", json.dumps(rows[0]) + "\n{\"history\": [\n"),
                            "line 2: invalid JSON"),
        "missing target": (sessions("b.jsonl", json.dumps({"history": ["i1"]}) + "\n"),
                           "needs history and target"),
        "unknown key": (sessions("c.jsonl", json.dumps({**rows[0], "candiates": []}) + "\n"),
                        "unknown key 'candiates'"),
        "empty session": (sessions("d.jsonl", json.dumps({"history": [], "target": "i1"}) + "\n"),
                          "empty session"),
        "unknown history id": (sessions("e.jsonl", json.dumps(
            {"history": ["i1", "nope"], "target": "i2"}) + "\n"), "unknown item id 'nope'"),
        "unknown candidate id": (sessions("f.jsonl", json.dumps(
            {**rows[0], "candidates": ["zz"] * 49}) + "\n"), "unknown item id 'zz'"),
        "wrong candidate count": (sessions("g.jsonl", json.dumps(
            {**rows[0], "candidates": [rows[0]["target"], "i1"]}) + "\n"), "expected 50"),
        "bad split": (sessions("h.jsonl", json.dumps({**rows[0], "split": "valid"}) + "\n"),
                      "unknown split"),
        "id not a string": (sessions("i.jsonl", json.dumps(
            {"history": [{"x": 1}], "target": "i1"}) + "\n"), "must be a string or an integer"),
        "empty sessions file": (sessions("j.jsonl", "\n\n"), "file is empty"),
        "binary sessions": (sessions("k.bin", b"\x00\xff\xfe garbage", True), "not UTF-8"),
        "hostile pickle": (sessions("l.pkl", pickle.dumps([Evil()]), True),
                           "not a safe session pickle"),
        "pickle of the wrong shape": (sessions("m.pkl", pickle.dumps([(1, 2)]), True),
                                      "is not (item_ids, target_id"),
        "pickle with an empty session": (sessions("n.pkl", pickle.dumps(
            [([], 1, list(range(50)))]), True), "empty session"),
        "log bad timestamp": (sessions("o.csv", "user,item,timestamp\nu,i1,yesterday\n"),
                              "neither a Unix time nor an ISO date"),
        "log without sessions": (sessions("p.csv", "user,item,timestamp\nu,i1,1\nu,i2,2\n"),
                                 "no user has more than 3 interactions"),
        "log without columns": (sessions("q.csv", "a,b\n1,2\n"), "user, item and timestamp"),
        "missing sessions file": (tmp_path / "absent.jsonl", "file not found"),
    }
    out = {k: (["--sessions", v[0], "--items", items], v[1]) for k, v in cases.items()}
    item_cases = {
        "duplicate item id": ("id,title\n1,A\n1,B\n", "duplicate item id '1'"),
        "no title column": ("id,name_of_thing\n1,A\n", "needs an id and a title column"),
        "wrong field count": ("id,title,year\n1,A\n", "2 fields, the header has 3"),
        "empty title": ("id,title\n1,\n", "has no title"),
        "items JSONL not objects": ("[1, 2]\n", "expected an object with id and title"),
    }
    for k, (text, needle) in item_cases.items():
        out[k] = (["--sessions", good, "--items", items_file(f"{len(out)}.csv", text)], needle)
    out["too few items for negatives"] = (
        ["--sessions", good, "--items", items, "--candidates", "200"], "to draw 199 negatives")
    out["release name"] = (["--sessions", good, "--items", items], "taken by the release")
    out["bad name"] = (["--sessions", good, "--items", items], "use 1-64 letters")
    out["bad test share"] = (["--sessions", good, "--items", items, "--test-share", "1.5"],
                             "--test-share must be between 0 and 1")
    out["bad candidates"] = (["--sessions", good, "--items", items, "--candidates", "1"],
                             "--candidates must be between 2 and 1000")
    out["bad noun"] = (["--sessions", good, "--items", items, "--noun", "<b>"], "--noun")
    return out


NAMES = {"release name": "movies", "bad name": "my data"}


def test_every_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, run_cli):
    ws = tmp_path / "kb.sqlite"
    for case, (args, needle) in _bad_cases(tmp_path).items():
        name = NAMES.get(case, "shelf")
        code, out, err = run_cli("data", "import", name, *args, "--data-dir", tmp_path / "dd",
                                 "--db", ws)
        assert code == 2, (case, out, err)
        assert err.startswith("re2llm-tui: error:") and err.count("\n") == 1, (case, err)
        assert needle in err, (case, err)
        assert "Traceback" not in err and out == "", (case, out)
        assert left_behind(tmp_path) == [], case
    assert not (tmp_path / "pwned").exists()            # the hostile pickle never ran


def test_duplicate_name_and_other_imports_in_the_workspace(tmp_path, run_cli):
    ws = tmp_path / "kb.sqlite"
    items = write_items_csv(tmp_path / "items.csv")
    a = write_jsonl(tmp_path / "a.jsonl", session_rows(8, seed=1))
    b = write_jsonl(tmp_path / "b.jsonl", session_rows(8, seed=2))
    base = ["--items", items, "--data-dir", tmp_path / "dd", "--db", ws]
    assert run_cli("data", "import", "shelf", "--sessions", a, *base)[0] == 0
    before = json.loads((imported_root(tmp_path) / "shelf" / "manifest.json").read_text())
    code, _, err = run_cli("data", "import", "SHELF", "--sessions", b, *base)
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    assert json.loads((imported_root(tmp_path) / "shelf" / "manifest.json").read_text()) == before
    # the folder deleted, other sessions under the same name: the workspace refuses them
    import shutil

    shutil.rmtree(imported_root(tmp_path) / "shelf")
    code, _, err = run_cli("data", "import", "shelf", "--sessions", b, *base)
    assert code == 2 and "different import named 'shelf'" in err
    assert left_behind(tmp_path) == []
    # the same sessions again are fine (same frozen candidates: same seed)
    assert run_cli("data", "import", "shelf", "--sessions", a, *base)[0] == 0
    again = json.loads((imported_root(tmp_path) / "shelf" / "manifest.json").read_text())
    assert again["sessions_sha256"] == before["sessions_sha256"]
    assert again["candidates_sha256"] == before["candidates_sha256"]


def test_an_interrupted_import_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(imp.os, "rename", boom)
    with pytest.raises(KeyboardInterrupt):
        do_import(tmp_path)
    assert left_behind(tmp_path) == []
    # a stale temporary folder of a killed import is removed by the next one
    monkeypatch.undo()
    stale = imported_root(tmp_path) / ".shelf.importing-999999999-0000abcd"
    stale.mkdir(parents=True)
    do_import(tmp_path)
    assert left_behind(tmp_path) == ["shelf"]


def test_every_command_finds_the_import_by_data_dir_in_a_fresh_process(tmp_path, run_cli,
                                                                      monkeypatch):
    do_import(tmp_path)
    base = ["--dataset", "shelf", "--data-dir", tmp_path / "dd", "--db", tmp_path / "kb.sqlite"]
    bad_model = ["--model", "nonexistent/x"]
    for args in (["data", "info"], ["kb", "list"], ["recommend", *bad_model],
                 ["explore", *bad_model], ["train", *bad_model], ["evaluate", *bad_model],
                 ["run", *bad_model]):
        code, out, err = run_cli(*args, *base)
        assert "unknown dataset" not in err, (args, err)
        if args[0] in ("data", "kb"):
            assert code == 0, (args, err)
        else:   # the dataset passed: the next check (the model) speaks
            assert code == 2 and "nonexistent/x" in err, (args, err)


def test_unknown_imported_name_is_one_line(tmp_path, run_cli):
    code, _, err = run_cli("data", "info", "--dataset", "nosuchset", "--data-dir", tmp_path)
    assert code == 2 and "unknown dataset 'nosuchset'" in err and err.count("\n") == 1
    with pytest.raises(DataError, match="unknown dataset"):
        release.canonical_domain("no such set")


# --------------------------------------------------------------------------- the release data

def test_release_movie_test_pickle_imports_into_4790_sessions(data_dir, tmp_path, run_cli):
    """The real-data check: example_test.txt (4,790 pickled sessions, ids of movies.dat)."""
    movie = data_dir / "movie"
    code, out, err = run_cli("data", "import", "movielens", "--sessions",
                             movie / "example_test.txt", "--items", movie / "movies.dat",
                             "--noun", "movie", "--test-share", "1",
                             "--data-dir", tmp_path, "--db", tmp_path / "kb.sqlite", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["sessions"] == {"train": 0, "test": 4790} and res["drawn"] == 0
    # the same sessions, candidates and hashes as the in-memory import of commit 6df3025
    # (before the SQLite dataset file, issue 22): pinned from that import of these files
    assert res["candidates_sha256"] == \
        "f6230bc1cfd0e336a0c6970e540897456a38a4184fc913c2099271be2a92ec65"
    assert res["sessions_sha256"] == \
        "14c192a08a8385d1a7e5d5ddf771e6428f4e438eaf2d0de00ce07d688fd4f7fb"
    manifest = json.loads((tmp_path / "imported" / "movielens" / "manifest.json").read_text())
    assert manifest["items_sha256"] == \
        "a6660f28d70aba6ca642b58113029f02d6c2d935f134d7b3c14c25550f3cc766"
    code, out, err = run_cli("data", "info", "--dataset", "movielens", "--data-dir", tmp_path,
                             "--db", tmp_path / "kb.sqlite", "--json")
    assert code == 0, err
    test = json.loads(out)["splits"]["test"]
    assert test["sessions"] == 4790 and test["target_in_candidates"] == 1.0
    assert test["candidates_min"] == test["candidates_max"] == 50
    assert json.loads(out)["splits"]["train"]["sessions"] == 0
    # the first 100 pickled sessions are the text JSON's 100 test sessions, in its order
    mine = Dataset.resolve("movielens", tmp_path).sessions("test")[:100]
    theirs = Dataset.resolve("movies", data_dir).sessions("test")
    assert [(s.history, s.target, s.target_index) for s in mine] == \
        [(s.history, s.target, s.target_index) for s in theirs]
    same = [a.prompt == b.prompt for a, b in zip(mine, theirs)]
    # the other four: the release's candidate list holds two films of one title, the
    # import replaced one of them with a drawn negative
    assert sum(same) == 96, [i for i, x in enumerate(same) if not x]
    for a, b in zip(mine, theirs):
        if a.prompt != b.prompt:
            assert len(set(b.candidates)) == 49 and len(set(a.candidates)) == 50
