"""Your own session data: ``re2llm-tui data import NAME --sessions FILE --items FILE``.

An import turns a sessions file and an items file into a dataset that every command takes
as ``--dataset NAME``, with the same :class:`~re2llm_tui.data.release.Session` objects as
the release data.

Inputs
------
* sessions, one of
  - JSON lines of ``{"history": [ids...], "target": id}`` with optional
    ``"candidates": [ids...]`` (the full set with the target, or the negatives without
    it) and ``"split": "train" | "test"`` (also allowed: ``user``, ``id``, ``session_id``),
    streamed a line at a time (any size; one line at most :data:`LINE_LIMIT`); a JSON list
    of the same objects is read whole (at most :data:`WHOLE_LIMIT`);
  - a release-format pickle (``example_test.txt``: a list of ``(history_ids, target_id,
    candidate_ids)``), read only through the restricted unpickler
    (:mod:`re2llm_tui.data.safe_pickle`).  A pickle cannot be read in parts, so it is read
    whole and bounded (:data:`WHOLE_LIMIT`; the release's is 1.5 MB): convert a larger one
    to JSON lines;
  - raw interaction logs, CSV or TSV with user, item and timestamp columns (a header row
    naming them, or those three first columns without one), cut into sessions by the
    release's rule: one user's interactions within one calendar day (UTC for Unix
    timestamps, seconds or milliseconds; as written for ISO dates), kept when more than
    three, the last one the target.  RecBole's atomic ``.inter`` files read as they are
    (``user_id:token item_id:token timestamp:float``: the ``:type`` suffixes are dropped);
    a ``session_id`` column (Diginetica, Yoochoose prepared for RecBole) gives the sessions
    themselves: each one's interactions in time order, kept when more than three.  A log
    is streamed into a scratch SQLite file and sorted there (by user's first appearance,
    time, file order), so its size never sits in memory;
* items: CSV, TSV (RecBole's ``.item``: ``item_id:token movie_title:token_seq ...``) or JSON
  lines with an id and a title column plus optional attribute columns, or HetRec 2011
  ``movies.dat`` (latin-1; ``movie_genres.dat``, ``movie_directors.dat`` and
  ``movie_countries.dat`` beside it are used when present).  An item's text for the
  session encoder is its title plus its attributes.

Frozen candidates
-----------------
A session without candidates gets ``--candidates - 1`` negatives drawn with ``--seed``:
uniformly from the items the imported sessions use (histories, targets, given candidates;
the whole items file if that is too few), never an item of the session itself (by id or by
title), with the target at a seeded position.  A candidate repeated within a given set is
replaced the same way.  The candidate sets are then stored with their SHA-256 (``manifest.json``);
a load checks the stored file against it (:mod:`re2llm_tui.data.store`), so every later run
sees the same negatives.

Titles
------
Sessions carry titles, as in the release (prompts and reply matching use them; HetRec's
``movies.dat`` has one film under several ids).  Items that share a title are shown alike,
and their item text is that of the one the sessions use most.  A candidate set never holds
two candidates whose titles match the same reply line: a later one (or one titled like the
target) is replaced by a drawn negative, like a candidate given twice.

Storage
-------
``<data dir>/imported/NAME/`` (``--data-dir``; default ``./data/imported/NAME``) holds
``manifest.json`` (the settings, the digests, ``data info``'s figures) and
``dataset.sqlite`` (sessions by split and position with their frozen candidates, and the
items they use: :mod:`re2llm_tui.data.store`).  Two passes over a scratch SQLite file
build it with bounded memory (the first validates the sessions and collects the items they
use, the second draws the negatives and writes the rows).  It is written to a temporary
folder beside it and renamed into place at the end, so an interrupted, killed or failed
import leaves nothing visible (a killed import's hidden temporary folder is removed by
the next import).  Imports of the earlier layout (``sessions.jsonl``, ``items.jsonl``)
still load.  The workspace records the import's hash (meta ``imported:NAME``), so
results of an earlier, different import under the same name are never mixed with it.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import html
import io
import itertools
import json
import math
import os
import random
import re
import shutil
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from re2llm_tui.data import store
from re2llm_tui.data.release import (
    IMPORTED_MANIFEST,
    IMPORTED_NAME,
    SPLITS,
    Session,
    find_imported,
    imported_roots,
    is_release_name,
)
from re2llm_tui.errors import DataError, UserError
from re2llm_tui.safe_files import IMPORT_INPUT_LIMIT, MAX_JSON_DIGITS, MIB, open_input, read_input
from re2llm_tui.titles import title_key, unescape

#: 1: ``sessions.jsonl`` + ``items.jsonl`` (still read); 2: ``dataset.sqlite``
FORMAT_VERSION = 2
LEGACY_FORMAT = 1
ITEMS_FILE = "items.jsonl"
SESSIONS_FILE = "sessions.jsonl"
STORE_FILE = store.STORE_FILE
#: the prompt wording of imported sessions (the release's, with the noun); bump on change
PROMPT_VERSION = "import-prompt-v1"
DEFAULT_NOUN = "item"
DEFAULT_TEST_SHARE = 0.2
#: the release's rule for sessions cut from logs: more than this many interactions
MIN_LOG_SESSION = 4
#: one line (one record) of a streamed input; the file as a whole has no size bound
LINE_LIMIT = 64 * MIB
#: an input that cannot be streamed (a JSON list, a pickle) is read whole up to this
WHOLE_LIMIT = 256 * MIB
#: rows written to SQLite at a time
_BATCH = 20_000


class _Inserts:
    """Rows for one ``INSERT`` statement, sent ``_BATCH`` at a time (bounded memory)."""

    def __init__(self, conn: sqlite3.Connection, sql: str) -> None:
        self.conn, self.sql = conn, sql
        self.rows: list[tuple] = []

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Send the rows not sent yet."""
        if self.rows:
            self.conn.executemany(self.sql, self.rows)
            self.rows.clear()

_ID_KEYS = ("id", "item_id", "itemid", "item", "movie_id", "movieid", "asin", "product_id",
            "productid", "book_id", "bookid", "isbn")
_TITLE_KEYS = ("title", "name", "item_title", "item_name", "movie_title", "product_name",
               "book_title", "track_name")
_USER_KEYS = ("user", "user_id", "userid", "uid", "reviewerid", "customer_id", "customerid",
              "visitorid", "session_user")
_LOG_SESSION_KEYS = ("session_id", "sessionid", "session")
_TIME_KEYS = ("timestamp", "time", "ts", "date", "datetime", "date_time", "unix_timestamp",
              "event_time", "unixreviewtime", "eventdate")
