"""The dataset handle: a dataset's name and its own folder, resolved once at the edge.

A :class:`Dataset` reads its own folder and dispatches to the release's parser
(:mod:`re2llm_tui.data.release`) or to the import's store (:mod:`re2llm_tui.data.imported`);
nothing below the edge looks a name up again.  Core functions take a :class:`Dataset`
only (:func:`require` refuses a bare name); names are resolved in ``cli/``, ``tui/`` and at
the entry of a spawned job, from its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from re2llm_tui.data import imported, movie_attrs, release, store
from re2llm_tui.data.release import (
    PUBLIC,
    SPLITS,
    Session,
    canonical_domain,
    find_data_dir,
    is_release_name,
    resolve_imported,
)
from re2llm_tui.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """One dataset, resolved once at the edge (a CLI command, the app's start, a job's
    start): its public name and the release folder it is read from.  Everything below the
    edge takes this object; nothing else carries a data folder around.

    >>> ds = Dataset.resolve("game")          # one-line DataError if the data is absent
    >>> ds.name, ds.sessions("test")[0].id
    ('games', 'test-0000')

    An imported dataset (``re2llm-tui data import NAME``) has its own name and the folder
    ``<data dir>/imported/NAME``; its sessions come from :mod:`re2llm_tui.data.imported`.
    """

    name: str        # games | movies | the name of an imported dataset
    folder: Path     # the domain's folder, e.g. .../re2llm-release/game or .../imported/NAME

    @classmethod
    def resolve(cls, name: "str | Dataset", data_dir: str | Path | None = None) -> "Dataset":
        """The dataset ``name`` (an alias, or an import's name) looked up in ``data_dir``
        (default: the usual folders) -- at the edge only: a CLI command, the app's start,
        a spawned job's entry from its arguments."""
        if isinstance(name, Dataset):
            return name
        if not is_release_name(name):
            folder = resolve_imported(name, data_dir)
            return cls(folder.name, folder)
        public = canonical_domain(name)
        return cls(public, find_data_dir(public, data_dir))

    @property
    def imported(self) -> bool:
        """True for a dataset made by ``data import`` (not one of the release's two)."""
        return self.name not in PUBLIC.values()

    @property
    def root(self) -> Path:
        """The release folder that holds both domains (what ``--data-dir`` names); for an
        imported dataset the data folder whose ``imported/`` holds it."""
        return self.folder.parent.parent if self.imported else self.folder.parent

    # ------------------------------------------------------------------ sessions
    # One API for every dataset (:mod:`re2llm_tui.data.store`): the release's are held in
    # memory, an import is read from its SQLite file a query at a time -- a command pays
    # for the sessions it uses, not for the dataset.

    def source(self):
        """Where the sessions are read from (a :mod:`re2llm_tui.data.store` source): this
        dataset's own folder, read by the release's parser or the import's store."""
        if self.imported:
            return imported.source(self)
        return release.source(self.folder)

    def sessions(self, split: str = "train") -> list[Session]:
        """All sessions of a split, in order (prefer the methods below on a large one)."""
        return self.source().all(_check_split(split))

    def count(self, split: str = "train") -> int:
        """How many sessions the split has (a stored count: nothing else is read)."""
        return self.source().count(_check_split(split))

    def first(self, split: str, n: int) -> list[Session]:
        """The first ``n`` sessions of a split."""
        return self.source().page(_check_split(split), 0, n)

    def page(self, split: str, offset: int, limit: int) -> list[Session]:
        """``limit`` sessions of a split from position ``offset`` on."""
        return self.source().page(_check_split(split), offset, limit)

    def sample(self, split: str, n: int, seed: int = 0) -> list[Session]:
        """A seeded sample of ``n`` sessions in split order: the very sample
        :func:`re2llm_tui.evaluation.sampling.select_sessions` draws from the whole list
        with the same seed (all of them when ``n`` is not smaller than the split)."""
        src = self.source()
        split = _check_split(split)
        return src.by_index(split, store.sample_indices(src.count(split), n, seed))

    def select(self, split: str, *, limit: int | None = None, sample: int | None = None,
               seed: int = 0) -> list[Session]:
        """The sessions a run uses: the first ``limit``, a seeded ``sample``, or all
        (the arguments checked as :func:`~re2llm_tui.evaluation.sampling.select_sessions`
        checks them)."""
        store.check_selection(limit, sample)
        if limit is not None:
            return self.first(split, limit)
        if sample is not None:
            return self.sample(split, sample, seed)
        return self.sessions(split)

    def iter_sessions(self, split: str, start: int = 0, batch: int = 1000):
        """The sessions of a split from position ``start`` on, read ``batch`` at a time."""
        src, split = self.source(), _check_split(split)
        pos = max(0, start)
        while True:
            rows = src.page(split, pos, batch)
            if not rows:
                return
            yield from rows
            pos = rows[-1].index + 1

    def by_ids(self, session_ids) -> list[Session]:
        """The sessions of ``session_ids`` that exist, in the order given."""
        by_split: dict[str, list[int]] = {}
        wanted = []
        for sid in session_ids:
            try:
                split, idx = store.parse_session_id(sid, SPLITS)
            except DataError:
                continue
            if idx < 0:
                continue
            by_split.setdefault(split, []).append(idx)
            wanted.append(sid)
        src = self.source()
        found = {s.id: s for split, idx in by_split.items() for s in src.by_index(split, idx)}
        return [found[sid] for sid in wanted if sid in found]

    def search(self, split: str, query: str, start: int = 0,
               limit: int = 100) -> tuple[list[Session], int | None]:
        """Sessions from position ``start`` on whose history or target titles contain
        ``query`` (case-insensitive), at most ``limit``, and the position to go on from
        (None: no more)."""
        return self.source().search(_check_split(split), query, start, limit)

    def session(self, session_id: str) -> Session:
        split, idx = store.parse_session_id(session_id, SPLITS)
        s = self.source().get(split, idx) if idx >= 0 else None
        if s is None or s.id != session_id:
            raise DataError(f"no session {session_id!r} in {self.name}/{split}")
        return s

    def release_hints(self) -> list[str]:
        """The release's hints (entry 0 is the empty hint); an imported dataset has none
        but entry 0."""
        if self.imported:
            return [""]
        return release.load_release_hints(self.name, self.root)

    def item_text(self, title: str) -> str:
        """The session encoder's text of the item ``title``: the title, plus attributes
        (a release movie's from ``movies.dat``, an import's from its items file)."""
        if self.imported:
            return imported.item_text(self.folder, title)
        return movie_attrs.item_text(self.name, title, self.root)

    def __str__(self) -> str:
        return self.name


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: choose train or test")
    return split


def require(ds) -> Dataset:
    """``ds`` itself when it is a :class:`Dataset`; a bare name is refused (a TypeError: a
    programming error, not bad input) -- names are resolved at the edge with
    :meth:`Dataset.resolve`, where the data folder is known."""
    if not isinstance(ds, Dataset):
        raise TypeError(f"expected a Dataset, got {type(ds).__name__} {ds!r}: resolve a "
                        "dataset's name at the edge with Dataset.resolve(name, data_dir)")
    return ds
