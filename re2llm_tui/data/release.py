"""The Re2LLM release datasets: sessions parsed from the text JSON prompts.

A :class:`Session` is the history titles in order, exactly 50 candidate titles (one of them
the target) and a stable id.  The text JSON (``example_{split}_text.json``) is the source of
prompts and titles; the pickles are read separately (:mod:`re2llm_tui.data.safe_pickle`) since
they are not index-aligned with it.

Quirks handled here (see the data README):

* titles carry HTML entities (``&amp;``); the ``;`` of an entity followed by a space must not
  split a list, and titles are unescaped for display and matching;
* a few game titles contain ``"; "`` themselves: lists are segmented against a vocabulary of
  known titles so that every prompt yields exactly 50 candidates with the label among them;
* two prompt layouts (games: ``. Please recommend``; movies: ``.Please recommend``).

Besides the two release datasets, a dataset may be one the user imported with
``re2llm-tui data import NAME`` (:mod:`re2llm_tui.data.imported`): it lives in
``<data dir>/imported/NAME/`` (``--data-dir``; default ``./data/imported/NAME``).  Which
folder a name means is found here; the handle that reads either kind is
:class:`re2llm_tui.data.dataset.Dataset`.
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from re2llm_tui.dataset_names import DOMAINS, PUBLIC, is_release_name  # noqa: F401
from re2llm_tui.errors import DataError
from re2llm_tui.safe_files import read_input
from re2llm_tui.titles import unescape  # noqa: F401 - the release's titles, re-exported

N_CANDIDATES = 50
SPLITS = ("train", "test")


PROJECT_ROOT = Path(__file__).resolve().parents[2]   # the checkout (re2llm_tui/data/release.py)

#: the name of an imported dataset (also its folder's name): lower-case letters, digits, - _
IMPORTED_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: the folder, under a data folder, that holds the imported datasets
IMPORTED_DIR = "imported"
#: the file that marks a finished import (written last, renamed into place with its folder)
IMPORTED_MANIFEST = "manifest.json"

def canonical_domain(name: str, data_dir: str | Path | None = None) -> str:
    """``games``/``game`` -> ``games``; ``movies``/``movie`` -> ``movies``; the name of an
    imported dataset (found in the data folders) -> itself, lower-cased.  Anything else is a one-line :class:`DataError`."""
    key = (name or "").strip().lower()
    if key in DOMAINS:
        return PUBLIC[DOMAINS[key]]
    if IMPORTED_NAME.fullmatch(key) and find_imported(key, data_dir) is not None:
        return key
    raise DataError(f"unknown dataset {name!r}: choose games or movies, or a dataset imported "
                    "with `re2llm-tui data import`")


def imported_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The folders that hold imported datasets, in lookup order: ``<--data-dir>/imported``
    alone when given, else ``./data/imported`` then ``<checkout>/data/imported``.  The
    first is where ``data import`` writes."""
    if data_dir:
        return [Path(data_dir).absolute() / IMPORTED_DIR]
    roots = [Path.cwd() / "data" / IMPORTED_DIR, PROJECT_ROOT / "data" / IMPORTED_DIR]
    return list(dict.fromkeys(roots))