_SESSION_KEYS = {"history", "target", "candidates", "split", "user", "id", "session_id"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: an integer id at least this large has more digits than a JSON input may (safe_files)
_BIG_INT = 10 ** MAX_JSON_DIGITS
#: RecBole's atomic-file header types (``item_id:token``): dropped from column names
_RECBOLE_TYPE = re.compile(r":(token_seq|token|float_seq|float)$", re.I)



# --------------------------------------------------------------------------- prompts

_GAME_PROMPT = ("I purchased following {plural} in order: {history}. Based on these "
                "interactions, recommend {article} {noun} for me to purchase next from a "
                "candidate set: {candidates}. Please recommend an item from the candidate set "
                "without additional text. List 10 recommendations in order. Use numbered "
                "bullet points.")
_PROMPT = ("I {past} the following {plural} in order: {history}. Based on these interactions, "
           "recommend {article} {noun} for me to {present} next from a candidate set: "
           "{candidates}. Please recommend from the candidate set. List the 10 "
           "recommendations in numbered bullet points.")
_VERBS = (
    (("watched", "watch"), ("movie", "film", "show", "tv show", "series", "episode", "video",
                            "anime", "documentary", "clip", "tv series")),
    (("read", "read"), ("book", "novel", "comic", "manga", "article", "paper", "story",
                        "news article", "post", "blog post")),
    (("listened to", "listen to"), ("song", "track", "album", "podcast", "audiobook",
                                    "music track")),
    (("played", "play"), ("game", "board game", "mobile game")),
    (("purchased", "purchase"), ("product", "video game")),
)


def verbs(noun: str) -> tuple[str, str]:
    """(past, present) verb of the prompt for ``noun``: watched/watch for a movie, ..."""
    key = noun.lower()
    for pair, nouns in _VERBS:
        if key in nouns:
            return pair
    return ("interacted with", "interact with")


def plural(noun: str) -> str:
    if noun.endswith("s"):
        return noun
    if noun.endswith(("x", "z", "ch", "sh")):
        return noun + "es"
    if len(noun) > 1 and noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def build_prompt(noun: str, history: list[str], candidates: list[str]) -> str:
    """The release's prompt in its wording, with ``noun``: ``video game`` gives the game
    prompt of the release, ``movie`` the movie test prompt, byte for byte."""
    fill = {"noun": noun, "plural": plural(noun),
            "article": "an" if noun[:1].lower() in "aeiou" else "a",
            "history": "; ".join(history), "candidates": "; ".join(candidates)}
    if noun.lower() == "video game":
        return _GAME_PROMPT.format(**fill)
    past, present = verbs(noun)
    return _PROMPT.format(past=past, present=present, **fill)


def check_noun(noun: str) -> str:
    cleaned = " ".join((noun or "").split())
    if not re.fullmatch(r"[A-Za-z][A-Za-z' -]{0,39}", cleaned):
        raise UserError(f"--noun {noun!r}: expected a word or two (letters, spaces, -), "
                        "e.g. movie, video game, book")
    return cleaned


def check_name(name: str) -> str:
    key = (name or "").strip()
    if is_release_name(key):
        raise UserError(f"dataset name {name!r} is taken by the release data: choose another")
    if not IMPORTED_NAME.fullmatch(key.lower()):
        raise UserError(f"dataset name {name!r}: use 1-64 letters, digits, - or _ "
                        "(starting with a letter or digit)")
    return key.lower()


# --------------------------------------------------------------------------- reading: items

@dataclass
class Item:
    id: str
    title: str          # entity-decoded, one line
    text: str           # title plus attributes: what the session encoder embeds
    year: str = ""


def _clean(value) -> str:
    """A title or attribute value: entities decoded, controls removed, one line."""
    s = value if isinstance(value, str) else str(value)
    return " ".join(_CONTROL.sub(" ", unescape(s)).split())


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (binary file?)") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 text file, streamed; one line is bounded
    (:data:`LINE_LIMIT`), the file is not."""
    with open_input(path, limit=None, what="a data import file") as f:
        n = 0
        while True:
            try:
                raw = f.readline(LINE_LIMIT + 1)
            except OSError as exc:
                raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
            if not raw:
                return
            n += 1
            if len(raw) > LINE_LIMIT:
                raise DataError(f"{path} line {n}: longer than the {LINE_LIMIT // MIB} MiB "
                                "limit for one line")
            try:
                text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{path}: not UTF-8 text (binary file?)") from None
            yield n, text


def _head(path: Path) -> bytes:
    """The first bytes of an input (its format), BOM removed; ``file is empty`` when it
    has nothing but white space there."""
    with open_input(path, limit=None, what="a data import file") as f:
        try:
            head = f.read(1 << 16)
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.strip() and os.stat(path).st_size <= len(head) + 3:
        raise DataError(f"{path}: file is empty")
    return head


def _table(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """(header, rows as ``(line number, fields)``) of a CSV/TSV file, streamed; the
    delimiter is a tab when the first line has one, else a comma."""
    lines = _lines(path)
    buffered: list[str] = []
    for _, text in lines:
        buffered.append(text)
        if text.strip():
            break
    else:
        raise DataError(f"{path}: file is empty")
    delimiter = "\t" if "\t" in buffered[-1] else ","
    reader = csv.reader(itertools.chain(buffered, (t for _, t in lines)), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for fields in reader:
                if not fields or not any(f.strip() for f in fields):
                    continue
                yield reader.line_num, [f.strip() for f in fields]
        except csv.Error as exc:
            raise DataError(f"{path} line {reader.line_num}: malformed CSV ({exc})") from None

    it = rows()
    first = next(it, None)
    if first is None:
        raise DataError(f"{path}: no rows")
    return first[1], it


def _column_name(header: str) -> str:
    return _RECBOLE_TYPE.sub("", header.strip()).lower().replace(" ", "_").replace("-", "_")


def _column(header: list[str], keys: tuple[str, ...]) -> int | None:
    lowered = [_column_name(h) for h in header]
    for key in keys:
        if key in lowered:
            return lowered.index(key)
    return None


def _json_rows(path: Path, lead: bytes) -> Iterator[tuple[str, object]]:
    """``(where, value)`` of a JSON list (read whole, bounded) or of JSON lines
    (streamed)."""
    from re2llm_tui.safe_files import load_json   # bounded: nesting depth, digits

    if lead == b"[":
        data = load_json(read_input(path, limit=WHOLE_LIMIT,
                                    what="a JSON list (JSON lines have no file limit)"), path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list")
        for i, row in enumerate(data):
            yield f"{path} entry {i}", row
        return
    for n, line in _lines(path):
        if not line.strip():
            continue
        if line.count("[") + line.count("{") < 100:
            # the plain parser (Python refuses integers past 4,300 digits itself; ids are
            # held to the JSON digit bound where they are read: _item_id, _id_list)
            try:
                yield f"{path} line {n}", json.loads(line)
                continue
            except ValueError:
                pass                              # the bounded parser names the error
        where = f"{path} line {n}"
        yield where, load_json(line, where)


def _item_id(value, where: str, what: str = "item id") -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{where}: {what} must be a string or an integer, got "
                        f"{type(value).__name__ if value is not None else 'nothing'}")
    if type(value) is int and abs(value) >= _BIG_INT:
        raise DataError(f"{where}: a number of {len(str(abs(value)))} digits (at most "
                        f"{MAX_JSON_DIGITS})")
    key = str(value).strip()
    if not key:
        raise DataError(f"{where}: empty {what}")
    return key


def _text_of(title: str, attrs: list[tuple[str, str]]) -> str:
    return "; ".join([title, *(f"{k}: {v}" for k, v in attrs if v)])


def _add_item(items: dict[str, Item], item: Item, where: str) -> None:
    if item.id in items:
        raise DataError(f"{where}: duplicate item id {item.id!r}")
    if not item.title:
        raise DataError(f"{where}: item {item.id!r} has no title")
    items[item.id] = item


def _attr_value(value) -> str:
    if isinstance(value, list):
        return ", ".join(_clean(v) for v in value if v is not None and str(v).strip())
    if value is None or isinstance(value, dict):
        return ""
    return _clean(value)


def _lead(head: bytes) -> bytes:
    return head.lstrip()[:1]


def read_items(path: str | Path) -> tuple[dict[str, Item], str]:
    """id -> :class:`Item` of an items file, and its format (``hetrec``, ``jsonl``,
    ``csv``); one-line :class:`DataError` for anything malformed.  Streamed (the items
    themselves are kept: the candidates are drawn from them)."""
    path = Path(path)
    head = _head(path)
    first = head.split(b"\n", 1)[0]
    if b"\t" in first and b"imdbID" in first:
        raw = read_input(path, limit=IMPORT_INPUT_LIMIT, what="a HetRec movies.dat")
        return _read_hetrec(path, raw), "hetrec"
    items: dict[str, Item] = {}
    if _lead(head) in (b"{", b"["):
        for where, row in _json_rows(path, _lead(head)):
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected an object with id and title")
            lower = {str(k).lower(): k for k in row}
            id_key = next((lower[k] for k in _ID_KEYS if k in lower), None)
            title_key_ = next((lower[k] for k in _TITLE_KEYS if k in lower), None)
            if id_key is None or title_key_ is None:
                raise DataError(f"{where}: expected keys id and title, got "
                                f"{', '.join(map(str, row)) or 'none'}")
            title = _clean(row[title_key_]) if row[title_key_] is not None else ""
            attrs = [(str(k), _attr_value(v)) for k, v in row.items()
                     if k not in (id_key, title_key_)]
            year = next((v for k, v in attrs if k.lower() == "year"), "")
            _add_item(items, Item(_item_id(row[id_key], where), title,
                                  _text_of(title, attrs), year), where)
        fmt = "jsonl"
    else:
        header, rows = _table(path)
        id_col, title_col = _column(header, _ID_KEYS), _column(header, _TITLE_KEYS)
        if id_col is None or title_col is None:
            raise DataError(f"{path}: the header needs an id and a title column (e.g. id, "
                            f"title); it has: {', '.join(header)}")
        names = [_clean(_RECBOLE_TYPE.sub("", h)) for h in header]
        for n, fields in rows:
            where = f"{path} line {n}"
            if len(fields) != len(header):
                raise DataError(f"{where}: {len(fields)} fields, the header has {len(header)}")
            title = _clean(fields[title_col])
            attrs = [(h, _clean(v)) for i, (h, v) in enumerate(zip(names, fields))
                     if i not in (id_col, title_col)]
            year = next((v for k, v in attrs if k.lower() == "year"), "")
            _add_item(items, Item(_item_id(fields[id_col], where), title,
                                  _text_of(title, attrs), year), where)
        fmt = "csv"
    if not items:
        raise DataError(f"{path}: no items")
    return items, fmt


def _hetrec_table(path: Path, raw: bytes | None = None) -> list[dict[str, str]]:
    text = (raw if raw is not None else read_input(path)).decode("latin-1")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t",
                            quoting=csv.QUOTE_NONE)
    rows = [r for r in reader if any((v or "").strip() for v in r.values() if isinstance(v, str))]
    if not reader.fieldnames:
        raise DataError(f"{path}: empty table")
    return rows


def _read_hetrec(path: Path, raw: bytes) -> dict[str, Item]:
    """HetRec 2011 ``movies.dat`` (+ genres, directors, countries beside it if present);
    the item text is the one the release movies use (:meth:`Movie.text`)."""
    from re2llm_tui.data.movie_attrs import Movie

    extra: dict[str, dict[str, list[str]]] = {"genres": defaultdict(list),
                                              "directors": defaultdict(list),
                                              "countries": defaultdict(list)}
    for fname, key, col in (("movie_genres.dat", "genres", "genre"),
                            ("movie_directors.dat", "directors", "directorName"),
                            ("movie_countries.dat", "countries", "country")):
        side = path.parent / fname
        if side.is_file():
            for row in _hetrec_table(side):
                value = (row.get(col) or "").strip()
                if value:
                    extra[key][(row.get("movieID") or "").strip()].append(value)
    items: dict[str, Item] = {}
    rows = _hetrec_table(path, raw)
    for n, row in enumerate(rows, 2):
        where = f"{path} line {n}"
        if None in row or any(v is None for v in row.values()):
            raise DataError(f"{where}: wrong number of tab-separated fields")
        mid = _item_id(row.get("id"), where)
        title = _clean(html.unescape(row.get("title") or ""))
        if len(title) > 2 and title[0] == title[-1] == '"':
            title = title[1:-1].strip()   # TV series are quoted there, never in the release
        year = (row.get("year") or "").strip()
        movie = Movie(id=0, title=title, year=year,
                      genres=tuple(extra["genres"].get(mid, ())),
                      directors=tuple(extra["directors"].get(mid, ())),
                      countries=tuple(extra["countries"].get(mid, ())))
        _add_item(items, Item(mid, title, movie.text(), year), where)
    if not items:
        raise DataError(f"{path}: no items")
    return items


# --------------------------------------------------------------------------- reading: sessions

@dataclass
class RawSession:
    where: str
    history: list[str]
    target: str
    candidates: list[str] | None = None
    split: str | None = None
    user: str | None = None
    stored: tuple[str, str | None] | None = None   # the scratch file's JSON of the lists


def _id_list(value, where: str, what: str) -> list[str]:
    if not isinstance(value, list):
        raise DataError(f"{where}: {what} must be a list of item ids")
    # the common case without a call per id: non-empty strings without outer spaces, or
    # integers (not bools); anything else goes through _item_id (its checks, its errors)
    kinds = set(map(type, value))
    if kinds == {int}:                              # bool is not int here: refused below
        if value and max(map(abs, value)) >= _BIG_INT:
            return [_item_id(v, where, f"{what} id") for v in value]
        return list(map(str, value))
    if kinds == {str} and all(value) and all(map(str.__eq__, value, map(str.strip, value))):
        return list(value)
    return [_item_id(v, where, f"{what} id") for v in value]


def _session_from_obj(obj, where: str) -> RawSession:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected an object with history and target")
    unknown = [k for k in obj if k not in _SESSION_KEYS]
    if unknown:
        raise DataError(f"{where}: unknown key {unknown[0]!r} (expected history, target, "
                        "candidates, split)")
    if "history" not in obj or "target" not in obj:
        raise DataError(f"{where}: a session needs history and target")
    history = _id_list(obj["history"], where, "history")
    if not history:
        raise DataError(f"{where}: empty session (no history items before the target)")
    target = _item_id(obj["target"], where, "target")
    cands = obj.get("candidates")
    cands = None if cands is None else _id_list(cands, where, "candidates")
    split = obj.get("split")
    if split is not None and split not in SPLITS:
        raise DataError(f"{where}: unknown split {split!r}: choose train or test")
    user = obj.get("user")
    return RawSession(where, history, target, cands, split,
                      None if user is None else str(user))


@functools.lru_cache(maxsize=65536)
def _utc_day(day_number: int) -> str:
    return datetime.fromtimestamp(day_number * 86400, UTC).date().isoformat()


def _parse_time(value: str, where: str) -> tuple[float, str]:
    """(sort key in seconds, calendar day) of a Unix timestamp (s or ms) or an ISO date."""
    v = value.strip()
    try:
        x = float(v)
    except ValueError:
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            raise DataError(f"{where}: timestamp {value!r} is neither a Unix time nor an "
                            "ISO date") from None
        day = dt.date().isoformat()
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp(), day
    if not math.isfinite(x):
        raise DataError(f"{where}: timestamp {value!r} is not a number")
    if abs(x) >= 1e11:  # milliseconds (HetRec, most web logs)
        x /= 1000.0
    try:
        day = _utc_day(int(x // 86400))
    except (OverflowError, OSError, ValueError):
        raise DataError(f"{where}: timestamp {value!r} is out of range") from None
    return x, day


def sessions_from_log(path: Path, scratch: sqlite3.Connection,
                      notes: dict) -> Iterator[RawSession]:
    """Sessions cut from a user, item, timestamp log by the release's rule (or given by a
    session id column), in the order of the earlier in-memory cut: users (sessions) by
    first appearance, then time, then file order.  The log is streamed into ``scratch``
    and sorted there; ``notes`` gets the counts once the sessions are read."""
    header, rows = _table(path)
    sess_col = _column(header, _LOG_SESSION_KEYS)
    user_col = _column(header, _USER_KEYS)
    cols = (sess_col if sess_col is not None else user_col, _column(header, _ID_KEYS),
            _column(header, _TIME_KEYS))
    if None in cols:
        if len(header) >= 3:
            try:
                _parse_time(header[2], "")
            except DataError:
                raise DataError(f"{path}: no user, item and timestamp columns (header: "
                                f"{', '.join(header)})") from None
            rows = itertools.chain([(1, header)], rows)  # no header: user, item, time first
            cols, sess_col = (0, 1, 2), None
        else:
            raise DataError(f"{path}: expected user, item and timestamp columns (JSON lines "
                            "for sessions, CSV/TSV for interaction logs)")
    by_session = sess_col is not None
    u_col, i_col, t_col = cols
    width = max(cols) + 1
    what = "session" if by_session else "user"
    scratch.execute("CREATE TABLE log (user TEXT, ts REAL, ord INTEGER, day TEXT, "
                    "item TEXT, line INTEGER)")
    log = _Inserts(scratch, "INSERT INTO log VALUES (?,?,?,?,?,?)")
    n_rows = 0
    for order, (n, fields) in enumerate(rows):
        if len(fields) < width:
            raise DataError(f"{path} line {n}: {len(fields)} fields, expected at least {width}")
        user = fields[u_col]
        if not user:
            raise DataError(f"{path} line {n}: empty {what}")
        where = f"{path} line {n}"
        ts, day = _parse_time(fields[t_col], where)
        log.add((user, ts, order, day, _item_id(fields[i_col], where), n))
        n_rows += 1
    log.flush()
    cur = scratch.execute(
        "SELECT user, ts, day, item, line FROM (SELECT *, MIN(ord) OVER (PARTITION BY user) "
        "AS first FROM log) ORDER BY first, ts, ord")
    short = users = found = 0
    group: list[tuple] = []
    last_user = None

    def close(group: list[tuple]) -> RawSession | None:
        nonlocal short
        if len(group) < MIN_LOG_SESSION:
            short += 1
            return None
        ids = [e[3] for e in group]
        u = group[0][0]
        label = f"session {u}" if by_session else f"user {u}, {group[0][2]}"
        return RawSession(f"{path} lines {group[0][4]}..{group[-1][4]} ({label})",
                          ids[:-1], ids[-1], user=None if by_session else u)

    while chunk := cur.fetchmany(_BATCH):
        for ev in chunk:
            if group and (ev[0] != last_user or (not by_session and ev[2] != group[-1][2])):
                s = close(group)
                if s is not None:
                    found += 1
                    yield s
                group = []
            if ev[0] != last_user:
                users += 1
                last_user = ev[0]
            group.append(ev)
    if group:
        s = close(group)
        if s is not None:
            found += 1
            yield s
    if not found:
        rule = ("no session has more than" if by_session else "no user has more than")
        raise DataError(f"{path}: no sessions: {rule} {MIN_LOG_SESSION - 1} interactions"
                        + ("" if by_session else " within one day"))
    notes.update({"interactions": n_rows, "users": users, "short_days_dropped": short}
                 if not by_session else
                 {"interactions": n_rows, "log_sessions": users,
                  "short_sessions_dropped": short})


def sessions_format(path: Path) -> str:
    """``pickle``, ``jsonl`` or ``log`` (one-line errors for an empty or missing file)."""
    head = _head(path)
    if head[:1] == b"\x80" or path.suffix.lower() in (".pkl", ".pickle"):
        return "pickle"
    return "jsonl" if _lead(head) in (b"{", b"[") else "log"


def iter_sessions(path: str | Path, n_candidates: int, scratch: sqlite3.Connection,
                  notes: dict) -> tuple[Iterator[RawSession], str]:
    """The sessions of a sessions file, streamed, and its format (``pickle``, ``jsonl``,
    ``log``); one-line :class:`DataError` for anything malformed (raised as the stream
    reaches it)."""
    path = Path(path)
    fmt = sessions_format(path)
    if fmt == "pickle":
        from re2llm_tui.data.safe_pickle import load_id_sessions_pickle

        def from_pickle() -> Iterator[RawSession]:
            rows = load_id_sessions_pickle(path, n_candidates, limit=WHOLE_LIMIT)
            for i, (hist, target, cands) in enumerate(rows):
                where = f"{path} session {i}"
                if not hist:
                    raise DataError(f"{where}: empty session (no history items before the "
                                    "target)")
                rows[i] = None                       # let the list go as it is read
                yield RawSession(where, [str(h) for h in hist], str(target),
                                 [str(c) for c in cands])
        return from_pickle(), fmt
    if fmt == "jsonl":
        lead = _lead(_head(path))
        return (_session_from_obj(obj, where) for where, obj in _json_rows(path, lead)), fmt
    return sessions_from_log(path, scratch, notes), "log"


def read_sessions(path: str | Path, n_candidates: int) -> tuple[list[RawSession], str, dict]:
    """All sessions of a sessions file in a list (small files; the import streams)."""
    notes: dict = {}
    scratch = sqlite3.connect(":memory:")
    try:
        it, fmt = iter_sessions(path, n_candidates, scratch, notes)
        out = list(it)
    finally:
        scratch.close()
    if not out:
        raise DataError(f"{path}: no sessions")
    return out, fmt, notes


# --------------------------------------------------------------------------- the import

@dataclass
class ImportResult:
    name: str
    folder: Path
    counts: dict[str, int]
    items: int
    sessions_format: str
    items_format: str
    drawn: int = 0             # sessions whose negatives were drawn
    target_inserted: int = 0   # given negative sets the target was inserted into
    repeats_replaced: int = 0  # a candidate given twice: the later one replaced
    title_clashes_replaced: int = 0  # a candidate titled like another one: replaced
    shared_titles: int = 0     # titles that several used items share
    candidates_sha256: str = ""
    sessions_sha256: str = ""
    notes: dict = field(default_factory=dict)
    digests: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "folder": str(self.folder), "sessions": self.counts,
                "items": self.items, "sessions_format": self.sessions_format,
                "items_format": self.items_format, "drawn": self.drawn,
                "target_inserted": self.target_inserted,
                "repeats_replaced": self.repeats_replaced,
                "title_clashes_replaced": self.title_clashes_replaced,
                "shared_titles": self.shared_titles,
                "candidates_sha256": self.candidates_sha256,
                "sessions_sha256": self.sessions_sha256, "notes": self.notes}


class _Drawer:
    """Seeded negatives: uniform over the pool (the whole items file where the pool has too
    few left), never an excluded id nor an item titled like an excluded title, and no two
    alike among themselves."""

    def __init__(self, rng: random.Random, pool: list[str], fallback: list[str],
                 keys: dict[str, str]) -> None:
        self.rng, self.keys = rng, keys
        self.pools = [pool, fallback]

    def draw(self, k: int, ids: set[str], titles: set[str], where: str) -> list[str]:
        keys = self.keys
        getrandbits = self.rng.getrandbits
        for pool in self.pools:
            out: list[str] = []
            seen_ids, seen_keys = set(ids), set(titles)
            n = len(pool)
            bits = n.bit_length()
            for _ in range(20 * k + 200):   # rejection sampling: fast on a roomy pool
                # ``rng.randrange(n)`` inlined, draw for draw (``Random._randbelow``)
                r = getrandbits(bits)
                while r >= n:
                    r = getrandbits(bits)
                x = pool[r]
                if x not in seen_ids:
                    kx = keys[x]
                    if kx not in seen_keys:
                        seen_ids.add(x)
                        seen_keys.add(kx)
                        out.append(x)
                        if len(out) == k:
                            return out
            # a crowded pool: sample from what is left, one item per title
            rest, taken = [], set(titles)
            for x in pool:
                if x not in ids and keys[x] not in taken:
                    taken.add(keys[x])
                    rest.append(x)
            if len(rest) >= k:
                return self.rng.sample(rest, k)
        raise DataError(f"{where}: only {len(rest)} differently titled items outside the "
                        f"session to draw {k} negatives from (lower --candidates or add items)")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open_input(path, limit=None) as f:      # a regular file, never a FIFO's wait
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Completer:
    """The frozen candidate list of each session, in the sessions' order.

    Missing: ``n - 1`` drawn negatives (outside the session by id and by title) and the
    target at a seeded position.  Given: kept in their order, the target inserted at a
    seeded position if absent; a candidate given twice, or titled like an earlier one or
    like the target (the reply parser could not tell them apart), is replaced by a drawn
    negative.  ``used``: the ids the sessions use (the pool, in items-file order)."""

    def __init__(self, items: dict[str, Item], used: set[str], n: int, seed: int,
                 result: ImportResult) -> None:
        self.keys = {i: title_key(it.title) for i, it in items.items()}
        pool = [i for i in items if i in used]          # items-file order: deterministic
        self.drawer = _Drawer(random.Random(f"re2llm-import:{seed}:candidates"), pool,
                              list(items), self.keys)
        self.n, self.result = n, result

    def __call__(self, s: RawSession) -> list[str]:
        keys, n, result, drawer = self.keys, self.n, self.result, self.drawer
        rng = drawer.rng
        c0 = s.candidates
        if c0 is not None and len(c0) == n and s.target in c0 and len(set(c0)) == n \
                and len(set(map(keys.__getitem__, c0))) == n:
            return c0                # given whole, no repeat, no title clash: as given
        own_ids = {*s.history, s.target}
        own_titles = set(map(keys.__getitem__, own_ids))
        if s.candidates is None:
            negs = drawer.draw(n - 1, own_ids, own_titles, s.where)
            negs.insert(rng.randrange(n), s.target)
            result.drawn += 1
            return negs
        cands = list(s.candidates)
        if s.target not in cands:
            if len(cands) != n - 1:
                raise DataError(f"{s.where}: {len(cands)} candidates without the target; "
                                f"expected {n} with it or {n - 1} without (--candidates {n})")
            cands.insert(rng.randrange(n), s.target)
            result.target_inserted += 1
        elif len(cands) != n:
            raise DataError(f"{s.where}: {len(cands)} candidates, expected {n} "
                            f"(--candidates {n})")
        t = cands.index(s.target)
        seen_ids, seen_keys = {s.target}, {keys[s.target]}
        for j, c in enumerate(cands):
            if j == t:
                continue
            if c in seen_ids or keys[c] in seen_keys:
                if c in seen_ids:
                    result.repeats_replaced += 1
                else:
                    result.title_clashes_replaced += 1
                (c,) = drawer.draw(1, own_ids | set(cands) | seen_ids,
                                   own_titles | seen_keys | {keys[x] for x in cands}, s.where)
                cands[j] = c
            seen_ids.add(c)
            seen_keys.add(keys[c])
        return cands


def _test_positions(free: int, test_share: float, seed: int) -> set[int]:
    """Which of the ``free`` sessions (those the file gives no split; numbered in file
    order) go to test: the earlier in-memory import's seeded shuffle."""
    order = list(range(free))
    random.Random(f"re2llm-import:{seed}:split").shuffle(order)
    return set(order[:round(test_share * free)])


