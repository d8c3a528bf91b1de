"""Measure the local model's ranking methods on real test sessions and print HR@10 / NDCG@10.

    python benchmarks/bench_llm_ranking.py [--n 5] [--methods logprob,sequential,generate]
        [--datasets games,movies] [--out results.jsonl]

The README's figures come from ``--n 100 --out FILE`` (hours on 2 cores; resumable); the
default (5 sessions) is a quick look for ``make bench``.

Runs the embedded SmolLM2-135M in-process (one thread; ~5-20 s per session and method on
2 cores), interleaving methods and datasets session by session so partial results are
comparable.  With ``--out``, results are appended there as JSON lines and an existing file
is resumed (finished (dataset, session, method) triples are skipped).  Random ranking of 10
out of 50 candidates gives HR@10 = 0.20 and NDCG@10 = 0.091 in expectation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

RANDOM = {"hr@10": 0.20, "ndcg@10": 0.091}


def _metrics(rank):
    hit = rank is not None and rank <= 10
    return {"hr@10": 1.0 if hit else 0.0, "ndcg@10": 1.0 / math.log2(rank + 1) if hit else 0.0}


def summarize(rows):
    out = {}
    seen = set()
    for r in rows:
        if (r["dataset"], r["session"], r["method"]) in seen:
            continue  # the first result of a (dataset, session, method) counts
        seen.add((r["dataset"], r["session"], r["method"]))
        key = (r["dataset"], r["method"])
        d = out.setdefault(key, {"n": 0, "hr@10": 0.0, "ndcg@10": 0.0, "s": 0.0,
                                 "distinct": 0, "k": 0})
        m = _metrics(r["rank"])
        d["n"] += 1
        d["hr@10"] += m["hr@10"]
        d["ndcg@10"] += m["ndcg@10"]
        d["s"] += r["seconds"]
        d["distinct"] += r["n_items"]
    table = []
    for (ds, method), d in sorted(out.items()):
        n = d["n"]
        table.append({"dataset": ds, "method": method, "n": n, "hr@10": d["hr@10"] / n,
                      "ndcg@10": d["ndcg@10"] / n, "s_per_session": d["s"] / n,
                      "items_per_ranking": d["distinct"] / n})
    return table


def format_table(table) -> str:
    lines = ["| dataset | method | n | HR@10 | NDCG@10 | items/ranking | s/session |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for t in table:
        lines.append(f"| {t['dataset']} | {t['method']} | {t['n']} | {t['hr@10']:.3f} | "
                     f"{t['ndcg@10']:.3f} | {t['items_per_ranking']:.1f} | "
                     f"{t['s_per_session']:.1f} |")
    lines.append(f"| (random) | - | - | {RANDOM['hr@10']:.3f} | {RANDOM['ndcg@10']:.3f} | 10 | - |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--methods", default="logprob,sequential")
    ap.add_argument("--datasets", default="games,movies")
    ap.add_argument("--out", default=None, help="JSON lines file (appended, resumed)")
    ap.add_argument("--summary", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)

    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.llm.local import get_model

    methods = [m for m in args.methods.split(",") if m]
    datasets = [d for d in args.datasets.split(",") if d]
    rows, done = [], set()
    if args.out is None:
        import tempfile

        args.out = os.path.join(tempfile.mkdtemp(), "ranking.jsonl")
    if os.path.exists(args.out):
        with open(args.out) as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    rows.append(r)
                    done.add((r["dataset"], r["session"], r["method"]))
    sessions = {d: load_sessions(d, "test")[:args.n] for d in datasets}
    lm = get_model()
    t_start = time.time()
    with open(args.out, "a") as fh:
        for i in range(args.n):
            for d in datasets:
                if i >= len(sessions[d]):
                    continue
                s = sessions[d][i]
                for m in methods:
                    if (d, s.id, m) in done:
                        continue
                    t0 = time.perf_counter()
                    out = lm.rank(s.prompt, s.candidates, 10, m)
                    dt = time.perf_counter() - t0
                    rank = out.ranking.index(s.target_index) + 1 \
                        if s.target_index in out.ranking else None
                    r = {"dataset": d, "session": s.id, "method": m, "rank": rank,
                         "n_items": len(set(out.ranking)), "seconds": round(dt, 3),
                         "ranking": out.ranking}
                    rows.append(r)
                    fh.write(json.dumps(r) + "\n")
                    fh.flush()
                    print(f"[{time.time() - t_start:7.0f}s] {d} {s.id} {m}: rank={rank} "
                          f"({dt:.1f}s)", flush=True)
            if (i + 1) % 10 == 0:
                print(format_table(summarize(rows)), flush=True)
    table = summarize(rows)
    text = format_table(table)
    print(text)
    if args.summary:
        with open(args.summary, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
