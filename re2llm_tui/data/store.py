"""Where a dataset's sessions are read from: one API over in-memory lists and SQLite files.

Every :class:`~re2llm_tui.data.dataset.Dataset` answers the same questions through a
*source* -- how many sessions a split has, one session, the first N, a seeded sample, a
page, a title search -- so a command pays for the sessions it uses, not for the dataset:

* :class:`ListSource` -- the release's two datasets (500 + 100 sessions each) and imports
  in the old layout (``sessions.jsonl``): the split is parsed once and sliced.
* :class:`SqliteSource` -- an import in the current layout: ``dataset.sqlite`` in the
  import's folder, with

  - ``sessions(split, idx, history, target, candidates, target_index, source, user)``,
    item ids as JSON lists, a unique index on ``(split, idx)``;
  - ``items(id, title, text, attributes, uses, ord)``: the items the sessions use, indexed
    by id and by title (the session encoder's text of a title: the most used item's);

  so one session is one indexed lookup plus its titles, a sample is a lookup of its
  indexes, and a page is an index range.  ``data info``'s figures are stored with the
  import (``manifest.json``).

Frozen candidates
-----------------
The three digests of an import (candidate sets, sessions, items: :func:`digests`, the
formulas of the earlier ``sessions.jsonl`` layout, so an import of the same files gives the
same hashes) are computed once, from the finished file, and stored in the manifest with
the file's stamp (size and modification time).  A load compares the stamp (one ``stat``);
any write through SQLite rewrites the file (the import leaves it in rollback-journal
mode) and so changes the stamp, and then the digests are recomputed from the file: a
difference refuses the dataset ("import it anew"), a match is remembered in
``verified.json`` beside it, so a copied folder is re-verified once, not on every load.

Only the standard library, numpy (samples) and :mod:`re2llm_tui.errors`: no UI code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from re2llm_tui.errors import DataError, UserError

STORE_FILE = "dataset.sqlite"
VERIFIED_FILE = "verified.json"
#: sessions fetched per query when a split is walked
BATCH = 1000
_CHUNK = 500          # ids per ``IN (...)``: well under SQLite's variable limit

SCHEMA = """
CREATE TABLE sessions (
    n INTEGER PRIMARY KEY,          -- the import's order (the sessions file's)
    split TEXT NOT NULL,
    idx INTEGER NOT NULL,           -- position in its split: the id is f"{split}-{idx:04d}"
    history TEXT NOT NULL,          -- JSON list of item ids
    target TEXT NOT NULL,
    candidates TEXT NOT NULL,       -- JSON list of item ids, the frozen set
    target_index INTEGER NOT NULL,
    source TEXT NOT NULL,
    user TEXT
);
CREATE TABLE items (
    ord INTEGER PRIMARY KEY,        -- first use in the import's order
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    attributes INTEGER NOT NULL,
    uses INTEGER NOT NULL
);
"""
INDEXES = """
CREATE UNIQUE INDEX sessions_split_idx ON sessions(split, idx);
CREATE UNIQUE INDEX items_id ON items(id);
CREATE INDEX items_title ON items(title, uses DESC, ord);
"""


def session_id(split: str, idx: int) -> str:
    return f"{split}-{idx:04d}"


def split_prefix(split: str) -> str:
    """What every session id of ``split`` starts with (``train-``): a session's split is
    known from its id alone, without reading the dataset (:func:`session_id`)."""
    return f"{split}-"


def parse_session_id(sid: str, splits: Sequence[str]) -> tuple[str, int]:
    """``("test", 42)`` of ``test-0042`` (``-1`` for a split's id that names no position);
    a one-line :class:`DataError` for an id of no split."""
    split, _, num = (sid or "").partition("-")
    if split not in splits:
        raise DataError(f"unknown session id {sid!r} (expected e.g. test-0042)")
    return split, int(num) if num.isascii() and num.isdigit() else -1


def sample_indices(n_total: int, n: int, seed: int) -> list[int]:
    """The split positions of a seeded sample of ``n`` of ``n_total`` sessions, in order --
    exactly the draw :func:`re2llm_tui.evaluation.sampling.select_sessions` makes, so a
    sample read by index is the sample read from the whole list."""
    import numpy as np

    if n >= n_total:
        return list(range(n_total))
    idx = np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))
    return [int(i) for i in idx]


def check_selection(limit: int | None, sample: int | None) -> None:
    """``--limit`` / ``--sample``: each at least 1, not both (one-line :class:`UserError`)."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1 (got {limit})")
    if sample is not None and sample < 1:
        raise UserError(f"--sample must be >= 1 (got {sample})")
    if limit is not None and sample is not None:
        raise UserError("give --limit or --sample, not both")


