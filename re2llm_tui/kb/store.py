"""The hint knowledge base (KB): per-dataset hints, curated by people, used by the agent.

A hint has a per-dataset ``id`` (the release's hints keep their index 1..20), a ``text``, a
``status`` (``candidate`` awaiting a decision, ``accepted``, ``rejected``, ``archived``) and a
``source`` (``release``, ``reflection``, ``manual``, ``import``), with provenance (the session
and reflection it came from, the effectiveness result, the most similar hint when proposed).
Entry 0, "no hint", is implicit: never stored, always the first action.

* :class:`KnowledgeBase` is the one public API, which the CLI, the app, exploration and
  the agent's action list use: one workspace and one
  :class:`~re2llm_tui.data.dataset.Dataset` (resolved at the edge), seeded once with the
  release's ``hints.json`` when the handle is made.  The module holds only text helpers
  (:func:`normalize_text`, :func:`text_key`, reading a hints file) beside it.
* Every change is written to ``hint_history`` in the same transaction, with the full rows
  before and after, so :meth:`KnowledgeBase.undo` restores the previous state exactly.
* The *accepted* hints, ordered by id, are the agent's action list; :meth:`KnowledgeBase.version` is a
  content hash of that list (``"kb-" + sha256[:12]``), so it changes with every change of the
  accepted set and an agent can tell whether its actions still match.  A monotonic revision
  counter (``meta kb_revision:<dataset>``) counts those changes for display.
* ``hints.json`` export/import: texts are stored entity-decoded (``&#39;`` -> ``'``),
  whitespace-collapsed and free of control characters (:func:`normalize_text`, the one place
  where text enters the KB), and the exact string read from a file is kept in ``raw_text``; export
  writes ``raw_text`` while the text is unchanged, and ``json.dumps`` (ASCII-escaped, as the
  release), so exporting a freshly seeded KB reproduces the release file byte for byte.

Every write runs in ``BEGIN IMMEDIATE``; a lock held by another process becomes a one-line
:class:`~re2llm_tui.errors.WorkspaceError` and nothing is changed.  Bulk duplicate checks
(:meth:`KnowledgeBase.import_file`) use an index of the existing texts built once per change, so an
import is linear in the size of the file and of the KB.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from re2llm_tui.data.dataset import Dataset, require

from re2llm_tui.data.release import read_hints_json, unescape
from re2llm_tui.errors import DataError, UserError
from re2llm_tui.store.workspace import get_meta, set_meta, transaction

STATUSES = ("candidate", "accepted", "rejected", "archived")
SOURCES = ("release", "reflection", "manual", "import")
MAX_HINT_CHARS = 1000
#: KB entry 0: the agent's "no hint" action (no text is appended to the prompt)
NO_HINT = 0
COLUMNS = ("uid", "dataset", "id", "text", "status", "source", "raw_text", "session_id",
           "reflection_id", "effect", "similar_id", "similarity", "merged_into", "note",
           "created_at", "updated_at")
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


@dataclass(frozen=True)
class Hint:
    """One stored hint (``effect`` decoded from JSON)."""

    dataset: str
    id: int
    text: str
    status: str
    source: str
    raw_text: str | None = None
    session_id: str | None = None
    reflection_id: int | None = None
    effect: dict | None = None
    similar_id: int | None = None
    similarity: float | None = None
    merged_into: int | None = None
    note: str | None = None
    created_at: str = ""
    updated_at: str = ""

    @classmethod
    def from_row(cls, row: dict) -> "Hint":
        data = {k: row.get(k) for k in cls.__dataclass_fields__}
        data["effect"] = json.loads(row["effect"]) if row.get("effect") else None
        return cls(**data)


@dataclass
class ImportReport:
    added: list[int] = field(default_factory=list)
    #: (text, why) for each skipped entry: "duplicate of #5 (accepted)", "repeated in file"
    skipped: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers

# C0 controls, DEL and C1 controls that ``str.split()`` does not already treat as whitespace
# (tab, LF, VT, FF, CR, \x1c-\x1f and NEL collapse to one space with the other whitespace)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def normalize_text(text) -> str:
    """Hint text as stored: entities decoded, control characters (NUL, ESC, DEL, C1) removed,
    whitespace collapsed to single spaces.  Every path that writes a hint's text uses it."""
    text = _SURROGATE.sub("\ufffd", str(text))  # undecodable bytes of a command-line argument
    return " ".join(_CONTROL.sub("", unescape(text)).split())


