"""Your own data at real scale (issue 22): import time and peak memory, then what one
command on the imported dataset costs.

    python benchmarks/bench_data_import.py [--sizes 50 200] [--log-rows 1250000 5000000]
                                           [--model MODEL] [--keep DIR]

For each size (MB of JSON-lines sessions, ~2,400 sessions a MB, 50 given candidates
each) and each log size (rows of a user,item,timestamp CSV), in a temporary folder:

* the data are generated (seeded; 50,000 items with a title and a genre);
* ``data import`` runs in a child process; its wall time and peak RSS
  (``getrusage(RUSAGE_CHILDREN)`` of a one-child wrapper) are printed;
* then, on the JSON-lines import, each in its own child: ``data info``,
  ``recommend --limit 1 --dry-run``, ``recommend --sample 100 --seed 1 --dry-run``, and
  the TUI opened headless (``App.run_test``) with the seconds until the Sessions screen
  shows its first page.

The targets (issue 22): import <= 1.2 GB peak and faster than 86.5 s (the earlier import
of the 200 MB file); later commands <= 3 s and <= 500 MB; a later command's memory the same
at both sizes (it grows with the sessions used, not the dataset).  Prints one table;
``--json`` prints the figures as JSON too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
N_ITEMS = 50_000
GB = 1 << 30

WRAP = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rc": p.returncode, "wall_s": wall, "peak_rss": rss,
                  "err": p.stderr[-400:]}))
"""

TUI = r"""
import asyncio, json, os, sys, time
t0 = time.perf_counter()
from re2llm_tui.tui.app import make_app
from textual.widgets import DataTable

async def main():
    app = make_app(sys.argv[1], db=sys.argv[3], data_dir=sys.argv[2], split="train")
    async with app.run_test(size=(120, 40)) as pilot:
        while True:
            try:
                n = app.screen.query_one(DataTable).row_count
            except Exception:
                n = 0
            if n:
                break
            await pilot.pause(0.01)
        first = time.perf_counter() - t0
    with open(sys.argv[4], "w") as f:
        json.dump({"first_page_s": first, "rows": n}, f)

asyncio.run(main())
"""


def cli(*args) -> list[str]:
    return [PY, "-c", "from re2llm_tui.cli import entry; entry()", *map(str, args)]