def _casefold_hit(query: str) -> Callable[[str], bool]:
    q = query.casefold().strip()
    return lambda title: q in title.casefold()


# --------------------------------------------------------------------------- in memory

class ListSource:
    """Sessions held in memory, per split (loaded on first use by ``load(split)``)."""

    def __init__(self, load: Callable[[str], Sequence]) -> None:
        self._load = load

    def all(self, split: str) -> list:
        return list(self._load(split))

    def count(self, split: str) -> int:
        return len(self._load(split))

    def page(self, split: str, offset: int, limit: int) -> list:
        return list(self._load(split)[max(0, offset):max(0, offset) + max(0, limit)])

    def by_index(self, split: str, indices: Iterable[int]) -> list:
        rows = self._load(split)
        return [rows[i] for i in indices if 0 <= i < len(rows)]

    def get(self, split: str, idx: int):
        rows = self._load(split)
        return rows[idx] if 0 <= idx < len(rows) else None

    def search(self, split: str, query: str, start: int, limit: int) -> tuple[list, int | None]:
        hit = _casefold_hit(query)
        rows = self._load(split)
        out = []
        for pos in range(max(0, start), len(rows)):
            s = rows[pos]
            if any(hit(t) for t in (*s.history, s.target)):
                if len(out) >= limit:
                    return out, out[-1].index + 1    # one more match: a next page
                out.append(s)
        return out, None


# --------------------------------------------------------------------------- SQLite

