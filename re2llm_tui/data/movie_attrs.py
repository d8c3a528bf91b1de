"""Movie item attributes (HetRec 2011 tables) joined to the sessions' titles.

``movies.dat``, ``movie_genres.dat``, ``movie_directors.dat`` and ``movie_countries.dat`` are
tab-separated, latin-1, with a header row.  Sessions name movies by title only, and a title
may be shared by several films (remakes) or, before entity decoding, match none.  A title
is resolved deterministically: entity-decoded exact title, then case-insensitive without the
quotes movies.dat puts around TV series (``"Family Guy"``); among
several films the one the release's own pickled sessions use most often, then the one with
the most audience ratings, then the lowest id.  :func:`join_report` gives the counts.
"""

from __future__ import annotations

import csv
import functools
import html
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from re2llm_tui.data.release import SPLITS, find_data_dir
from re2llm_tui.data.safe_pickle import load_id_sessions_pickle
from re2llm_tui.errors import DataError
from re2llm_tui.safe_files import read_input
from re2llm_tui.titles import unescape


@dataclass(frozen=True)
class Movie:
    id: int
    title: str
    year: str = ""
    genres: tuple[str, ...] = ()
    directors: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    audience_ratings: int = 0

    def text(self) -> str:
        """The item text used for embeddings: title plus attributes."""
        head = f"{self.title} ({self.year})" if self.year else self.title
        parts = [head]
        if self.genres:
            parts.append("genres: " + ", ".join(self.genres))
        if self.directors:
            parts.append("directed by " + ", ".join(self.directors))
        if self.countries:
            parts.append("country: " + ", ".join(self.countries))
        return "; ".join(parts)


def _read_table(path: Path) -> list[dict[str, str]]:
    text = read_input(path).decode("latin-1")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t",
                            quoting=csv.QUOTE_NONE)
    rows = list(reader)
    header = reader.fieldnames or []
    if not header or not rows:
        raise DataError(f"{path}: empty table")
    return rows


def _int(value: str | None) -> int:
    try:
        return int(float(value or 0))
    except ValueError:
        return 0


@dataclass
class MovieCatalog:
    movies: dict[int, Movie]
    by_title: dict[str, list[int]]
    by_lower: dict[str, list[int]]
    usage: Counter = field(default_factory=Counter)

    def resolve(self, title: str) -> Movie | None:
        key = unescape(title)
        ids = self.by_title.get(key) or self.by_lower.get(key.lower())
        if not ids:
            return None
        best = min(ids, key=lambda i: (-self.usage[i], -self.movies[i].audience_ratings, i))
        return self.movies[best]

    def candidates_for(self, title: str) -> list[int]:
        key = unescape(title)
        return list(self.by_title.get(key) or self.by_lower.get(key.lower()) or [])


@functools.lru_cache(maxsize=4)
def _load_catalog(folder: str) -> MovieCatalog:
    base = Path(folder)
    genres, directors, countries = defaultdict(list), defaultdict(list), defaultdict(list)
    for row in _read_table(base / "movie_genres.dat"):
        genres[_int(row.get("movieID"))].append(row.get("genre", "").strip())
    for row in _read_table(base / "movie_directors.dat"):
        directors[_int(row.get("movieID"))].append(row.get("directorName", "").strip())
    for row in _read_table(base / "movie_countries.dat"):
        if row.get("country", "").strip():
            countries[_int(row.get("movieID"))].append(row["country"].strip())
    movies: dict[int, Movie] = {}
    by_title: dict[str, list[int]] = defaultdict(list)
    by_lower: dict[str, list[int]] = defaultdict(list)
    for row in _read_table(base / "movies.dat"):
        mid = _int(row.get("id"))
        title = unescape(html.unescape(row.get("title", "")))
        movies[mid] = Movie(
            id=mid, title=title, year=(row.get("year") or "").strip(),
            genres=tuple(genres.get(mid, ())), directors=tuple(directors.get(mid, ())),
            countries=tuple(countries.get(mid, ())),
            audience_ratings=_int(row.get("rtAudienceNumRatings")),
        )
        by_title[title].append(mid)
        # TV series are quoted in movies.dat ('"Family Guy"'), never in the prompts
        by_lower[title.strip('"').lower()].append(mid)
    usage: Counter = Counter()
    for split in SPLITS:
        path = base / f"example_{split}.txt"
        if path.is_file():
            for hist, target, cands in load_id_sessions_pickle(path):
                usage.update(hist)
                usage[target] += 1
                usage.update(cands)
    return MovieCatalog(movies, dict(by_title), dict(by_lower), usage)


def load_catalog(root=None) -> MovieCatalog:
    """The ``movies.dat`` catalog of the release folder ``root`` (default: the usual places)."""
    return _load_catalog(str(find_data_dir("movies", root)))


def item_text(domain: str, title: str, root=None) -> str:
    """Text of a release item for embeddings: the title, plus attributes for movies (read
    from the release folder ``root``, where the sessions came from).  Any dataset's item:
    :func:`re2llm_tui.data.items.item_text`."""
    if not domain.startswith("movie"):
        return title
    movie = load_catalog(root).resolve(title)
    return movie.text() if movie else title


def join_report(dataset) -> dict[str, int]:
    """How the sessions' candidate mentions join to ``movies.dat`` (``dataset``: the movies
    :class:`~re2llm_tui.data.dataset.Dataset`)."""
    catalog = load_catalog(dataset.root)
    raw_titles = {m.title for m in catalog.movies.values()}
    mentions = exact = decoded_only = unmatched = ambiguous = 0
    for split in SPLITS:
        for s in dataset.sessions(split):
            for c in s.candidates:
                mentions += 1
                ids = catalog.candidates_for(c)
                if not ids:
                    unmatched += 1
                    continue
                if c in raw_titles:
                    exact += 1
                else:
                    decoded_only += 1
                if len(ids) > 1:
                    ambiguous += 1
    return {"candidate_mentions": mentions, "exact_title": exact,
            "matched_case_insensitive": decoded_only, "unmatched": unmatched,
            "ambiguous_resolved": ambiguous}
