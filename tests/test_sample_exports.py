"""The file exports of run metrics carry ``--samples N``'s between-sample spread.

Real runs against the loopback stub (tests/stub_server.py) whose answers vary from one
asking of a prompt to the next: a plain and a sampled ``recommend`` run, a sampled
``evaluate`` of each split.  ``runs export`` (CSV, Markdown, LaTeX; the Runs screen's
``exports/`` through the same :func:`write_exports`) and ``evaluate --out`` (.csv, .md, .json)
gain the spread where a run or row has samples; a plain run exports no sample column and no
spread table, as before.
``rewards export --split`` keeps one split's outcomes and names each row's split.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from conftest import keep_hints_1_and_2
from stub_server import StubServer
from test_samples import _varying_effects

from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation.metrics import METRICS

MODEL = "openai/stub-model"


def _spread_columns(header: list[str]) -> list[str]:
    return [c for c in header if c == "samples" or c.endswith(("_sd", "_min", "_max"))]


def _ranks(i: int, h: int):
    """The two samples' ranks of session i under action h (None: not listed)."""
    return ((i + h) % 5 + 1, None if (i + 2 * h) % 3 == 0 else (2 * i + h) % 9 + 1)


@pytest.fixture(scope="module")
def made(tmp_path_factory, data_dir):
    """One workspace: recommend plain, --samples 3, plain on 4 sessions on movies/test; an
    evaluate --samples 2 on games/test (its --out files) and on games/train; a plain
    evaluation of games/test through the API (its EvalResult)."""
    from re2llm_tui.cli import main
    from re2llm_tui.data.dataset import Dataset
    from re2llm_tui.evaluation.compare import evaluate
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.store.workspace import open_workspace

    tmp = tmp_path_factory.mktemp("sample-exports")
    ws = tmp / "kb.sqlite"
    db = open_workspace(ws)
    actions = keep_hints_1_and_2(db)
    db.conn.close()
    hint_index = {text: i for i, (_, text) in enumerate(actions)}
    sessions = (load_sessions("movies", "test", data_dir)[:6]
                + load_sessions("games", "test", data_dir)[:3]
                + load_sessions("games", "train", data_dir)[:3])
    index = {s.id + s.prompt: i for i, s in enumerate(sessions)}
    reply = _varying_effects(sessions, lambda s, hint: _ranks(index[s.id + s.prompt],
                                                               hint_index.get(hint, 0)))

    def cli(*args):
        import contextlib

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code
        assert code in (0, None), err.getvalue()
        return out.getvalue()

    common = ["--model", MODEL, "--api-base", None, "--db", ws, "--data-dir", data_dir,
              "--transport", "fast"]
    out = {}
    with StubServer(reply_fn=reply) as srv:
        common[3] = srv.base_url
        plain = json.loads(cli("recommend", "-d", "movies", "-n", "6", "--json", *common))
        sampled = json.loads(cli("recommend", "-d", "movies", "-n", "6", "--json",
                                 "--samples", "3", *common))
        plain2 = json.loads(cli("recommend", "-d", "movies", "-n", "4", "--json", *common))
        for ext in ("csv", "md", "json"):     # the first asks, the others read the cache
            out[ext] = tmp / f"eval.{ext}"
            cli("evaluate", "-d", "games", "--split", "test", "-n", "3", "--samples", "2",
                "--out", out[ext], "--json", *common)
        cli("evaluate", "-d", "games", "--split", "train", "-n", "3", "--samples", "2",
            "--no-oracle", "--json", *common)
        with LLMClient(ws, model=MODEL, api_bases=[srv.base_url]) as client:
            db = open_workspace(ws)
            plain_eval = evaluate(db, Dataset.resolve("games"), "test", client=client,
                                  limit=3, store=False)
            db.conn.close()
    return {"ws": ws, "data_dir": data_dir, "cli": cli, "plain": plain["run_id"],
            "plain2": plain2["run_id"],
            "sampled": sampled["run_id"], "sampled_metrics": sampled["metrics"],
            "eval_out": out, "plain_eval": plain_eval, "tmp": tmp}


def _records(ws, refs):
    from re2llm_tui.store import catalog
    from re2llm_tui.store.workspace import open_workspace

    db = open_workspace(ws, create=False)
    return db, [catalog.get_record(db, r) for r in refs]


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------- runs export

