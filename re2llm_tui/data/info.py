"""Overview figures of a dataset (``re2llm-tui data info``)."""

from __future__ import annotations

from re2llm_tui.data.release import (
    SPLITS,
    canonical_domain,
    find_data_dir,
    load_sessions,
)
from re2llm_tui.data.safe_pickle import load_id_sessions_pickle


def dataset_overview(dataset: str, data_dir=None) -> dict:
    """Per split: sessions, history length, candidates per session, distinct items, target share."""
    domain = canonical_domain(dataset)
    folder = find_data_dir(domain, data_dir)
    out: dict = {"dataset": domain, "path": str(folder), "splits": {}}
    for split in SPLITS:
        sessions = load_sessions(domain, split, data_dir)
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

        out["movie_join"] = join_report(data_dir)
    return out