def clean_text(text: str | None) -> str:
    """Validate and normalise hint text: entity-free, one line, collapsed whitespace, no
    control characters (a NUL or an escape sequence cannot cut or colour a hint)."""
    if text is None:
        raise UserError("hint text is empty")
    cleaned = normalize_text(text)
    if not cleaned:
        raise UserError("hint text is empty")
    if len(cleaned) > MAX_HINT_CHARS:
        raise UserError(f"hint text is too long ({len(cleaned)} characters, at most {MAX_HINT_CHARS})")
    return cleaned


def text_key(text: str) -> str:
    """The key under which two hint texts count as duplicates."""
    return " ".join(normalize_text(text).casefold().split()).rstrip(" .!")


def _rows(db, dataset: str, where: str = "", args: Sequence = ()) -> list[dict]:
    sql = f"SELECT {', '.join(COLUMNS)} FROM hints WHERE dataset=?"
    if where:
        sql += f" AND ({where})"
    sql += " ORDER BY id"
    return list(db.query(sql, [dataset, *args]))


def _row(db, dataset: str, hint_id: int) -> dict | None:
    rows = _rows(db, dataset, "id=?", [int(hint_id)])
    return rows[0] if rows else None


def _rows_by_id(db, dataset: str, ids: Iterable[int]) -> dict[int, dict]:
    """The rows of ``ids`` that exist, by id, in one query (any number of ids)."""
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    if len(ids) == 1:
        row = _row(db, dataset, ids[0])
        return {ids[0]: row} if row is not None else {}
    rows = _rows(db, dataset, "id IN (SELECT value FROM json_each(?))", [json.dumps(ids)])
    return {r["id"]: r for r in rows}


def _require(db, dataset: str, hint_id) -> dict:
    try:
        hid = int(hint_id)
    except (TypeError, ValueError):
        raise UserError(f"hint id must be a number, got {hint_id!r}") from None
    if hid == 0:
        raise UserError("hint 0 is the implicit 'no hint' action and cannot be changed")
    row = _row(db, dataset, hid)
    if row is None:
        raise UserError(f"no hint #{hid} in the {dataset} KB")
    return row


def _next_id(db, dataset: str) -> int:
    """Ids are never reused, not even those of deleted hints (history still names them)."""
    top = db.execute("SELECT COALESCE(MAX(id), 0) FROM hints WHERE dataset=?", [dataset]).fetchone()[0]
    row = db.execute("SELECT MAX(CAST(j.value AS INTEGER)) FROM hint_history h, "
                     "json_each(h.hint_ids) j WHERE h.dataset=?", [dataset]).fetchone()
    return max(top, row[0] or 0) + 1


def _accepted_list(db, dataset: str) -> list[tuple[int, str]]:
    return [(r[0], r[1]) for r in db.execute(
        "SELECT id, text FROM hints WHERE dataset=? AND status='accepted' ORDER BY id", [dataset])]


def _version_of(accepted: list[tuple[int, str]]) -> str:
    payload = json.dumps([[0, ""], *[[i, t] for i, t in accepted]], ensure_ascii=False)
    return "kb-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def _insert(db, row: dict) -> None:
    _insert_many(db, [row])


def _insert_many(db, rows: Sequence[dict]) -> None:
    """Insert hint rows, one ``executemany`` per set of columns (FTS triggers fire per row)."""
    groups: dict[tuple[str, ...], list[list]] = {}
    for row in rows:
        cols = tuple(c for c in COLUMNS if c in row)
        groups.setdefault(cols, []).append([row[c] for c in cols])
    for cols, values in groups.items():
        db.conn.executemany(f"INSERT INTO hints({', '.join(cols)}) "
                            f"VALUES ({', '.join('?' for _ in cols)})", values)