@pytest.mark.parametrize("fmt", ["csv", "md", "latex"])
def test_a_plain_run_exports_no_spread(made, fmt):
    """Runs without samples export as they always did: no sample column, no spread table
    (alone, or paired with another plain run); the CLI writes what the API returns."""
    from re2llm_tui.evaluation.metrics import SPREAD_TITLE
    from re2llm_tui.evaluation.run_compare import compare_runs
    from re2llm_tui.evaluation.run_export import export_table

    db, records = _records(made["ws"], [made["plain"]])
    assert "spread" not in records[0]["metrics"]
    new = export_table(records, fmt)
    assert made["cli"]("runs", "export", made["plain"], "-f", fmt, "--db", made["ws"]) == new
    refs = [made["plain"], made["plain2"]]
    _, both = _records(made["ws"], refs)
    paired = export_table(both, fmt, compare_runs(db, refs, n_boot=200))
    for text in (new, paired):
        if fmt == "csv":
            header = next(csv.reader(io.StringIO(text)))
            assert _spread_columns(header) == [] and "ndcg@10" in header
        else:
            assert SPREAD_TITLE not in text and "NDCG@10" in text


def test_the_csv_of_a_sampled_run_carries_samples_and_the_spread(made):
    text = made["cli"]("runs", "export", made["plain"], made["sampled"], "-f", "csv",
                       "--db", made["ws"])
    plain, sampled = _csv(text)
    want = made["sampled_metrics"]           # what recommend --json said of the run
    assert want["samples"] == 3
    heads = text.splitlines()[0].split(",")
    spread_heads = ["samples", *(f"{m}_{k}" for m in METRICS for k in ("sd", "min", "max"))]
    # the spread follows the metric columns, before the failed / cost columns
    start = heads.index("samples")
    assert heads[start:start + len(spread_heads)] == spread_heads
    assert heads[start - 1] == "mrr@10_hi" and heads[start + len(spread_heads)] == "failed"
    assert int(sampled["samples"]) == 3
    for m in METRICS:
        for k in ("sd", "min", "max"):
            assert float(sampled[f"{m}_{k}"]) == pytest.approx(want["spread"][m][k], abs=1e-6)
    # a run without samples: empty cells, its other columns as in its own export
    assert all(plain[h] == "" for h in spread_heads)
    alone = _csv(made["cli"]("runs", "export", made["plain"], "--db", made["ws"]))[0]
    assert {k: v for k, v in plain.items() if k not in spread_heads} == alone
    # numbers stay numbers: written bare, never quoted or given an apostrophe
    cells = text.splitlines()[2].split(",")
    assert cells[start] == "3"
    assert cells[start + 1] == repr(round(want["spread"]["hr@1"]["sd"], 6))


def test_the_spread_matches_runs_show(made):
    shown = json.loads(made["cli"]("runs", "show", made["sampled"], "--json", "--db",
                                   made["ws"]))["metrics"]
    row = _csv(made["cli"]("runs", "export", made["sampled"], "--db", made["ws"]))[0]
    assert int(row["samples"]) == shown["samples"]
    for m in METRICS:
        for k, v in shown["spread"][m].items():
            assert float(row[f"{m}_{k}"]) == pytest.approx(v, abs=1e-6)


def test_markdown_and_latex_show_the_spread_table_as_the_cli_does(made):
    from re2llm_tui.evaluation.metrics import SPREAD_CAPTION, SPREAD_TITLE

    want = made["sampled_metrics"]
    sds = [f"{want['spread'][m]['sd']:.3f}" for m in METRICS]
    md = made["cli"]("runs", "export", made["plain"], made["sampled"], "-f", "md", "--db",
                     made["ws"])
    head, _, tail = md.partition("\n" + SPREAD_TITLE + "\n")
    assert tail, md
    # the metric table first, a row per run, then the spread table: the sampled run only
    assert len([r for r in head.splitlines() if r.startswith("| ")]) == 3
    rows = [r for r in tail.splitlines() if r.startswith("| ")]
    assert rows[0] == "| run | name | samples | " + " | ".join(m.upper() for m in METRICS) + " |"
    assert len(rows) == 2                        # only the sampled run has a spread row
    assert rows[1].startswith(f"| {made['sampled']} | ")
    assert rows[1].endswith("| 3 | " + " | ".join(sds) + " |")
    assert SPREAD_CAPTION in tail
    # the CLI's own table says the same words
    shown = " ".join(made["cli"]("runs", "show", made["sampled"], "--db", made["ws"]).split())
    assert SPREAD_TITLE in shown and " ".join(SPREAD_CAPTION.split()) in shown
    tex = made["cli"]("runs", "export", made["plain"], made["sampled"], "-f", "latex",
                      "--db", made["ws"])
    assert tex.count(r"\begin{tabular}") == 2 and tex.count(r"\end{tabular}") == 2
    assert f"{made['sampled']} & " + " & ".join(
        ["recommend movies/test openai/stub-model", "3", *sds]) + r" \\" in tex


