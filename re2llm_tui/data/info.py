"""Overview figures of a dataset (``re2llm-tui data info``)."""

from __future__ import annotations

from re2llm_tui.data.dataset import Dataset

from re2llm_tui.data.release import SPLITS
from re2llm_tui.data.safe_pickle import load_id_sessions_pickle


def dataset_overview(ds: Dataset) -> dict:
    """Per split: sessions, history length, candidates per session, distinct items, target share.

    An imported dataset: the same figures by item id, plus the import's provenance
    (:func:`re2llm_tui.data.imported.imported_overview`)."""
    if ds.imported:
        from re2llm_tui.data.imported import imported_overview

        return imported_overview(ds)
    domain, folder = ds.name, ds.folder
    out: dict = {"dataset": domain, "path": str(folder), "splits": {}}
    for split in SPLITS:
        sessions = ds.sessions(split)
        hl = [len(s.history) for s in sessions]
        nc = [len(s.candidates) for s in sessions]
        items = {t for s in sessions for t in (*s.history, *s.candidates)}
        hits = sum(1 for s in sessions if s.target in s.candidates)
        pickle_path = folder / f"example_{split}.txt"
        n_pickled = len(load_id_sessions_pickle(pickle_path)) if pickle_path.is_file() else None
        out["splits"][split] = {
            "sessions": len(sessions),
            "history_min": min(hl), "history_mean": sum(hl) / len(hl), "history_max": max(hl),
            "candidates_min": min(nc), "candidates_max": max(nc),
            "distinct_items": len(items),
            "target_in_candidates": hits / len(sessions),
            "pickled_id_sessions": n_pickled,
        }
    if domain == "movies":
        from re2llm_tui.data.movie_attrs import join_report

        out["movie_join"] = join_report(ds)
    return out
