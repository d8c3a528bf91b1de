"""Seconds to import N hints into the KB (``re2llm-tui kb import``), and to undo the import.

    python benchmarks/bench_kb_import.py [--sizes 1000 10000 100000] [--dup-share 0.05] [--cli]

For each size, a fresh temporary workspace (seeded with a 20-hint stand-in release, no real
data needed) imports a generated hints.json of that many entries, of which about
``--dup-share`` repeat an earlier entry or an existing hint with other case, spacing or a
final stop (they are skipped and reported).  Prints, per size: entries, added, skipped, the
import's seconds, and the seconds of the ``kb undo`` that reverts it.  ``--cli`` runs the
import through ``re2llm-tui kb import`` in-process (its output goes to /dev/null) instead of
calling :func:`re2llm_tui.kb.store.import_hints`.

Measured on the 2-core dev box (see the README / issue 10 report for the figures).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RELEASE = [""] + [f"Release hint number {i}: prefer items that continue the session's theme."
                  for i in range(1, 21)]


def make_data_dir(base: Path) -> Path:
    """A stand-in release folder: only what seeding the games KB reads."""
    game = base / "data" / "game"
    game.mkdir(parents=True)
    (game / "example_train_text.json").write_text("[]", encoding="utf-8")
    (game / "hints.json").write_text(json.dumps(RELEASE), encoding="utf-8")
    return base / "data"


def make_entries(n: int, dup_share: float, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ("genre", "platform", "franchise", "price", "era", "studio", "mood", "length",
             "difficulty", "rating", "sequel", "co-op", "story", "graphics", "handheld")
    out = [""]  # entry 0, as in the release's hints.json
    while len(out) <= n:
        if len(out) > 2 and rng.random() < dup_share:
            j = rng.randrange(1, len(out) + len(RELEASE) - 1)
            pick = out[j] if j < len(out) else RELEASE[j - len(out) + 1]
            out.append(rng.choice((pick.upper(), "  " + pick + " ", pick.rstrip(".") + "!")))
            continue
        a, b = rng.sample(words, 2)
        out.append(f"When the {a} of recent items is consistent, favour candidates with the "
                   f"same {b} (case {len(out)}, variant {rng.randrange(10**6)}).")
    return out


def run_one(n: int, dup_share: float, use_cli: bool) -> dict:
    from re2llm_tui.kb import store as kb
    from re2llm_tui.store.workspace import open_workspace

    with tempfile.TemporaryDirectory(prefix="bench-kb-import-") as tmp:
        tmp = Path(tmp)
        data_dir = make_data_dir(tmp)
        ws = tmp / "kb.sqlite"
        db = open_workspace(ws)
        kb.ensure_seeded(db, "games", data_dir)
        src = tmp / "hints.json"
        src.write_text(json.dumps(make_entries(n, dup_share)), encoding="utf-8")
        t0 = time.perf_counter()
        if use_cli:
            from re2llm_tui.cli import main

            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                code = main(["kb", "import", str(src), "--db", str(ws), "--data-dir",
                             str(data_dir)])
            if code != 0:
                raise SystemExit(f"kb import exited {code}")
            added = len(kb.list_hints(db, "games")) - 20
            skipped = n - added
        else:
            report = kb.import_hints(db, "games", src, data_dir=data_dir)
            added, skipped = len(report.added), len(report.skipped)
        t_import = time.perf_counter() - t0
        t0 = time.perf_counter()
        kb.undo(db, "games", data_dir=data_dir)
        t_undo = time.perf_counter() - t0
        left = len(kb.list_hints(db, "games"))
        db.conn.close()
    if left != 20:
        raise SystemExit(f"undo left {left} hints, expected the 20 seeded ones")
    return {"n": n, "added": added, "skipped": skipped, "import_s": t_import, "undo_s": t_undo}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--dup-share", type=float, default=0.05)
    ap.add_argument("--cli", action="store_true", help="import through `re2llm-tui kb import`")
    args = ap.parse_args()
    print(f"{'entries':>8} {'added':>8} {'skipped':>8} {'import s':>9} {'undo s':>8}", flush=True)
    for n in args.sizes:
        r = run_one(n, args.dup_share, args.cli)
        print(f"{r['n']:>8} {r['added']:>8} {r['skipped']:>8} {r['import_s']:>9.2f} "
              f"{r['undo_s']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