def test_a_paired_export_carries_the_spread_of_the_shared_sessions(made):
    text = made["cli"]("runs", "export", made["plain"], made["sampled"], "--paired",
                       "--resamples", "200", "--db", made["ws"])
    cmp = json.loads(made["cli"]("runs", "compare", made["plain"], made["sampled"], "--json",
                                 "--resamples", "200", "--db", made["ws"]))
    _, sampled = _csv(text)
    got = cmp["runs"][1]["metrics"]
    assert int(sampled["samples"]) == got["samples"] == 3
    assert float(sampled["ndcg@10_sd"]) == pytest.approx(got["spread"]["ndcg@10"]["sd"],
                                                         abs=1e-6)


def test_the_runs_screen_export_writes_the_spread(made):
    """The Runs screen's `x` calls write_exports: the same tables."""
    from re2llm_tui.evaluation.run_export import export_table, write_exports

    _, records = _records(made["ws"], [made["plain"], made["sampled"]])
    paths = write_exports(records, made["tmp"] / "exports", "runs-x", workspace=made["ws"])
    by = {p.suffix: p.read_text(encoding="utf-8") for p in paths}
    assert by[".csv"] == export_table(records, "csv")
    assert "ndcg@10_sd" in by[".csv"].splitlines()[0]
    from re2llm_tui.evaluation.metrics import SPREAD_TITLE

    assert SPREAD_TITLE in by[".md"] and SPREAD_TITLE in by[".tex"]


# --------------------------------------------------------------------------- evaluate --out

def test_evaluate_out_carries_the_spread(made):
    from re2llm_tui.evaluation.metrics import SPREAD_TITLE

    data = json.loads(made["eval_out"]["json"].read_text(encoding="utf-8"))
    rows = _csv(made["eval_out"]["csv"].read_text(encoding="utf-8"))
    by = {r["policy"]: r for r in rows}
    sampled = [name for name, r in data["rows"].items() if r.get("samples")]
    assert "no hint" in sampled and "content ranker (no LLM)" not in sampled
    for name in sampled:
        row, want = by[name], data["rows"][name]
        assert want["samples"] == 2 and int(row["samples"]) == 2
        for m in METRICS:
            for k in ("sd", "min", "max"):
                assert float(row[f"{m}_{k}"]) == pytest.approx(want["spread"][m][k], abs=1e-6)
    content = by["content ranker (no LLM)"]
    assert content["samples"] == "" and content["ndcg@10_sd"] == ""
    assert "samples" not in data["rows"]["content ranker (no LLM)"]
    md = made["eval_out"]["md"].read_text(encoding="utf-8")
    assert SPREAD_TITLE in md
    no_hint = data["rows"]["no hint"]
    assert ("| no hint | 2 | " + " | ".join(f"{no_hint['spread'][m]['sd']:.3f}"
                                            for m in METRICS) + " |") in md


def test_a_plain_evaluation_exports_no_spread(made):
    from re2llm_tui.evaluation.metrics import SPREAD_TITLE

    res = made["plain_eval"]
    assert not any(s.get("spread") for s in res.rows.values())
    header = next(csv.reader(io.StringIO(res.to_csv())))
    assert _spread_columns(header) == [] and "ndcg@10" in header
    assert SPREAD_TITLE not in res.to_markdown()
    assert all("spread" not in row for row in json.loads(res.to_json())["rows"].values())


# --------------------------------------------------------------------------- rewards export

def test_rewards_export_split(made):
    base = ["rewards", "export", "-d", "games", "--db", made["ws"], "--data-dir",
            made["data_dir"]]
    every = _csv(made["cli"](*base))
    assert {r["split"] for r in every} == {"train", "test"}
    for r in every:
        assert r["session_id"].startswith(r["split"] + "-")
    for split in ("train", "test"):
        got = _csv(made["cli"](*base, "--split", split))
        assert got and all(r["split"] == split for r in got)
        assert got == [r for r in every if r["split"] == split]
    lines = [json.loads(x) for x in made["cli"](*base, "-f", "jsonl", "--split",
                                                "test").splitlines()]
    assert lines and {x["split"] for x in lines} == {"test"}


def test_rewards_export_bad_split_is_one_line(made, run_cli):
    code, out, err = run_cli("rewards", "export", "-d", "games", "--db", made["ws"],
                             "--data-dir", made["data_dir"], "--split", "valid")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "re2llm-tui: error: --split must be train, test or all (got 'valid')"]
