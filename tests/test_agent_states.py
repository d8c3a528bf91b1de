"""The agent's state: the mean MiniLM embedding of a session's items (titles; movies with
year, genres, directors and country), cached in the workspace."""

from __future__ import annotations

import numpy as np

from re2llm_tui.data.release import load_sessions
from re2llm_tui.embeddings import encode
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.utilization.session_encoder import (
    content_rankings,
    encode_sessions,
    item_text,
)


def test_game_states_are_mean_title_embeddings_cached_in_the_workspace(workspace, data_dir):
    sessions = load_sessions("games", "train", data_dir)[:5]
    db = open_workspace(workspace)
    states = encode_sessions(sessions, db=db)
    assert states.shape == (5, 384) and states.dtype == np.float32
    for s, row in zip(sessions, states):
        assert np.allclose(row, encode(list(s.history)).mean(axis=0), atol=1e-5)
    distinct = {t for s in sessions for t in s.history}
    assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == len(distinct)
    # different sessions, different states
    assert np.linalg.norm(states[0] - states[1]) > 1e-3


def test_movie_items_carry_their_attributes(workspace, data_dir):
    sessions = load_sessions("movies", "train", data_dir)[:3]
    title = sessions[0].history[0]
    text = item_text("movies", title, data_dir)
    assert text.startswith(title) and text != title and "genres:" in text
    assert item_text("games", "Halo 3", data_dir) == "Halo 3"
    db = open_workspace(workspace)
    states = encode_sessions(sessions, db=db)
    titles_only = np.stack([encode(list(s.history)).mean(axis=0) for s in sessions])
    assert not np.allclose(states, titles_only, atol=1e-3)
    texts = [item_text("movies", t, data_dir) for t in sessions[0].history]
    assert np.allclose(states[0], encode(texts).mean(axis=0), atol=1e-5)


def test_content_ranker_returns_ten_distinct_candidates(workspace, data_dir):
    sessions = load_sessions("games", "test", data_dir)[:4]
    ranks = content_rankings(sessions, db=open_workspace(workspace))
    for r, s in zip(ranks, sessions):
        assert len(r) == 10 == len(set(r)) and all(0 <= i < len(s.candidates) for i in r)