_dumps = json.JSONEncoder(ensure_ascii=False).encode   # json.dumps(ids, ensure_ascii=False)


class _SplitStats:
    """``data info``'s figures of one split, gathered as the rows are written."""

    def __init__(self) -> None:
        self.n = self.hist_sum = self.hits = self.with_text = 0
        self.hist_min = self.hist_max = self.cand_min = self.cand_max = None
        self.items: set[str] = set()

    def add(self, history: list[str], target: str, cands: list[str], has_text: bool,
            hit: bool) -> None:
        self.n += 1
        h, c = len(history), len(cands)
        self.hist_sum += h
        self.hist_min = h if self.hist_min is None else min(self.hist_min, h)
        self.hist_max = h if self.hist_max is None else max(self.hist_max, h)
        self.cand_min = c if self.cand_min is None else min(self.cand_min, c)
        self.cand_max = c if self.cand_max is None else max(self.cand_max, c)
        self.items.update(history)
        self.items.update(cands)
        self.items.add(target)
        self.hits += hit
        self.with_text += has_text

    def as_dict(self) -> dict:
        n = self.n
        return {"sessions": n, "history_min": self.hist_min,
                "history_mean": self.hist_sum / n if n else None,
                "history_max": self.hist_max, "candidates_min": self.cand_min,
                "candidates_max": self.cand_max, "distinct_items": len(self.items),
                "target_in_candidates": self.hits / n if n else None,
                "target_with_text": self.with_text / n if n else None,
                "pickled_id_sessions": None}