def find_imported(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The folder of the imported dataset ``name`` (one with a manifest), or None."""
    key = (name or "").strip().lower()
    if not IMPORTED_NAME.fullmatch(key):
        return None
    for base in imported_roots(data_dir):
        if (base / key / IMPORTED_MANIFEST).is_file():
            return base / key
    return None


def resolve_imported(name: str, data_dir: str | Path | None) -> Path:
    """The folder of the imported dataset ``name``; a one-line error if there is none."""
    key = (name or "").strip().lower()
    folder = find_imported(key, data_dir)
    if folder is None:
        if not IMPORTED_NAME.fullmatch(key):
            canonical_domain(name)  # raises the one-line "unknown dataset"
        where = ", ".join(str(r) for r in imported_roots(data_dir))
        flag = " in --data-dir" if data_dir else ""
        raise DataError(f"unknown dataset {name!r}: not games or movies, and not imported"
                        f"{flag} (looked in {where}; import it with `re2llm-tui data import "
                        f"{key} --sessions FILE --items FILE`)")
    return folder


def candidate_data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Where the release data is looked for, in order."""
    dirs: list[Path] = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get("RE2LLM_DATA"):
        dirs.append(Path(os.environ["RE2LLM_DATA"]))
    dirs.append(PROJECT_ROOT.parent / "shared" / "datasets" / "re2llm-release")
    dirs.append(PROJECT_ROOT / "data" / "re2llm-release")
    return dirs


def find_data_dir(domain: str, data_dir: str | Path | None = None) -> Path:
    """The folder of one domain (``.../re2llm-release/game``); a one-line error if absent.
    For an imported dataset: its folder (``.../imported/NAME``)."""
    if not is_release_name(domain):
        return resolve_imported(domain, data_dir)
    folder = DOMAINS[canonical_domain(domain)]
    looked = []
    for base in candidate_data_dirs(data_dir):
        for cand in (base / folder, base):
            if cand.name == folder and (cand / "example_train_text.json").is_file():
                return cand
        looked.append(str(base))
        if data_dir and base == Path(data_dir):
            # an explicit --data-dir wins outright: never silently read another copy
            raise DataError(f"dataset {folder!r} not found in --data-dir {data_dir} "
                            f"(expected {base / folder}/example_train_text.json)")
    raise DataError(f"dataset {folder!r} not found; looked in: {', '.join(looked)}")


# --------------------------------------------------------------------------- titles

_ENTITY_TAIL = re.compile(r"&#?[A-Za-z0-9]+$")


def split_pieces(text: str) -> list[str]:
    """Split on ``"; "`` except where the ``;`` ends an HTML entity."""
    parts = text.split("; ")
    out = [parts[0]]
    for part in parts[1:]:
        if _ENTITY_TAIL.search(out[-1]):
            out[-1] += "; " + part
        else:
            out.append(part)
    return out


def segment(pieces: list[str], known: set[str] | frozenset[str], n_groups: int | None = None,
            must: str | None = None) -> list[str]:
    """Join adjacent pieces back into titles.

    Dynamic programming over the ways to group ``pieces``: a group that is a known title
    scores 3, an unknown single piece 0, an unknown multi-piece group -1 per extra piece;
    with ``n_groups`` exactly that many groups are formed, with ``must`` (the label) forced
    to be one of them when it can be.  Ties prefer fewer joins, so the result is
    deterministic.
    """
    n = len(pieces)
    max_len = 6

    def score(i: int, j: int) -> float:
        text = "; ".join(pieces[i:j])
        if must is not None and text == must:
            return 1000.0
        if text in known:
            return 3.0 + 0.01 * (j - i)
        if j - i == 1:
            return 0.0
        # an unknown join: cheapest where the joined-on pieces are short tails
        # ("Black", "PlayStation 2"), dearest where they look like whole titles
        tail_words = sum(len(p.split()) for p in pieces[i + 1:j])
        return -1.0 * (j - i - 1) - 0.1 * tail_words

    if n_groups is None:
        best = [0.0] + [float("-inf")] * n
        back = [0] * (n + 1)
        for j in range(1, n + 1):
            for i in range(max(0, j - max_len), j):
                cand = best[i] + score(i, j)
                if cand > best[j]:
                    best[j] = cand
                    back[j] = i
        bounds, j = [], n
        while j > 0:
            bounds.append((back[j], j))
            j = back[j]
    else:
        if n < n_groups:
            return pieces
        neg = float("-inf")
        # dp[g][j]: best score grouping pieces[:j] into g groups
        dp = [[neg] * (n + 1) for _ in range(n_groups + 1)]
        bk = [[0] * (n + 1) for _ in range(n_groups + 1)]
        dp[0][0] = 0.0
        for g in range(1, n_groups + 1):
            lo = g
            hi = n - (n_groups - g)
            for j in range(lo, hi + 1):
                for i in range(max(g - 1, j - max_len), j):
                    if dp[g - 1][i] == neg:
                        continue
                    cand = dp[g - 1][i] + score(i, j)
                    if cand > dp[g][j]:
                        dp[g][j] = cand
                        bk[g][j] = i
        if dp[n_groups][n] == neg:
            return pieces
        bounds, j = [], n
        for g in range(n_groups, 0, -1):
            i = bk[g][j]
            bounds.append((i, j))
            j = i
    bounds.reverse()
    return ["; ".join(pieces[i:j]) for i, j in bounds]


# --------------------------------------------------------------------------- prompts

_SESSION_RE = re.compile(r"in order:\s*(?P<s>.*?)\.\s*Based on these interactions", re.S)
_CAND_RE = re.compile(r"candidate set:\s*(?P<c>.*?)\.\s*Please recommend", re.S)


@dataclass(frozen=True)
class Session:
    """One session of a split.

    Titles are entity-decoded; ``prompt`` is the release's prompt text, verbatim.
    ``target_index`` is the target's position among ``candidates``.
    """

    id: str
    domain: str
    split: str
    index: int
    history: tuple[str, ...]
    candidates: tuple[str, ...]
    target: str
    prompt: str
    target_index: int = field(default=-1)
    root: str = field(default="", compare=False)   # the release folder it was read from

    @property
    def label(self) -> str:
        return self.target


def parse_prompt(prompt: str, where: str = "prompt") -> tuple[str, str]:
    """Return the raw (history text, candidate text) of a release prompt."""
    ms, mc = _SESSION_RE.search(prompt), _CAND_RE.search(prompt)
    if not ms or not mc:
        raise DataError(f"{where}: prompt does not have the release layout "
                        "('in order: ... Based on these interactions ... candidate set: ... "
                        "Please recommend')")
    return ms.group("s"), mc.group("c")


def _read_json(path: Path):
    from re2llm_tui.safe_files import load_json

    return load_json(read_input(path), path)      # bounded: depth, digits, size


def read_text_json(path: Path) -> list[dict]:
    """Read and validate ``example_*_text.json``: a list of {prompt, label} strings."""
    data = _read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{prompt, label}}, got {type(data).__name__}")
    for i, row in enumerate(data):
        if not (isinstance(row, dict) and isinstance(row.get("prompt"), str)
                and isinstance(row.get("label"), str)):
            raise DataError(f"{path}: entry {i} is not an object with string 'prompt' and 'label'")
    if not data:
        raise DataError(f"{path}: no sessions")
    return data