class _Change:
    """Collects the before/after rows of one change and writes its history entry."""

    def __init__(self, db, dataset: str, action: str):
        self.db, self.dataset, self.action = db, dataset, action
        self.before: dict[int, dict] = {}
        self.ids: list[int] = []
        self._touched: set[int] = set()
        self.version_before = _version_of(_accepted_list(db, dataset))

    _UNREAD = object()

    def touch(self, hint_id: int, row=_UNREAD) -> None:
        """Record the current state of a hint before it is changed (call before every write).

        ``row``: its current row when the caller has just read it (``None``: it does not
        exist yet, e.g. a new id), which spares a query per hint in bulk changes.
        """
        if hint_id not in self._touched:
            self._touched.add(hint_id)
            self.ids.append(hint_id)
            if row is self._UNREAD:
                row = _row(self.db, self.dataset, hint_id)
            if row is not None:
                self.before[hint_id] = row

    def commit(self, detail: str, undoes: int | None = None) -> int:
        now = _rows_by_id(self.db, self.dataset, self.ids)
        after = [now[i] for i in self.ids if i in now]
        version = _version_of(_accepted_list(self.db, self.dataset))
        if version != self.version_before:
            key = f"kb_revision:{self.dataset}"
            set_meta(self.db, key, str(int(get_meta(self.db, key, "0")) + 1))
        cur = self.db.execute(
            "INSERT INTO hint_history(dataset, action, hint_ids, before, after, detail, kb_version, "
            "undoes) VALUES (?,?,?,?,?,?,?,?)",
            [self.dataset, self.action, json.dumps(self.ids),
             json.dumps([self.before[i] for i in self.ids if i in self.before]),
             json.dumps(after), detail, version, undoes])
        return cur.lastrowid


# --------------------------------------------------------------------------- seeding

def _seed(db, ds: Dataset) -> bool:
    """Seed the KB with the release's hints.json on first use of ``dataset``; True if it did.

    ``dataset``: the :class:`~re2llm_tui.data.dataset.Dataset` resolved at the edge (a
    bare name is resolved from the default data folders).  A dataset imported with ``data
    import`` has no hints file: its KB starts empty (marked seeded, no history entry)."""
    dataset = ds.name
    key = f"kb_seeded:{dataset}"
    if get_meta(db, key):
        return False
    if ds.imported:
        with transaction(db):
            if get_meta(db, key):
                return False
            set_meta(db, key, f"(imported dataset {ds.folder}: no release hints)")
        return True
    path = ds.folder / "hints.json"
    raw = read_hints_json(path)
    with transaction(db):
        if get_meta(db, key):  # another process seeded it meanwhile
            return False
        change = _Change(db, dataset, "seed")
        for i, entry in enumerate(raw):
            if i == 0 or not entry.strip():
                continue
            if _row(db, dataset, i) is not None:
                raise DataError(f"cannot seed the {dataset} KB: hint #{i} already exists")
            change.touch(i)
            _insert(db, {"dataset": dataset, "id": i, "text": normalize_text(entry),
                         "status": "accepted", "source": "release", "raw_text": entry})
        change.commit(f"seeded {len(change.ids)} release hints from {path}")
        set_meta(db, key, str(path))
    return True


class DuplicateIndex:
    """:func:`text_key` -> ``(id, status)`` of every hint of a dataset, read once.

    For checking many texts (an import): each lookup is a dict access instead of a scan of
    the KB.  Build it inside the write transaction that uses it and :meth:`add` what that
    transaction inserts, so it stays exact.
    """

    def __init__(self, db, dataset: str):
        self._keys: dict[str, tuple[int, str]] = {}
        for hid, stored, status in db.execute(
                "SELECT id, text, status FROM hints WHERE dataset=? ORDER BY id", [dataset]):
            self._keys.setdefault(text_key(stored), (hid, status))

    def find(self, text: str) -> tuple[int, str] | None:
        """``(id, status)`` of the lowest-id hint that ``text`` duplicates, else None."""
        return self._keys.get(text_key(text))

    def add(self, hint_id: int, text: str, status: str) -> None:
        self._keys.setdefault(text_key(text), (hint_id, status))


# --------------------------------------------------------------------------- hints.json