def _stage(raw: Iterator[RawSession], scratch: sqlite3.Connection, items: dict[str, Item],
           items_path: Path) -> tuple[set[str], int, int]:
    """Pass 1: the sessions, checked, into the scratch file; returns the ids they use, how
    many there are and how many have no split.  Unknown item ids: one line after the whole
    file was read (the first, and how many more)."""
    scratch.execute("CREATE TABLE raw (k INTEGER PRIMARY KEY, src TEXT, history TEXT, "
                    "target TEXT, candidates TEXT, split TEXT, user TEXT)")
    used: set[str] = set()
    unknown: dict[str, str] = {}
    raw_rows = _Inserts(scratch, "INSERT INTO raw VALUES (?,?,?,?,?,?,?)")
    n = free = 0
    for s in raw:
        ids = {*s.history, s.target, *(s.candidates or ())}
        used |= ids
        if len(unknown) < 100_000 and (missing := ids.difference(items)):
            for i in (*s.history, s.target, *(s.candidates or ())):   # the file's order
                if i in missing and i not in unknown:
                    unknown[i] = s.where
        free += s.split is None
        raw_rows.add((n, s.where, _dumps(s.history), s.target,
                      None if s.candidates is None else _dumps(s.candidates), s.split, s.user))
        n += 1
    raw_rows.flush()
    if unknown:
        first, where = next(iter(unknown.items()))
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise DataError(f"{where}: unknown item id {first!r}{more} (not in {items_path})")
    return used, n, free


