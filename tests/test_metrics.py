"""Metrics, bootstrap CIs and the paired bootstrap, checked against hand computations."""

from __future__ import annotations

import math

import pytest

from re2llm_tui.evaluation import metrics as M


def test_session_metrics_by_hand():
    assert M.session_metrics(1) == {"hr@1": 1, "hr@5": 1, "hr@10": 1, "ndcg@5": 1,
                                    "ndcg@10": 1, "mrr@10": 1}
    m3 = M.session_metrics(3)
    assert m3["hr@1"] == 0 and m3["hr@5"] == 1
    assert m3["ndcg@10"] == pytest.approx(1 / math.log2(4)) == pytest.approx(0.5)
    assert m3["mrr@10"] == pytest.approx(1 / 3)
    m7 = M.session_metrics(7)
    assert m7["ndcg@5"] == 0 and m7["ndcg@10"] == pytest.approx(1 / 3)
    assert M.session_metrics(None) == {k: 0 for k in M.METRICS}
    assert M.session_metrics(11)["hr@10"] == 0 and M.session_metrics(11)["mrr@10"] == 0


def test_rank_of():
    assert M.rank_of([4, 9, 2], 9) == 2
    assert M.rank_of([4, 9, 2], 7) is None


def test_summary_means_and_ci_contain_mean():
    ranks = [1, 3, None, 10, 2, None, None, 5]
    s = M.summarize(ranks, n_boot=500, seed=1)
    assert s["n"] == 8
    assert s["hr@10"] == pytest.approx(5 / 8)
    expect = (1 + 0.5 + 1 / math.log2(11) + 1 / math.log2(3) + 1 / math.log2(6)) / 8
    assert s["ndcg@10"] == pytest.approx(expect)
    for m in M.METRICS:
        lo, hi = s["ci"][m]
        assert lo <= s[m] <= hi
    assert s == M.summarize(ranks, n_boot=500, seed=1)  # seeded: reproducible


def test_ci_narrows_with_more_sessions():
    small = M.summarize([1, None] * 10, n_boot=400)
    big = M.summarize([1, None] * 500, n_boot=400)
    w = lambda s: s["ci"]["hr@1"][1] - s["ci"]["hr@1"][0]  # noqa: E731
    assert w(big) < w(small) / 3


def test_paired_difference():
    a = [1] * 30 + [None] * 10
    b = [None] * 30 + [None] * 10
    d = M.paired_difference(a, b, "hr@10", n_boot=500)
    assert d["diff"] == pytest.approx(0.75)
    assert 0 < d["lo"] <= d["diff"] <= d["hi"] and d["p"] < 0.01
    same = M.paired_difference(a, a, "ndcg@10")
    assert same["diff"] == 0 and same["lo"] == 0 == same["hi"]
    with pytest.raises(ValueError):
        M.paired_difference(a, b[:3])


def test_empty_and_json_shape():
    s = M.summarize([])
    assert s["n"] == 0 and s["hr@10"] == 0
    j = M.to_json(M.summarize([1, None]))
    assert set(j) == {"n", "ci", *M.METRICS}
