"""HR/NDCG of the no-LLM content ranker (MiniLM cosine to the mean session embedding).

The cheap baseline every LLM row should be compared with.  Prints one table per dataset.
Usage: python benchmarks/content_ranker.py [--limit 100] [--split test]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    from rich.console import Console

    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.evaluation.metrics import format_table, rank_of, summarize
    from re2llm_tui.store.workspace import open_workspace
    from re2llm_tui.utilization.session_encoder import content_rankings

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = open_workspace(os.path.join(tmp, "kb.sqlite"))
        for domain in ("games", "movies"):
            sessions = load_sessions(domain, args.split)[: args.limit]
            t0 = time.perf_counter()
            rankings = content_rankings(sessions, db=db)
            dt = time.perf_counter() - t0
            ranks = [rank_of(r, s.target_index) for r, s in zip(rankings, sessions)]
            rows[f"{domain} content ranker ({dt:.0f} s)"] = summarize(ranks)
    Console().print(format_table(rows, title=f"content ranker, first {args.limit} "
                                 f"{args.split} sessions (random: HR@10 0.200, NDCG@10 0.091)"))


if __name__ == "__main__":
    main()