def _staged(scratch: sqlite3.Connection) -> Iterator[RawSession]:
    cur = scratch.execute("SELECT src, history, target, candidates, split, user FROM raw "
                          "ORDER BY k")
    while rows := cur.fetchmany(_BATCH):
        for src, h, t, c, sp, u in rows:
            yield RawSession(src, json.loads(h), t, None if c is None else json.loads(c),
                             sp, u, (h, c))


def _build(folder: Path, raw: Iterator[RawSession], items: dict[str, Item], items_path: Path,
           sessions_path: Path, n_candidates: int, seed: int, test_share: float,
           result: ImportResult) -> dict:
    """Write ``folder/dataset.sqlite`` from the sessions (two passes over a scratch file
    in ``folder``, removed at the end); returns the manifest's figures."""
    scratch_path = folder / "scratch.sqlite"
    scratch = sqlite3.connect(str(scratch_path), isolation_level=None)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-65536",
                   "temp_store=FILE"):
        scratch.execute(f"PRAGMA {pragma}")
    scratch.execute("BEGIN")
    try:
        used, n_raw, n_free = _stage(raw, scratch, items, items_path)
        if not n_raw:
            raise DataError(f"{sessions_path}: no sessions")
        complete = _Completer(items, used, n_candidates, seed, result)
        del used
        test = _test_positions(n_free, test_share, seed)
        db = store.create(folder / STORE_FILE)
        stats = {sp: _SplitStats() for sp in SPLITS}
        index = {sp: 0 for sp in SPLITS}
        usage: Counter[str] = Counter()           # id -> uses, in first-use order
        free_k = 0
        digester = store.Digester(folder, SPLITS)
        session_rows = _Inserts(db, "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?)")
        name_from, name_to = str(sessions_path), sessions_path.name
        for k, s in enumerate(_staged(scratch)):
            cands = complete(s)          # s.candidates itself when kept as given
            if s.split is None:
                split = "test" if free_k in test else "train"
                free_k += 1
            else:
                split = s.split
            usage.update(s.history)               # first use: the insertion order
            usage[s.target] += 1
            usage.update(cands)
            target_index = cands.index(s.target)
            stats[split].add(s.history, s.target, cands, bool(items[s.target].text), True)
            hist_json, cands_json = s.stored
            if cands_json is None or cands is not s.candidates:
                cands_json = _dumps(cands)         # drawn or repaired: written anew
            source = s.where.replace(name_from, name_to, 1)
            session_rows.add((k, split, index[split], hist_json, s.target, cands_json,
                              target_index, source, s.user))
            digester.row(split, index[split], hist_json, s.target, cands, cands_json, source,
                         s.user)
            index[split] += 1
        session_rows.flush()
        scratch.close()
        scratch = None
        scratch_path.unlink()
        by_title: dict[str, int] = defaultdict(int)
        with_attributes = 0
        item_rows = _Inserts(db, "INSERT INTO items VALUES (?,?,?,?,?,?)")
        for ord_, (i, uses) in enumerate(usage.items()):
            it = items[i]
            by_title[it.title] += 1
            with_attributes += it.text != it.title
            item_rows.add((ord_, i, it.title, it.text, int(it.text != it.title), uses))
            digester.item(i, it.title, it.text, it.text != it.title)
        item_rows.flush()
        store.finish(db)
        db.close()
        result.digests = digester.result()
        _fsync(folder / STORE_FILE)
    finally:
        if scratch is not None:
            scratch.close()
    result.counts = dict(index)
    result.items = len(usage)
    result.shared_titles = sum(1 for v in by_title.values() if v > 1)
    result.candidates_sha256 = result.digests["candidates_sha256"]
    result.sessions_sha256 = result.digests["sessions_sha256"]
    return {"stats": {sp: st.as_dict() for sp, st in stats.items()},
            "items_with_attributes": with_attributes}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def import_dataset(name: str, sessions_path: str | Path, items_path: str | Path, *,
                   data_dir: str | Path | None = None, noun: str = DEFAULT_NOUN,
                   n_candidates: int = 50, seed: int = 0,
                   test_share: float = DEFAULT_TEST_SHARE, db=None) -> ImportResult:
    """Import a dataset (see the module's docstring); ``db``: the workspace that records it
    (or a function that opens it: called once the files are read and checked, so a bad
    file creates no workspace).

    Everything is read and checked before the dataset becomes visible; the folder appears
    whole (renamed from a temporary one) or not at all."""
    key = check_name(name)
    noun = check_noun(noun)
    if not 2 <= int(n_candidates) <= 1000:
        raise UserError(f"--candidates must be between 2 and 1000 (got {n_candidates})")
    if not 0.0 <= float(test_share) <= 1.0:
        raise UserError(f"--test-share must be between 0 and 1 (got {test_share})")
    root = imported_roots(data_dir)[0]
    existing = find_imported(key, data_dir)
    if existing is not None or (root / key).exists():
        raise UserError(f"an imported dataset named {key!r} already exists at "
                        f"{existing or root / key} (choose another name, or delete that "
                        "folder to import it anew)")
    sessions_path, items_path = Path(sessions_path), Path(items_path)
    items, items_fmt = read_items(items_path)
    sess_fmt = sessions_format(sessions_path)        # a missing/empty file: before any folder
    result = ImportResult(key, root / key, {}, 0, sess_fmt, items_fmt)
    with _temporary_folder(root, key) as tmp:
        notes: dict = {}
        scratch_log = sqlite3.connect(str(tmp / "log.sqlite"), isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-65536",
                       "temp_store=FILE"):
            scratch_log.execute(f"PRAGMA {pragma}")
        try:
            stream, _ = iter_sessions(sessions_path, int(n_candidates), scratch_log, notes)
            figures = _build(tmp, stream, items, items_path, sessions_path, int(n_candidates),
                             int(seed), float(test_share), result)
        finally:
            scratch_log.close()
            with_suppress_unlink(tmp / "log.sqlite")
        result.notes = notes
        if callable(db):
            db = db()
        if db is not None:
            check_workspace(db, key, result.sessions_sha256)
        manifest = {
            "format": FORMAT_VERSION, "name": key, "noun": noun,
            "prompt_version": PROMPT_VERSION,
            "n_candidates": int(n_candidates), "seed": int(seed),
            "test_share": float(test_share),
            "sessions": result.counts, "items": result.items,
            "candidates_sha256": result.candidates_sha256,
            "sessions_sha256": result.sessions_sha256,
            "items_sha256": result.digests["items_sha256"],
            "drawn": result.drawn, "target_inserted": result.target_inserted,
            "repeats_replaced": result.repeats_replaced,
            "title_clashes_replaced": result.title_clashes_replaced,
            "shared_titles": result.shared_titles,
            "items_with_attributes": figures["items_with_attributes"],
            "stats": figures["stats"],
            "store": {"file": STORE_FILE, "stamp": store.file_stamp(tmp / STORE_FILE)},
            "source": {"sessions": {"path": str(sessions_path.absolute()), "format": sess_fmt,
                                    "sha256": _sha256_file(sessions_path), **notes},
                       "items": {"path": str(items_path.absolute()), "format": items_fmt,
                                 "sha256": _sha256_file(items_path), "rows": len(items)}},
            "negatives": "seeded uniform draw from the items the sessions use, outside the "
                         "session by id and by title",
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        with open(tmp / IMPORTED_MANIFEST, "w", encoding="utf-8") as f:   # last: marks it whole
            f.write(json.dumps(manifest, indent=2, ensure_ascii=False))
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, root, key)
    if db is not None:
        try:
            record_in_workspace(db, key, result.sessions_sha256, root / key)
        except BaseException:
            shutil.rmtree(root / key, ignore_errors=True)
            raise
    return result