def read_hints_json(path: Path) -> list[str]:
    """The release's hint list (entry 0 is the empty "no hint")."""
    data = _read_json(path)
    if not isinstance(data, list) or not all(isinstance(h, str) for h in data):
        raise DataError(f"{path}: expected a JSON list of hint strings")
    return data


@functools.lru_cache(maxsize=8)
def _known_titles(folder: str) -> frozenset[str]:
    """Raw (entity-encoded) titles known from num_to_title, labels and clean prompts."""
    known: set[str] = set()
    folder_path = Path(folder)
    n2t = folder_path / "num_to_title.json"
    if n2t.is_file():
        data = _read_json(n2t)
        if isinstance(data, dict):
            for t in data.values():
                if isinstance(t, str):
                    known.add(t)
                    known.add(html.escape(t, quote=False))
    for split in SPLITS:
        path = folder_path / f"example_{split}_text.json"
        if not path.is_file():
            continue
        for row in read_text_json(path):
            known.add(row["label"])
            try:
                _, cand = parse_prompt(row["prompt"])
            except DataError:
                continue
            pieces = split_pieces(cand)
            if len(pieces) == N_CANDIDATES:
                known.update(pieces)
    return frozenset(known)


def _build_session(row: dict, i: int, domain: str, split: str, path: Path,
                   known: frozenset[str]) -> Session:
    where = f"{path} entry {i}"
    hist_raw, cand_raw = parse_prompt(row["prompt"], where)
    label_raw = row["label"]
    pieces = split_pieces(cand_raw)
    cands = pieces if len(pieces) == N_CANDIDATES else segment(
        pieces, known, N_CANDIDATES, must=label_raw)
    if len(cands) != N_CANDIDATES:
        raise DataError(f"{where}: {len(cands)} candidates, expected {N_CANDIDATES}")
    if label_raw not in cands:
        raise DataError(f"{where}: label {unescape(label_raw)!r} is not among the candidates")
    hist_pieces = split_pieces(hist_raw)
    history = segment(hist_pieces, known) if len(hist_pieces) > 1 else hist_pieces
    return Session(
        id=f"{split}-{i:04d}", domain=domain, split=split, index=i,
        history=tuple(unescape(h) for h in history),
        candidates=tuple(unescape(c) for c in cands),
        target=unescape(label_raw), prompt=row["prompt"],
        target_index=cands.index(label_raw), root=str(path.parent.parent),
    )


@functools.lru_cache(maxsize=8)
def _load_split_cached(folder: str, split: str) -> tuple[Session, ...]:
    folder_path = Path(folder)
    domain = PUBLIC[folder_path.name]
    path = folder_path / f"example_{split}_text.json"
    rows = read_text_json(path)
    known = _known_titles(folder)
    return tuple(_build_session(r, i, domain, split, path, known) for i, r in enumerate(rows))


def load_sessions(domain: str, split: str = "train",
                  data_dir: str | Path | None = None) -> list[Session]:
    """All sessions of a split of a release dataset, in the order of its text JSON (any
    dataset, an import too: :meth:`re2llm_tui.data.dataset.Dataset.sessions`)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose train or test")
    if not is_release_name(domain):
        raise DataError(f"{domain!r} is not a release dataset (an imported dataset is read "
                        "through its Dataset)")
    folder = find_data_dir(domain, data_dir)
    return list(_load_split_cached(str(folder), split))


def get_session(domain: str, session_id: str, data_dir: str | Path | None = None) -> Session:
    """One session by its id (``train-0042``)."""
    split = session_id.split("-", 1)[0]
    if split not in SPLITS:
        raise DataError(f"unknown session id {session_id!r} (expected e.g. train-0042)")
    for s in load_sessions(domain, split, data_dir):
        if s.id == session_id:
            return s
    raise DataError(f"no session {session_id!r} in {canonical_domain(domain, data_dir)}/{split}")


@functools.lru_cache(maxsize=8)
def source(folder: str | Path):
    """Where the sessions of the release folder ``folder`` are read from (held in memory)."""
    from re2llm_tui.data.store import ListSource

    folder = str(folder)
    return ListSource(lambda split: _load_split_cached(folder, split))


def load_release_hints(domain: str, data_dir: str | Path | None = None) -> list[str]:
    """The release's ``hints.json`` (entry 0 is the empty hint), entities decoded."""
    path = find_data_dir(domain, data_dir) / "hints.json"
    return [unescape(h) for h in read_hints_json(path)]