def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection to a dataset file (never creates one)."""
    uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=True)
        conn.execute("SELECT 1 FROM sessions LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot read the imported dataset ({exc}); import it "
                        "anew") from None
    return conn


def file_stamp(path: Path) -> dict:
    try:
        st = os.stat(path)
    except OSError:
        raise DataError(f"{path}: missing (a damaged import; import it anew)") from None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _items_line(row) -> str:
    ident, title, text, attributes = row
    return json.dumps({"id": ident, "title": title, "text": text,
                       "attributes": bool(attributes)}, ensure_ascii=False) + "\n"


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode      # json.dumps(x, ensure_ascii=False)
_ENCODE_ASCII = json.JSONEncoder().encode                   # json.dumps(x)


def _session_line(split, idx, history, target, candidates, source, user) -> str:
    """The line of the earlier ``sessions.jsonl`` (``json.dumps`` of the row), built from
    the stored JSON lists without decoding them."""
    d = _ENCODE
    line = (f'{{"split": {_ENCODE_ASCII(split)}, "index": {idx}, "history": {history}, '
            f'"target": {d(target)}, "candidates": {candidates}, "source": {d(source)}')
    if user is not None:
        line += f', "user": {d(user)}'
    return line + "}\n"


def digests(conn: sqlite3.Connection, splits: Sequence[str]) -> dict[str, str]:
    """``candidates_sha256``, ``sessions_sha256`` and ``items_sha256`` of a dataset file:
    the hashes the ``sessions.jsonl`` layout stored for the same import (train rows first,
    then test, each in split order; items in first-use order)."""
    cand, sess, items = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    for split in splits:
        cur = conn.execute("SELECT idx, history, target, candidates, source, user FROM "
                           "sessions WHERE split=? ORDER BY idx", [split])
        while rows := cur.fetchmany(BATCH):
            cbuf, sbuf = [], []
            for idx, history, target, candidates, source, user in rows:
                cbuf.append(f"{split}-{idx}\t{','.join(json.loads(candidates))}\n")
                sbuf.append(_session_line(split, idx, history, target, candidates, source,
                                          user))
            cand.update("".join(cbuf).encode())
            sess.update("".join(sbuf).encode())
    cur = conn.execute("SELECT id, title, text, attributes FROM items ORDER BY ord")
    while rows := cur.fetchmany(BATCH * 10):
        items.update("".join(_items_line(r) for r in rows).encode())
    return {"candidates_sha256": cand.hexdigest(), "sessions_sha256": sess.hexdigest(),
            "items_sha256": items.hexdigest()}


class Digester:
    """:func:`digests` computed while an import writes its rows (in the sessions file's
    order, each split's rows in split order): the first split's lines are hashed at once,
    the others' wait in spool files in ``folder`` and follow at the end."""

    def __init__(self, folder: Path, splits: Sequence[str]) -> None:
        self.splits = list(splits)
        self.cand, self.sess, self.items = (hashlib.sha256(), hashlib.sha256(),
                                            hashlib.sha256())
        self.spools = {sp: (open(folder / f".spool-{sp}-c", "w", encoding="utf-8"),
                            open(folder / f".spool-{sp}-s", "w", encoding="utf-8"))
                       for sp in self.splits[1:]}
        self._buf: list[tuple[str, str]] = []

    def row(self, split: str, idx: int, history: str, target: str, candidates: list[str],
            candidates_json: str, source: str, user: str | None) -> None:
        c = f"{split}-{idx}\t{','.join(candidates)}\n"
        s = _session_line(split, idx, history, target, candidates_json, source, user)
        if split == self.splits[0]:
            self._buf.append((c, s))
            if len(self._buf) >= BATCH:
                self._flush()
        else:
            fc, fs = self.spools[split]
            fc.write(c)
            fs.write(s)

    def _flush(self) -> None:
        self.cand.update("".join(c for c, _ in self._buf).encode())
        self.sess.update("".join(s for _, s in self._buf).encode())
        self._buf.clear()

    def item(self, ident: str, title: str, text: str, attributes: bool) -> None:
        self.items.update(_items_line((ident, title, text, attributes)).encode())

    def close(self) -> None:
        for fc, fs in self.spools.values():
            fc.close()
            fs.close()

    def result(self) -> dict[str, str]:
        self._flush()
        self.close()
        for fc, fs in self.spools.values():
            for f, h in ((fc, self.cand), (fs, self.sess)):
                with open(f.name, "rb") as spool:
                    for chunk in iter(lambda: spool.read(1 << 20), b""):
                        h.update(chunk)
                os.unlink(f.name)
        return {"candidates_sha256": self.cand.hexdigest(),
                "sessions_sha256": self.sess.hexdigest(),
                "items_sha256": self.items.hexdigest()}


_VERIFIED: set[tuple[str, int, int]] = set()


def verify(folder: Path, manifest: dict, splits: Sequence[str]) -> None:
    """Trust the file when its stamp is the import's (or the last verified one); else
    recompute its digests once (see the module's docstring)."""
    path = folder / STORE_FILE
    stamp = file_stamp(path)
    key = (str(path), stamp["size"], stamp["mtime_ns"])
    if key in _VERIFIED:
        return
    known = [manifest.get("store", {}).get("stamp")]
    try:
        from re2llm_tui.safe_files import load_json
        from re2llm_tui.safe_files import read_input

        known.append(load_json(read_input(folder / VERIFIED_FILE), folder / VERIFIED_FILE))
    except (DataError, OSError):
        pass
    if stamp not in known:
        conn = connect_ro(path)
        try:
            got = digests(conn, splits)
        finally:
            conn.close()
        for what in ("candidates", "sessions", "items"):
            if got[f"{what}_sha256"] != manifest.get(f"{what}_sha256"):
                raise DataError(f"{folder}: {what} changed since the import (SHA-256 differs "
                                "from the manifest): the frozen candidates cannot be "
                                "trusted; import it anew")
        try:
            from re2llm_tui.safe_files import atomic_write

            atomic_write(folder / VERIFIED_FILE, json.dumps(stamp))
        except (UserError, OSError):
            pass                       # a read-only folder: verified again next time
    _VERIFIED.add(key)


class SqliteSource:
    """The sessions of an import's ``dataset.sqlite`` (see the module's docstring).

    ``make(split, idx, history_titles, candidate_titles, target_title, target_index,
    ids)`` builds one session object; connections are per thread (SQLite's rule)."""

    def __init__(self, path: Path, make: Callable) -> None:
        self.path = path
        self._make = make
        self._local = threading.local()
        self._titles: dict[str, str] = {}

    # ------------------------------------------------------------------ plumbing
    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect_ro(self.path)
        return conn

    def _query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, list(args)).fetchall()
        except sqlite3.Error as exc:
            raise DataError(f"{self.path}: cannot read the imported dataset ({exc}); "
                            "import it anew") from None

    def titles(self, ids: Iterable[str]) -> dict[str, str]:
        """id -> title of ``ids`` (cached: the memory grows with the items used)."""
        want = [i for i in dict.fromkeys(ids) if i not in self._titles]
        for k in range(0, len(want), _CHUNK):
            part = want[k:k + _CHUNK]
            marks = ",".join("?" * len(part))
            for ident, title in self._query(f"SELECT id, title FROM items WHERE id IN "
                                            f"({marks})", part):
                self._titles[ident] = title
        if len(self._titles) > 500_000:          # a walk over a huge split: start afresh
            keep = {i: self._titles[i] for i in want if i in self._titles}
            self._titles = keep
        return self._titles

    _COLS = "split, idx, history, target, candidates, target_index"

    def _build(self, rows: list[tuple]) -> list:
        decoded = [(sp, idx, json.loads(h), t, json.loads(c), ti)
                   for sp, idx, h, t, c, ti in rows]
        titles = self.titles(i for _, _, h, t, c, _ in decoded for i in (*h, t, *c))
        try:
            return [self._make(sp, idx, [titles[i] for i in h], [titles[i] for i in c],
                               titles[t], ti, (tuple(h), t, tuple(c)))
                    for sp, idx, h, t, c, ti in decoded]
        except KeyError as exc:
            raise DataError(f"{self.path}: item {exc.args[0]!r} of a session is missing from "
                            "the items table (a damaged import; import it anew)") from None

    # ------------------------------------------------------------------ the API
    def count(self, split: str) -> int:
        return self._query("SELECT COUNT(*) FROM sessions WHERE split=?", [split])[0][0]

    def page(self, split: str, offset: int, limit: int) -> list:
        if limit <= 0:
            return []
        return self._build(self._query(
            f"SELECT {self._COLS} FROM sessions WHERE split=? AND idx>=? ORDER BY idx LIMIT ?",
            [split, max(0, offset), limit]))

    def all(self, split: str) -> list:
        out: list = []
        for batch in self.walk(split):
            out.extend(batch)
        return out

    def walk(self, split: str, start: int = 0, batch: int = BATCH) -> Iterator[list]:
        """The split from position ``start`` on, ``batch`` sessions at a time."""
        pos = max(0, start)
        while True:
            rows = self.page(split, pos, batch)
            if not rows:
                return
            yield rows
            pos = rows[-1].index + 1

    def by_index(self, split: str, indices: Iterable[int]) -> list:
        want = list(indices)
        found: dict[int, object] = {}
        for k in range(0, len(want), _CHUNK):
            part = want[k:k + _CHUNK]
            marks = ",".join("?" * len(part))
            for s in self._build(self._query(
                    f"SELECT {self._COLS} FROM sessions WHERE split=? AND idx IN ({marks})",
                    [split, *part])):
                found[s.index] = s
        return [found[i] for i in want if i in found]

    def get(self, split: str, idx: int):
        rows = self.by_index(split, [idx])
        return rows[0] if rows else None

    def search(self, split: str, query: str, start: int, limit: int) -> tuple[list, int | None]:
        """Sessions from position ``start`` on whose history or target title contains
        ``query`` (case-folded, as the Sessions screen has always matched), at most
        ``limit``, and the position to continue from (None: the end of the split)."""
        hit = _casefold_hit(query)
        conn = self.conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS q(id TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM temp.q")
        cur = conn.execute("SELECT id, title FROM items")
        while rows := cur.fetchmany(BATCH * 10):
            conn.executemany("INSERT OR IGNORE INTO temp.q VALUES (?)",
                             [(i,) for i, t in rows if hit(t)])
        rows = self._query(
            f"SELECT {self._COLS} FROM sessions WHERE split=? AND idx>=? AND ("
            "target IN (SELECT id FROM temp.q) OR EXISTS (SELECT 1 FROM json_each(history) "
            "WHERE value IN (SELECT id FROM temp.q))) ORDER BY idx LIMIT ?",
            [split, max(0, start), limit + 1])
        more = len(rows) > limit
        out = self._build(rows[:limit])
        return out, (out[-1].index + 1 if more and out else None)

    def item_text(self, title: str) -> str | None:
        rows = self._query("SELECT text FROM items WHERE title=? ORDER BY uses DESC, ord "
                           "LIMIT 1", [title])
        return rows[0][0] if rows else None

    def item_ids(self, split: str, idx: int) -> tuple | None:
        rows = self._query("SELECT history, target, candidates FROM sessions WHERE split=? "
                           "AND idx=?", [split, idx])
        if not rows:
            return None
        h, t, c = rows[0]
        return tuple(json.loads(h)), t, tuple(json.loads(c))


# --------------------------------------------------------------------------- writing

def create(path: Path) -> sqlite3.Connection:
    """A new dataset file, tuned for one bulk write (the import's temporary folder: a
    crash leaves nothing visible, so no journal is needed until it is finished)."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-65536")       # 64 MiB
    conn.execute("PRAGMA temp_store=FILE")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    return conn


def finish(conn: sqlite3.Connection) -> None:
    """Index, commit and leave the file in rollback-journal mode (so any later write
    through SQLite changes its stamp); the caller closes it."""
    for statement in INDEXES.strip().split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=FULL")
