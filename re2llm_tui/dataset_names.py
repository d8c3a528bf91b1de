"""Dataset names as the workspace stores them: the floor below the stores.

The release's two datasets have aliases (``games``/``game``, ``movies``/``movie``); an
imported dataset's name is its folder's name, lower-case.  :func:`dataset_key` is the name a
row of the workspace carries -- without looking for the dataset on disk, which is
:func:`re2llm_tui.data.release.canonical_domain`'s business at the edge.  No import of the
package.
"""

from __future__ import annotations

#: public name -> release folder
DOMAINS = {"games": "game", "game": "game", "movies": "movie", "movie": "movie"}
#: release folder -> public name
PUBLIC = {"game": "games", "movie": "movies"}


def is_release_name(name: str) -> bool:
    """True for the release's names and aliases (games, game, movies, movie)."""
    return (name or "").strip().lower() in DOMAINS


def dataset_key(name: str) -> str:
    """The stored name of ``name``: a release alias -> its public name (``game`` ->
    ``games``); any other name -> itself, stripped and lower-cased."""
    key = (name or "").strip().lower()
    return PUBLIC[DOMAINS[key]] if key in DOMAINS else key
