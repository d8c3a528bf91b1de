"""The text of an item for embeddings, whichever dataset it comes from.

A release item: its title, plus year, genres, directors and country for movies
(:func:`re2llm_tui.data.movie_attrs.item_text`); an imported item: its title plus the
attribute columns of its items file (:func:`re2llm_tui.data.imported.item_text`).
A session knows the folder it was read from (``Session.root``), so the item's dataset is
read from there (:meth:`re2llm_tui.data.dataset.Dataset.item_text`).
"""

from __future__ import annotations

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.data.release import resolve_imported
from re2llm_tui.dataset_names import is_release_name


def item_text(domain: str, title: str, root=None) -> str:
    """Text of the item ``title`` of the dataset ``domain`` (its sessions read from ``root``)."""
    if is_release_name(domain):
        from re2llm_tui.data.movie_attrs import item_text as release_item_text

        return release_item_text(domain, title, root)
    folder = resolve_imported(domain, root)
    return Dataset(folder.name, folder).item_text(title)
