"""The session encoder: the agent's state is the mean sentence embedding of a session's items.

An item's text is its title (games) or its title plus year, genres, directors and country
(movies), or, for a dataset imported with ``data import``, its title plus the attribute
columns of the items file (:func:`re2llm_tui.data.items.item_text` picks the source).  Items are embedded once with
all-MiniLM-L6-v2 (:mod:`re2llm_tui.embeddings`, cached in the workspace's ``embeddings``
table), so re-encoding a split reads vectors from the workspace instead of running the model.

The same item vectors give the no-LLM *content ranker* used as a reference row in the
evaluation: candidates ordered by cosine similarity to the session vector.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from re2llm_tui.data.items import item_text  # the text embedded for one item
from re2llm_tui.data.release import Session


def _item_vectors(session: Session, titles: Sequence[str], *, db=None,
                  encoder=None) -> dict[str, np.ndarray]:
    """title -> normalised embedding of its item text, each distinct title encoded once
    (item attributes come from the folder the sessions were read from: the release's, or
    the imported dataset's)."""
    from re2llm_tui.embeddings import encode

    unique = list(dict.fromkeys(titles))
    texts = [item_text(session.domain, t, session.root or None) for t in unique]
    vecs = encode(texts, db=db, encoder=encoder)
    return dict(zip(unique, vecs))


def encode_sessions(sessions: Sequence[Session], *, db=None, encoder=None) -> np.ndarray:
    """States ``[n_sessions, 384]``: the mean of each session's history-item embeddings."""
    if not sessions:
        return np.zeros((0, 384), dtype=np.float32)
    titles = [t for s in sessions for t in s.history]
    vec = _item_vectors(sessions[0], titles, db=db, encoder=encoder)
    dim = next(iter(vec.values())).shape[0] if vec else 384
    out = np.zeros((len(sessions), dim), dtype=np.float32)
    for i, s in enumerate(sessions):
        if s.history:
            out[i] = np.mean([vec[t] for t in s.history], axis=0)
    return out


def content_rankings(sessions: Sequence[Session], *, k: int = 10, db=None,
                     encoder=None) -> list[list[int]]:
    """The content ranker: per session, the ``k`` candidate indices most cosine-similar to
    the session's mean item embedding (ties: candidate order)."""
    if not sessions:
        return []
    titles = [t for s in sessions for t in (*s.history, *s.candidates)]
    vec = _item_vectors(sessions[0], titles, db=db, encoder=encoder)
    out = []
    for s in sessions:
        state = np.mean([vec[t] for t in s.history], axis=0) if s.history else None
        if state is None:
            out.append(list(range(min(k, len(s.candidates)))))
            continue
        state = state / (np.linalg.norm(state) or 1.0)
        cands = np.stack([vec[c] for c in s.candidates])
        sims = cands @ state
        order = np.argsort(-sims, kind="stable")
        out.append([int(i) for i in order[:k]])
    return out