def with_suppress_unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _remove_stale(root: Path) -> None:
    """Remove the temporary folders of imports whose process is gone (killed)."""
    for stale in root.glob(".*.importing-*"):
        try:
            pid = int(stale.name.rsplit("-", 2)[-2])
            os.kill(pid, 0)
            continue                 # that import is still running
        except ProcessLookupError:
            pass
        except (ValueError, IndexError, PermissionError):
            continue
        shutil.rmtree(stale, ignore_errors=True)


class _temporary_folder:
    """A hidden folder beside the import's, removed on any way out but :func:`_publish`;
    an ``OSError`` or SQLite error inside (disk full, ...) becomes one line."""

    def __init__(self, root: Path, key: str) -> None:
        self.root, self.key = root, key

    def __enter__(self) -> Path:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create {self.root} ({exc.strerror or exc})") from None
        _remove_stale(self.root)
        self.tmp = self.root / (f".{self.key}.importing-{os.getpid()}-"
                                f"{random.randrange(1 << 30):08x}")
        try:
            self.tmp.mkdir()
        except OSError as exc:
            raise DataError(f"cannot write {self.root} ({exc.strerror or exc}): nothing was "
                            "imported") from None
        return self.tmp

    def __exit__(self, kind, exc, tb) -> bool:
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        if isinstance(exc, (OSError, sqlite3.Error)) and not isinstance(exc, UserError):
            why = getattr(exc, "strerror", None) or str(exc)
            raise DataError(f"cannot write {self.root / self.key} ({why}): nothing was "
                            "imported") from None
        return False