def read_import_file(path: str | Path) -> list[str]:
    """Read a hints.json-style file: a JSON list of strings (one-line errors otherwise)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a hints file")
    try:
        data = read_hints_json(path)
    except DataError as exc:
        raise UserError(str(exc)) from None
    return data


def _import_texts(path, entries: list[str], status: str) -> list[str]:
    if status not in ("candidate", "accepted", "rejected"):
        raise UserError(f"imported hints' status must be candidate, accepted or rejected, not {status!r}")
    texts = [normalize_text(e) if e.strip() else "" for e in entries]
    for i, t in enumerate(texts):
        if len(t) > MAX_HINT_CHARS:
            raise UserError(f"{path}: entry {i} is longer than {MAX_HINT_CHARS} characters")
    return texts


def prepare_import(path: str | Path, status: str = "accepted") -> list[str]:
    """The entries of a hints file to import, read and checked (one-line errors) without
    a workspace: a command reads them before it opens (or creates) one."""
    entries = read_import_file(path)
    _import_texts(path, entries, status)
    return entries


# --------------------------------------------------------------------------- the handle


class KnowledgeBase:
    """The knowledge base of one dataset in one workspace, seeded once when made.

    >>> kb = KnowledgeBase(db, Dataset.resolve("games"))
    >>> kb.add("Prefer sequels of games the user owns.", status="candidate").id
    21

    The one public API of the KB: the CLI, the app, exploration (which receives the handle)
    and the agent's action list all read and change it through these methods."""

    def __init__(self, db, dataset: Dataset) -> None:
        self.db = db
        self.dataset = require(dataset)
        self.name = self.dataset.name
        #: True when this handle seeded the KB (its first use in the workspace)
        self.seeded = _seed(db, self.dataset)

    # ----------------------------------------------------------------- reading

    def hints(self, status: str | Iterable[str] | None = None) -> list[Hint]:
        """Hints of a dataset ordered by id, optionally only those with the given status(es)."""
        db, dataset = self.db, self.name
        statuses = [status] if isinstance(status, str) else list(status or [])
        for s in statuses:
            if s not in STATUSES:
                raise UserError(f"unknown status {s!r}: choose {', '.join(STATUSES)}")
        where = f"status IN ({', '.join('?' for _ in statuses)})" if statuses else ""
        return [Hint.from_row(r) for r in _rows(db, dataset, where, statuses)]

    def get(self, hint_id) -> Hint:
        db, dataset = self.db, self.name
        return Hint.from_row(_require(db, dataset, hint_id))

    def hint_text(self, hint_id: int | None) -> str | None:
        """The text a recommendation appends for KB entry ``hint_id``: ``None`` for no id
        and for entry 0, the agent's "no hint" action (0 means that everywhere: the agent's
        action list, ``recommend --hint-id 0``, the workbench's hint picker); else the
        hint's text.  An unknown id is a :class:`UserError` naming it."""
        if hint_id is None:
            return None
        try:
            hid = int(hint_id)
        except (TypeError, ValueError):
            raise UserError(f"hint id must be a number, got {hint_id!r}") from None
        if hid == NO_HINT:
            return None
        return self.get(hid).text

    def version(self) -> str:
        """Content hash of the ordered accepted (id, text) list, entry 0 included."""
        db, dataset = self.db, self.name
        return _version_of(_accepted_list(db, dataset))

    def revision(self) -> int:
        """How many times the accepted set of ``dataset`` has changed (seeding included)."""
        return int(get_meta(self.db, f"kb_revision:{self.name}", "0"))

    def actions(self) -> tuple[str, list[tuple[int, str]]]:
        """``(kb_version, [(0, ""), (hint_id, text), ...])``: the agent's actions, accepted hints by id."""
        db, dataset = self.db, self.name
        accepted = _accepted_list(db, dataset)
        return _version_of(accepted), [(0, ""), *accepted]

    def search(self, query: str, *, status: str | None = None, raw: bool = False,
               limit: int = 50) -> list[tuple[Hint, str]]:
        """Full-text search (FTS5, best match first); returns (hint, snippet) pairs.

        In a snippet the matched words are wrapped in ``\x02`` ... ``\x03``.

        By default every word of ``query`` must occur (words are quoted, so punctuation is
        harmless); the last word also matches as a prefix.  ``raw=True`` passes FTS5 syntax through.
        """
        import sqlite3

        db, dataset = self.db, self.name
        if not query or not query.strip():
            raise UserError("search query is empty")
        if raw:
            match = query
        else:
            words = re.findall(r"\w+", query)
            if not words:
                raise UserError(f"search query {query!r} has no words")
            match = " ".join(f'"{w}"' for w in words[:-1]) + f' "{words[-1]}"*'
        sql = (f"SELECT {', '.join('h.' + c for c in COLUMNS)}, "
               "snippet(hints_fts, 0, char(2), char(3), '...', 16) AS snip "
               "FROM hints_fts JOIN hints h ON h.uid = hints_fts.rowid "
               "WHERE hints_fts MATCH ? AND h.dataset=?")
        args: list = [match.strip(), dataset]
        if status:
            if status not in STATUSES:
                raise UserError(f"unknown status {status!r}: choose {', '.join(STATUSES)}")
            sql += " AND h.status=?"
            args.append(status)
        sql += " ORDER BY bm25(hints_fts), h.id LIMIT ?"
        args.append(int(limit))
        try:
            rows = list(db.query(sql, args))
        except sqlite3.OperationalError as exc:
            raise UserError(f"bad search query {query!r} ({exc})") from None
        return [(Hint.from_row(r), r["snip"]) for r in rows]

    def find_duplicate(self, text: str, *, exclude: int | None = None) -> Hint | None:
        """An existing hint (any status) whose text equals ``text`` up to case/spacing/final stop.

        One scan of the dataset's texts; to check many texts use :class:`DuplicateIndex`.
        """
        db, dataset = self.db, self.name
        key = text_key(text)
        for hid, stored in db.execute("SELECT id, text FROM hints WHERE dataset=? ORDER BY id",
                                      [dataset]):
            if hid != exclude and text_key(stored) == key:
                return Hint.from_row(_row(db, dataset, hid))
        return None

    def history(self, *, limit: int | None = None, hint_id: int | None = None) -> list[dict]:
        """History entries newest first (``before``/``after``/``hint_ids`` decoded)."""
        db, dataset = self.db, self.name
        out = []
        for r in db.query("SELECT * FROM hint_history WHERE dataset=? ORDER BY seq DESC", [dataset]):
            r["hint_ids"] = json.loads(r["hint_ids"])
            if hint_id is not None and int(hint_id) not in r["hint_ids"]:
                continue
            for key in ("before", "after"):  # decoded only for the entries returned
                r[key] = json.loads(r[key])
            out.append(r)
            if limit is not None and len(out) >= limit:
                break
        return out

    # ----------------------------------------------------------------- hints.json

    def export_text(self) -> str:
        """A hints.json-compatible list: entry 0 empty, then the accepted hints by id."""
        db, dataset = self.db, self.name
        out = [""]
        for r in _rows(db, dataset, "status='accepted'"):
            raw = r["raw_text"]
            out.append(raw if raw is not None and normalize_text(raw) == r["text"]
                       else r["text"])
        return json.dumps(out)

    def export(self, path: str | Path) -> int:
        """Write :func:`export_text` to ``path``; returns the number of hints written."""
        from re2llm_tui.safe_files import atomic_write, check_target, db_file

        db = self.db
        check_target(path, db_file(db))      # never onto the workspace or an SQLite file
        text = self.export_text()
        atomic_write(path, text, db_file(db))
        return len(json.loads(text)) - 1

    # ----------------------------------------------------------------- changes

    def add(self, text: str, *, status: str = "candidate", source: str = "manual",
            session_id: str | None = None, reflection_id: int | None = None,
            effect: dict | None = None, similar_id: int | None = None,
            similarity: float | None = None, note: str | None = None,
            raw_text: str | None = None) -> Hint:
        """Add one hint; a duplicate of an existing hint (any status) is refused."""
        db, dataset = self.db, self.name
        cleaned = clean_text(text)
        if status not in STATUSES or status == "archived":
            raise UserError(f"a new hint's status must be candidate, accepted or rejected, not {status!r}")
        if source not in SOURCES:
            raise UserError(f"unknown hint source {source!r}: choose {', '.join(SOURCES)}")
        with transaction(db):
            dup = self.find_duplicate(cleaned)
            if dup is not None:
                raise UserError(f"hint already in the KB as #{dup.id} ({dup.status})")
            hid = _next_id(db, dataset)
            change = _Change(db, dataset, "add")
            change.touch(hid)
            _insert(db, {"dataset": dataset, "id": hid, "text": cleaned, "status": status,
                         "source": source, "raw_text": raw_text, "session_id": session_id,
                         "reflection_id": reflection_id,
                         "effect": json.dumps(effect, sort_keys=True) if effect is not None else None,
                         "similar_id": similar_id, "similarity": similarity, "note": note})
            change.commit(f"added #{hid} ({status}, {source})")
        return self.get(hid)

    def edit(self, hint_id, text: str, *, expect_text: str | None = None) -> Hint:
        """Change a hint's text.  ``expect_text``: refuse if the stored text is no longer this
        (someone else changed it since the caller read it)."""
        db, dataset = self.db, self.name
        cleaned = clean_text(text)
        with transaction(db):
            row = _require(db, dataset, hint_id)
            if expect_text is not None and row["text"] != expect_text:
                raise UserError(f"hint #{row['id']} was changed meanwhile (by another process?); "
                                "reload it and edit again")
            if row["text"] == cleaned:
                raise UserError(f"hint #{row['id']} already has this text")
            dup = self.find_duplicate(cleaned, exclude=row["id"])
            if dup is not None:
                raise UserError(f"hint already in the KB as #{dup.id} ({dup.status})")
            change = _Change(db, dataset, "edit")
            change.touch(row["id"])
            db.execute(f"UPDATE hints SET text=?, updated_at={_NOW} WHERE uid=?", [cleaned, row["uid"]])
            change.commit(f"edited #{row['id']}")
        return self.get(row["id"])

    def set_status(self, hint_ids: Iterable, status: str) -> list[int]:
        """Set the status of hints; returns the ids actually changed (no history if none)."""
        db, dataset = self.db, self.name
        if status not in STATUSES:
            raise UserError(f"unknown status {status!r}: choose {', '.join(STATUSES)}")
        ids = list(hint_ids)
        if not ids:
            raise UserError("no hint id given")
        action = {"accepted": "accept", "rejected": "reject", "archived": "archive",
                  "candidate": "reopen"}[status]
        with transaction(db):
            rows = [_require(db, dataset, i) for i in ids]
            change = _Change(db, dataset, action)
            changed = []
            for row in rows:
                if row["status"] == status or row["id"] in changed:
                    continue
                change.touch(row["id"])
                db.execute(f"UPDATE hints SET status=?, merged_into=NULL, updated_at={_NOW} WHERE uid=?",
                           [status, row["uid"]])
                changed.append(row["id"])
            if changed:
                change.commit(f"{action} " + ", ".join(f"#{i}" for i in changed))
        return changed

    def accept(self, hint_ids: Iterable) -> list[int]:
        return self.set_status(hint_ids, "accepted")

    def reject(self, hint_ids: Iterable) -> list[int]:
        return self.set_status(hint_ids, "rejected")

    def merge(self, keep_id, other_ids: Iterable, *, text: str | None = None) -> Hint:
        """Merge hints into ``keep_id``: the others are archived (``merged_into`` = keep_id) and
        ``keep_id`` gets ``text`` when given.  ``keep_id`` keeps its status."""
        db, dataset = self.db, self.name
        cleaned = clean_text(text) if text is not None else None
        others = list(other_ids)
        if not others:
            raise UserError("merge needs at least one other hint id")
        with transaction(db):
            keep = _require(db, dataset, keep_id)
            rows = [_require(db, dataset, i) for i in others]
            if any(r["id"] == keep["id"] for r in rows):
                raise UserError(f"cannot merge hint #{keep['id']} into itself")
            change = _Change(db, dataset, "merge")
            change.touch(keep["id"])
            if cleaned is not None and cleaned != keep["text"]:
                dup = self.find_duplicate(cleaned, exclude=keep["id"])
                if dup is not None and dup.id not in [r["id"] for r in rows]:
                    raise UserError(f"hint already in the KB as #{dup.id} ({dup.status})")
                db.execute(f"UPDATE hints SET text=?, updated_at={_NOW} WHERE uid=?",
                           [cleaned, keep["uid"]])
            for r in rows:
                change.touch(r["id"])
                db.execute(f"UPDATE hints SET status='archived', merged_into=?, updated_at={_NOW} "
                           "WHERE uid=?", [keep["id"], r["uid"]])
            change.commit(f"merged {', '.join('#' + str(r['id']) for r in rows)} into #{keep['id']}")
        return self.get(keep["id"])

    def delete(self, hint_ids: Iterable) -> list[int]:
        """Delete hints (undo brings them back exactly; their ids are never reused)."""
        db, dataset = self.db, self.name
        ids = list(hint_ids)
        if not ids:
            raise UserError("no hint id given")
        with transaction(db):
            rows = [_require(db, dataset, i) for i in ids]
            change = _Change(db, dataset, "delete")
            for r in rows:
                change.touch(r["id"])
                db.execute("DELETE FROM hints WHERE uid=?", [r["uid"]])
            change.commit("deleted " + ", ".join(f"#{i}" for i in change.ids))
        return change.ids

    def undo(self) -> dict:
        """Revert the newest change not yet undone (seeding cannot be undone); returns its entry."""
        db, dataset = self.db, self.name
        with transaction(db):
            row = db.execute(
                "SELECT seq, action, hint_ids, before, after, detail FROM hint_history "
                "WHERE dataset=? AND undone_by IS NULL AND action NOT IN ('undo') "
                "ORDER BY seq DESC LIMIT 1", [dataset]).fetchone()
            if row is None or row[1] == "seed":
                raise UserError(f"nothing to undo in the {dataset} KB")
            seq, action, ids, before, after, detail = row
            ids, before, after = json.loads(ids), json.loads(before), json.loads(after)
            # the rows must still be as that change left them
            found = _rows_by_id(db, dataset, ids)
            current = {i: found.get(i) for i in ids}
            expected = {r["id"]: r for r in after}
            for i in ids:
                if current[i] != expected.get(i):
                    raise UserError(f"cannot undo '{detail}': hint #{i} was changed since")
            change = _Change(db, dataset, "undo")
            for i in ids:
                change.touch(i, current[i])
            db.conn.executemany("DELETE FROM hints WHERE uid=?",
                                [[r["uid"]] for r in current.values() if r is not None])
            _insert_many(db, before)
            new_seq = change.commit(f"undo: {detail}", undoes=seq)
            db.execute("UPDATE hint_history SET undone_by=? WHERE seq=?", [new_seq, seq])
        return {"seq": seq, "action": action, "detail": detail, "hint_ids": ids}

    def import_file(self, path: str | Path, *, status: str = "accepted",
                     entries: list[str] | None = None) -> ImportReport:
        """Import a hints.json-style file as one change (one undo reverts it all).

        Empty entries (entry 0) are ignored; entries equal to an existing hint (any status) or
        repeated in the file, and entries with nothing left once control characters are removed,
        are skipped and reported.  Duplicates are found with one :class:`DuplicateIndex`, so a
        100k-entry file takes seconds, not hours.  ``entries``: the file as
        :func:`read_import_file` read it already (before the workspace was opened).
        """
        if entries is None:
            entries = prepare_import(path, status)
        texts = _import_texts(path, entries, status)
        db, dataset = self.db, self.name
        report = ImportReport()
        note = f"imported from {Path(path).name}"
        with transaction(db):
            change = _Change(db, dataset, "import")
            index = DuplicateIndex(db, dataset)
            hid = _next_id(db, dataset)
            seen: dict[str, int] = {}
            new_rows: list[dict] = []
            for i, (entry, text) in enumerate(zip(entries, texts)):
                if not entry.strip():
                    continue
                if not text:
                    report.skipped.append((entry, "empty once spaces and control characters "
                                                  "are removed"))
                    continue
                key = text_key(text)
                if key in seen:
                    report.skipped.append((text, f"repeats entry {seen[key]} of the file"))
                    continue
                seen[key] = i
                dup = index.find(text)
                if dup is not None:
                    report.skipped.append((text, f"duplicate of #{dup[0]} ({dup[1]})"))
                    continue
                change.touch(hid, None)  # a new id: nothing to read
                new_rows.append({"dataset": dataset, "id": hid, "text": text, "status": status,
                                 "source": "import", "raw_text": entry, "note": note})
                index.add(hid, text, status)
                report.added.append(hid)
                hid += 1
            _insert_many(db, new_rows)
            if report.added:
                change.commit(f"imported {len(report.added)} hints from {path} "
                              f"({len(report.skipped)} skipped)")
        return report
