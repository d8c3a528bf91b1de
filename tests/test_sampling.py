"""Seeded session samples."""

from __future__ import annotations

import pytest

from re2llm_tui.errors import UserError
from re2llm_tui.evaluation.sampling import select_sessions, selection_params


class S:
    def __init__(self, i):
        self.id = f"test-{i:04d}"


def test_a_sample_is_seeded_ordered_and_distinct():
    pool = [S(i) for i in range(500)]
    a = select_sessions(pool, sample=40, seed=3)
    assert len(a) == 40 == len({s.id for s in a})
    assert [s.id for s in a] == sorted(s.id for s in a)
    assert [s.id for s in select_sessions(pool, sample=40, seed=3)] == [s.id for s in a]
    assert [s.id for s in select_sessions(pool, sample=40, seed=4)] != [s.id for s in a]
    assert len(select_sessions(pool, sample=900, seed=1)) == 500
    p = selection_params(a, sample=40, seed=3)
    assert p["sample"] == 40 and p["sample_seed"] == 3 and len(p["sessions_sha"]) == 16


def test_limit_and_sample_are_exclusive_and_positive():
    pool = [S(i) for i in range(10)]
    assert [s.id for s in select_sessions(pool, limit=3)] == [s.id for s in pool[:3]]
    for kw in ({"limit": 0}, {"sample": 0}, {"limit": 2, "sample": 2}):
        with pytest.raises(UserError):
            select_sessions(pool, **kw)


def test_recommend_title_says_how_the_sessions_were_picked(data_dir, workspace, run_cli):
    """A sampled or limited run's table says it is part of the split (and the seed)."""
    from re2llm_tui.llm.scripted import register_scripted

    register_scripted("scripted", lambda messages: "1. nothing")
    args = ["recommend", "--dataset", "games", "--split", "test", "--model",
            "scripted/first", "--db", workspace, "--data-dir", data_dir]
    code, out, err = run_cli(*args, "--sample", "3", "--seed", "7")
    assert code == 0, err
    assert "3 of 3 sessions, sampled from 100 (seed 7)" in " ".join(out.split())
    code, out, err = run_cli(*args, "--limit", "2")
    assert code == 0, err
    assert "2 of 2 sessions, the first of 100" in " ".join(out.split())