def _publish(tmp: Path, root: Path, key: str) -> None:
    try:
        os.rename(tmp, root / key)   # fails if the name appeared meanwhile
    except OSError:
        if (root / key).exists():
            raise DataError(f"an imported dataset named {key!r} appeared at {root / key} "
                            "meanwhile: nothing was imported") from None
        raise
    from re2llm_tui.safe_files import _fsync_dir

    _fsync_dir(str(root))


# --------------------------------------------------------------------------- the workspace

_RESULT_TABLES = ("runs", "hints", "reflections", "reward_outcomes", "train_runs")


def _workspace_has_results(db, key: str) -> bool:
    from re2llm_tui.store.workspace import get_meta

    if get_meta(db, f"kb_seeded:{key}"):
        return True
    for table in _RESULT_TABLES:
        cols = {r[1] for r in db.execute(f"PRAGMA table_info({table})").fetchall()}
        if "dataset" in cols and db.execute(
                f"SELECT 1 FROM {table} WHERE dataset=? LIMIT 1", [key]).fetchone():
            return True
    return False


def workspace_record(db, key: str) -> dict | None:
    from re2llm_tui.store.workspace import get_meta

    value = get_meta(db, f"imported:{key}")
    return json.loads(value) if value else None


def check_workspace(db, key: str, sessions_sha256: str) -> None:
    """Refuse a name under which the workspace holds results of other sessions."""
    rec = workspace_record(db, key)
    if rec is not None:
        if rec.get("sessions_sha256") != sessions_sha256:
            raise UserError(f"the workspace already holds a different import named {key!r} "
                            f"(imported {rec.get('imported_at', '?')}): its runs and hints "
                            "would mix with these sessions; choose another name or --db")
        return
    if _workspace_has_results(db, key):
        raise UserError(f"the workspace already holds results for a dataset named {key!r}; "
                        "choose another name or --db")