def measured(cmd: list[str], timeout: float = 1800) -> dict:
    out = subprocess.run([PY, "-c", WRAP, *cmd], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        res["error"] = res["err"].strip().splitlines()[-1:] or ["?"]
    return res


def write_items(path: Path) -> None:
    genres = ["drama", "comedy", "crime", "poetry", "science", "travel"]
    with open(path, "w") as f:
        f.write("item_id,title,genre\n")
        for i in range(N_ITEMS):
            f.write(f"{i},Title of item {i},{genres[i % len(genres)]}\n")


def write_sessions(path: Path, megabytes: int, seed: int = 1) -> int:
    """JSON lines, each with history, target and 50 distinct candidates (the target among
    them), until the file holds ``megabytes`` MB."""
    import numpy as np

    rng = np.random.default_rng(seed)
    target_bytes = megabytes * 1_000_000
    n = written = 0
    with open(path, "w") as f:
        while written < target_bytes:
            k = 1000
            hist_len = rng.integers(3, 15, size=k)
            starts = rng.integers(0, N_ITEMS, size=k)
            strides = rng.integers(1, 1000, size=k) * 2 + 1        # odd: distinct mod 50,000
            pos = rng.integers(0, 50, size=k)
            hist = rng.integers(0, N_ITEMS, size=(k, 15))
            lines = []
            for j in range(k):
                cands = ((starts[j] + strides[j] * np.arange(50)) % N_ITEMS).tolist()
                if len(set(cands)) < 50:
                    cands = list(range(starts[j] % (N_ITEMS - 50), starts[j] % (N_ITEMS - 50) + 50))
                h = [x for x in hist[j, :hist_len[j]].tolist() if x not in cands] or [cands[0] ^ 1]
                lines.append(json.dumps({"history": h, "target": cands[pos[j]],
                                         "candidates": cands}) + "\n")
            chunk = "".join(lines)
            f.write(chunk)
            written += len(chunk)
            n += k
    return n


def write_log(path: Path, rows: int, seed: int = 2) -> None:
    """user,item,timestamp rows in time order: ~20 interactions per user over 3 days."""
    import numpy as np

    rng = np.random.default_rng(seed)
    users = max(1, rows // 20)
    t0 = 1_600_000_000
    user = rng.integers(0, users, size=rows)
    day = rng.integers(0, 3, size=rows)
    ts = t0 + day * 86400 + (user % 7) * 3600 + rng.integers(0, 7200, size=rows)
    item = rng.integers(0, N_ITEMS, size=rows)
    order = np.argsort(ts, kind="stable")
    with open(path, "w") as f:
        f.write("user_id,item_id,timestamp\n")
        for k in range(0, rows, 200_000):
            idx = order[k:k + 200_000]
            f.write("".join(f"u{u},{i},{t}\n" for u, i, t in
                            zip(user[idx].tolist(), item[idx].tolist(), ts[idx].tolist())))


def tui_first_page(name: str, data_dir: Path, db: Path) -> dict:
    report = db.parent / f"tui-{name}.json"
    res = measured([PY, "-c", TUI, name, str(data_dir), str(db), str(report)], timeout=600)
    if report.is_file():
        res.update(json.loads(report.read_text()))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--log-rows", type=int, nargs="+", default=[1_250_000, 5_000_000])
    ap.add_argument("--model", default=None, help="--model of the dry runs (default: the "
                                                   "tool's default)")
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-data-import-"))
    base.mkdir(parents=True, exist_ok=True)
    items = base / "items.csv"
    write_items(items)
    model = ["--model", args.model] if args.model else []
    figures: list[dict] = []
    print(f"work folder: {base}", flush=True)
    # the floor: the same dry run on the release's games (500 + 100 sessions), whatever
    # the data -- Python, the CLI, the LLM client's imports (litellm) and the estimate
    floor = {"input": "release games (floor)",
             "recommend --limit 1 --dry-run": measured(cli(
                 "recommend", "--dataset", "games", "--limit", "1", "--dry-run", *model,
                 "--db", base / "ws-floor.sqlite"))}
    figures.append(floor)
    for mb in args.sizes:
        sess = base / f"sessions-{mb}mb.jsonl"
        t = time.perf_counter()
        n = write_sessions(sess, mb)
        print(f"generated {sess.name}: {n} sessions, {sess.stat().st_size / 1e6:.0f} MB "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        dd, db, name = base / f"dd-{mb}", base / f"ws-{mb}.sqlite", f"s{mb}"
        common = ["--data-dir", dd, "--db", db]
        row = {"input": f"{mb} MB JSON lines", "sessions": n,
               "import": measured(cli("data", "import", name, "--sessions", sess, "--items",
                                      items, "--test-share", "0.2", *common))}
        print(f"  import: {row['import']}", flush=True)
        row["data info"] = measured(cli("data", "info", "--dataset", name, *common))
        row["recommend --limit 1 --dry-run"] = measured(cli(
            "recommend", "--dataset", name, "--limit", "1", "--dry-run", *model, *common))
        row["recommend --sample 100 --seed 1 --dry-run"] = measured(cli(
            "recommend", "--dataset", name, "--sample", "100", "--seed", "1", "--dry-run",
            *model, *common))
        row["tui first page"] = tui_first_page(name, dd, db)
        figures.append(row)
        sess.unlink()
    for rows in args.log_rows:
        log = base / f"log-{rows}.csv"
        write_log(log, rows)
        print(f"generated {log.name}: {rows} rows, {log.stat().st_size / 1e6:.0f} MB",
              flush=True)
        dd, db, name = base / f"dd-log-{rows}", base / f"ws-log-{rows}.sqlite", f"log{rows}"
        row = {"input": f"{rows:,} log rows", "import": measured(cli(
            "data", "import", name, "--sessions", log, "--items", items, "--data-dir", dd,
            "--db", db))}
        print(f"  import: {row['import']}", flush=True)
        figures.append(row)
        log.unlink()
    print()
    print(f"{'input':<22} {'what':<44} {'wall s':>8} {'peak MB':>8}")
    for row in figures:
        for what, res in row.items():
            if not isinstance(res, dict):
                continue
            wall = res.get("wall_s")
            rss = res.get("peak_rss")
            extra = ""
            if "first_page_s" in res:
                extra = f"  first page {res['first_page_s']:.2f} s ({res['rows']} rows)"
            if res.get("error"):
                extra += f"  FAILED: {res['error']}"
            if what == "import":       # the log's target is memory only
                ok = rss <= 1.2 * GB and (wall <= 86.5 or "log" in row["input"])
            elif what == "tui first page":
                ok = res.get("first_page_s", 99) <= 3 and rss <= 500 * 2**20
            else:
                ok = wall <= 3 and rss <= 500 * 2**20
            mark = "" if row["input"].startswith("release") else ("  ok" if ok else "  OVER")
            print(f"{row['input']:<22} {what:<44} {wall:>8.2f} {rss / 2**20:>8.0f}"
                  f"{extra}{mark}")
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    random.seed(0)
    main()
