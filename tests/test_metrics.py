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
    # the reply-validity keys joined the shape with the rank-accounting change (issue 13)
    assert set(j) == {"n", "ci", *M.METRICS, *M.VALIDITY}
    assert all(j[k] is None for k in M.VALIDITY)      # no replies given: a row without replies


def test_validity_counts_by_hand():
    replies = [M.Counts(listed=10, valid=8, distinct=8), M.Counts(10, 10, 10),
               None,                                   # a failed call: no reply
               M.Counts(listed=12, valid=12, distinct=10), M.Counts(0, 0, 0)]
    s = M.summarize([1, None, None, 3, None], n_boot=50, replies=replies)
    assert s["replies"] == 4
    assert s["valid_rate"] == pytest.approx(30 / 32)
    assert s["hallucinations_per_reply"] == pytest.approx(2 / 4)
    assert s["short_replies"] == 2                      # 8 distinct, and the empty reply
    j = M.to_json(s)
    assert j["valid_rate"] == round(30 / 32, 6) and j["short_replies"] == 2


def test_table_shows_validity_and_a_dash_without_replies():
    from rich.console import Console

    rows = {"llm": M.summarize([1, 4], n_boot=20, replies=[M.Counts(10, 9, 9),
                                                             M.Counts(10, 10, 10)]),
            "content ranker": M.summarize([2, None], n_boot=20),
            "old stored run": {k: v for k, v in M.summarize([1], n_boot=20).items()
                               if k not in M.VALIDITY}}
    con = Console(width=250, record=True)
    con.print(M.format_table(rows))
    lines = con.export_text().splitlines()
    # the validity table comes second: each row's last line is its validity row
    llm = [line for line in lines if "llm" in line][-1]
    assert [c.strip() for c in llm.strip("│ ").split("│")] == ["llm", "2", "95.0%", "0.50", "1"]
    for name in ("content ranker", "old stored run"):
        line = [line for line in lines if name in line][-1]
        assert line.count("—") == 4
    con = Console(width=80, record=True)                # both tables read at 80 columns
    con.print(M.format_table(rows, title="t"))
    text = con.export_text()
    assert "HR@10" in text and "halluc/reply" in text and "<10 valid" in text


def _ci_table_text(width: int, **kw) -> str:
    from rich.console import Console

    rows = {"no hint": M.summarize([1, 4, None, 12, 3, 7, None, 2], n_boot=200, seed=1),
            "agent (argmax)": M.summarize([2, None, 1, 1, 9, None, 3, 5], n_boot=200, seed=1)}
    paired = {"agent (argmax)": M.paired_difference([1, 4, None, 12, 3, 7, None, 2],
                                                    [2, None, 1, 1, 9, None, 3, 5],
                                                    n_boot=200, seed=1)}
    con = Console(width=width, record=True, file=open("/dev/null", "w"))
    con.print(M.format_table(rows, title="t", baseline="no hint", paired=paired, **kw))
    return con.export_text()


def _numbers(text: str) -> list[str]:
    import re

    return re.findall(r"[+-]?\d\.\d{3}", text)


@pytest.mark.parametrize("width", [80, 100, 120, 250])
def test_no_ci_is_cut_at_any_width(width):
    """Every number of every CI is printed whole (the old table cut them to `[0.058…`):
    the wide form on one line, else the compact ± form."""
    text = _ci_table_text(width)
    assert "…" not in text
    if width >= 250:
        assert "±" not in text and "[" in text         # exact bounds fit
        s = M.summarize([1, 4, None, 12, 3, 7, None, 2], n_boot=200, seed=1)
        lo, hi = s["ci"]["ndcg@10"]
        assert f"{s['ndcg@10']:.3f} [{lo:.3f},{hi:.3f}]" in text
    else:
        assert "±" in text and "half the width" in text   # the caption says what ± is
        s = M.summarize([1, 4, None, 12, 3, 7, None, 2], n_boot=200, seed=1)
        lo, hi = s["ci"]["hr@10"]
        assert f"±{(hi - lo) / 2:.3f}" in text
    # 6 metrics × 2 rows + the paired column × 1 row, each a mean and a CI figure
    assert len([n for n in _numbers(text.split("replies")[0])]) >= 2 * (6 * 2 + 1)


def test_ci_form_can_be_forced():
    assert "±" not in _ci_table_text(100, ci="bounds") and "…" not in _ci_table_text(100,
                                                                                     ci="bounds")
    assert "[" not in _ci_table_text(250, ci="pm", validity=False).split("replies")[0]
    with pytest.raises(ValueError):
        M.format_table({}, ci="sideways")
    assert M.ci_cell(0.25, 0.2, 0.4, form="pm") == "0.250 ±0.100"
    assert M.ci_cell(-0.02, -0.05, 0.01, signed=True) == "-0.020 [-0.050,+0.010]"