def record_in_workspace(db, key: str, sessions_sha256: str, folder: Path) -> None:
    from re2llm_tui.store.workspace import set_meta

    set_meta(db, f"imported:{key}", json.dumps({
        "sessions_sha256": sessions_sha256, "folder": str(folder),
        "imported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}))


# --------------------------------------------------------------------------- loading

def read_manifest(folder: Path) -> dict:
    path = folder / IMPORTED_MANIFEST
    from re2llm_tui.safe_files import load_json

    raw = read_input(path)
    try:
        data = load_json(raw, path)
    except DataError:
        raise DataError(f"{path}: not a valid manifest (edited or damaged?)") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a valid manifest (edited or damaged?)")
    if data.get("format") not in (FORMAT_VERSION, LEGACY_FORMAT):
        raise DataError(f"{path}: manifest format {data.get('format')!r} is not "
                        f"{FORMAT_VERSION} (made by another version; import it anew)")
    if data.get("prompt_version") != PROMPT_VERSION:
        raise DataError(f"{path}: prompt wording {data.get('prompt_version')!r} is not "
                        f"{PROMPT_VERSION!r} (made by another version)")
    return data


def _manifest_stamp(folder: Path) -> tuple:
    try:
        st = (folder / IMPORTED_MANIFEST).stat()
    except OSError:
        raise DataError(f"{folder / IMPORTED_MANIFEST}: missing (a damaged import; import "
                        "it anew)") from None
    return (st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class _Opened:
    manifest: dict
    source: object              # store.SqliteSource | store.ListSource
    legacy: bool


@functools.lru_cache(maxsize=16)
def _open_cached(folder: str, stamp: tuple) -> _Opened:
    base = Path(folder)
    manifest = read_manifest(base)
    if manifest["format"] == LEGACY_FORMAT:
        return _Opened(manifest, store.ListSource(lambda split: _load(base).splits[split]),
                       True)
    name, noun, root = base.name, manifest["noun"], str(base.parent.parent)

    def make(split, idx, hist, cands, target, target_index, ids):
        return Session(id=store.session_id(split, idx), domain=name, split=split, index=idx,
                       history=tuple(hist), candidates=tuple(cands), target=target,
                       prompt=build_prompt(noun, hist, cands), target_index=target_index,
                       root=root)

    return _Opened(manifest, store.SqliteSource(base / STORE_FILE, make), False)


def _open(folder: Path) -> _Opened:
    opened = _open_cached(str(folder), _manifest_stamp(folder))
    if not opened.legacy:
        store.verify(folder, opened.manifest, SPLITS)     # one stat when unchanged
    return opened


def source(ds):
    """Where ``ds``'s sessions are read from (:mod:`re2llm_tui.data.store`)."""
    return _open(ds.folder).source


# ------------------------------------------------------------- the earlier layout (format 1)

def _stamp(folder: Path) -> tuple:
    out = []
    for fname in (IMPORTED_MANIFEST, ITEMS_FILE, SESSIONS_FILE):
        try:
            st = (folder / fname).stat()
        except OSError:
            raise DataError(f"{folder / fname}: missing (a damaged import; import it "
                            "anew)") from None
        out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass(frozen=True)
class _Loaded:
    manifest: dict
    ids: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]]   # session id -> ids
    titles: dict[str, str]
    texts: dict[str, str]
    with_attributes: int
    splits: dict[str, tuple[Session, ...]]
    text_by_title: dict[str, str]


def _load(folder: Path) -> _Loaded:
    return _load_cached(str(folder), _stamp(folder))


def _candidates_hash(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r['split']}-{r['index']}\t{','.join(r['candidates'])}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _load_cached(folder: str, stamp: tuple) -> _Loaded:
    """An import of the earlier layout, read whole (as it always was)."""
    base = Path(folder)
    manifest = read_manifest(base)
    name = base.name
    items_raw, sessions_raw = read_input(base / ITEMS_FILE, limit=None), \
        read_input(base / SESSIONS_FILE, allow_empty=True, limit=None)
    for what, raw in (("items", items_raw), ("sessions", sessions_raw)):
        if hashlib.sha256(raw).hexdigest() != manifest.get(f"{what}_sha256"):
            raise DataError(f"{base}: {what} changed since the import (SHA-256 differs from "
                            "the manifest): the frozen candidates cannot be trusted; import "
                            "it anew")
    titles, texts, with_attributes = {}, {}, 0
    for line in items_raw.decode("utf-8").splitlines():
        row = json.loads(line)
        titles[row["id"]], texts[row["id"]] = row["title"], row["text"]
        with_attributes += bool(row.get("attributes"))
    noun = manifest["noun"]
    root = str(base.parent.parent)
    rows = [json.loads(line) for line in sessions_raw.decode("utf-8").splitlines()]
    usage: dict[str, int] = defaultdict(int)
    for r in rows:
        for i in (*r["history"], r["target"], *r["candidates"]):
            usage[i] += 1
    text_by_title: dict[str, str] = {}
    for i in sorted(titles, key=lambda i: -usage[i]):   # stable: items.jsonl order on ties
        text_by_title.setdefault(titles[i], texts[i])
    if _candidates_hash(rows) != manifest.get("candidates_sha256"):
        raise DataError(f"{base}: candidate sets differ from the frozen hash; import it anew")
    splits: dict[str, list[Session]] = {sp: [] for sp in SPLITS}
    ids = {}
    for r in rows:
        hist = [titles[i] for i in r["history"]]
        cands = [titles[i] for i in r["candidates"]]
        sid = f"{r['split']}-{r['index']:04d}"
        ids[sid] = (tuple(r["history"]), r["target"], tuple(r["candidates"]))
        splits[r["split"]].append(Session(
            id=sid, domain=name, split=r["split"], index=r["index"], history=tuple(hist),
            candidates=tuple(cands), target=titles[r["target"]],
            prompt=build_prompt(noun, hist, cands),
            target_index=r["candidates"].index(r["target"]), root=root))
    return _Loaded(manifest, ids, titles, texts, with_attributes,
                   {k: tuple(v) for k, v in splits.items()}, text_by_title)


# --------------------------------------------------------------------------- the API

def load_imported_sessions(ds, split: str) -> list[Session]:
    """The sessions of a split of an imported dataset (empty if the import put none
    there): all of them -- prefer the :class:`Dataset` methods that read fewer."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose train or test")
    return source(ds).all(split)


def session_item_ids(ds, session_id: str) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """(history ids, target id, candidate ids) of an imported session."""
    opened = _open(ds.folder)
    if opened.legacy:
        try:
            return _load(ds.folder).ids[session_id]
        except KeyError:
            raise DataError(f"no session {session_id!r} in {ds.name}") from None
    split, idx = store.parse_session_id(session_id, SPLITS)
    ids = opened.source.item_ids(split, idx) if idx >= 0 else None
    if ids is None:
        raise DataError(f"no session {session_id!r} in {ds.name}")
    return ids


def item_text(folder: Path, title: str) -> str:
    """The session encoder's text of an item of the import in ``folder``: its title plus
    attributes."""
    opened = _open(folder)
    if opened.legacy:
        return _load(folder).text_by_title.get(title, title)
    return opened.source.item_text(title) or title


# --------------------------------------------------------------------------- data info

def _legacy_stats(loaded: _Loaded) -> dict:
    out = {}
    for split in SPLITS:
        sessions = loaded.splits[split]
        hl = [len(s.history) for s in sessions]
        nc = [len(s.candidates) for s in sessions]
        ids = [loaded.ids[s.id] for s in sessions]
        items = {i for h, t, c in ids for i in (*h, t, *c)}
        n = len(sessions)
        out[split] = {
            "sessions": n,
            "history_min": min(hl) if n else None,
            "history_mean": sum(hl) / n if n else None,
            "history_max": max(hl) if n else None,
            "candidates_min": min(nc) if n else None, "candidates_max": max(nc) if n else None,
            "distinct_items": len(items),
            "target_in_candidates": (sum(1 for h, t, c in ids if t in c) / n) if n else None,
            "target_with_text": (sum(1 for h, t, c in ids if loaded.texts.get(t)) / n)
            if n else None,
            "pickled_id_sessions": None,
        }
    return out


def imported_overview(ds) -> dict:
    """``data info`` of an imported dataset: per split sessions, history lengths,
    candidates, distinct items and target coverage (stored with the import: nothing but
    the manifest is read); the import's provenance."""
    opened = _open(ds.folder)
    m = opened.manifest
    if opened.legacy:
        loaded = _load(ds.folder)
        splits, with_attributes = _legacy_stats(loaded), loaded.with_attributes
    else:
        splits, with_attributes = m["stats"], m["items_with_attributes"]
    out: dict = {"dataset": ds.name, "path": str(ds.folder), "imported": True,
                 "splits": {sp: dict(splits[sp]) for sp in SPLITS}}
    out["import"] = {
        "noun": m["noun"], "seed": m["seed"], "test_share": m["test_share"],
        "n_candidates": m["n_candidates"], "items": m["items"],
        "items_with_attributes": with_attributes,
        "drawn": m["drawn"], "target_inserted": m["target_inserted"],
        "repeats_replaced": m["repeats_replaced"],
        "title_clashes_replaced": m["title_clashes_replaced"], "shared_titles": m["shared_titles"],
        "candidates_sha256": m["candidates_sha256"], "sessions_sha256": m["sessions_sha256"],
        "source": m["source"], "created_at": m["created_at"],
        "storage": "sessions.jsonl (earlier layout)" if opened.legacy else STORE_FILE,
    }
    return out
