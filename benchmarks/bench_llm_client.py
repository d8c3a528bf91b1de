"""LLM client throughput and cache speed against the loopback stub server.

    python benchmarks/bench_llm_client.py [--calls 1000] [--latency 0.05] [--conc 1,8,32]

(a) ``--calls`` distinct chat calls through LLMClient (litellm -> HTTP -> stub answering
    after ``--latency`` s, the stub in its own process) at each concurrency; prints the
    wall time and the efficiency ideal/actual with ideal = calls * latency / concurrency
    (target >= 0.9 at 32).  Each line also prints the client process's CPU per call and the
    efficiency that this CPU cost alone allows on one core; a last line repeats the highest
    concurrency at ``--slow-latency`` (1 s, closer to a real LLM call).
(b) ``recommend`` over 100 real test sessions, then the same again fully served from the
    cache: prints the rerun's wall time (target < 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def start_stub(latency: float):
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "stub_server.py"),
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def bench_throughput(n_calls: int, latency: float, concs: list[int]) -> list[dict]:
    from re2llm_tui.llm.client import LLMClient

    proc, base = start_stub(latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # warm-up: litellm import and first connection are not part of the figure
            warm = LLMClient(Path(tmp) / "warm.sqlite", model="openai/stub", api_bases=[base])
            warm.complete_sync([{"role": "user", "content": "warm"}])
            warm.close()
            for conc in concs:
                db = Path(tmp) / f"c{conc}.sqlite"
                client = LLMClient(db, model="openai/stub", api_bases=[base], concurrency=conc,
                                   timeout=30)

                async def go():
                    return await asyncio.gather(*[
                        client.complete([{"role": "user", "content": f"call {conc}-{i}"}])
                        for i in range(n_calls)])

                t0 = time.perf_counter()
                c0 = time.process_time()
                results = client.run_sync(go())
                wall = time.perf_counter() - t0
                cpu_ms = (time.process_time() - c0) * 1000 / n_calls
                client.close()
                ideal = n_calls * latency / conc
                ok = sum(r.ok for r in results)
                # the client's process needs cpu_ms per call: with one core it cannot beat
                # n_calls * cpu_ms, whatever the concurrency
                bound = min(1.0, ideal / (n_calls * cpu_ms / 1000))
                rows.append({"concurrency": conc, "calls": n_calls, "ok": ok, "wall_s": wall,
                             "ideal_s": ideal, "efficiency": ideal / wall,
                             "calls_per_s": n_calls / wall, "cpu_ms_per_call": cpu_ms,
                             "cpu_bound_efficiency": bound})
                print(f"(a) latency {latency * 1000:.0f} ms, concurrency {conc:3d}: {n_calls} "
                      f"calls ({ok} ok) in {wall:7.2f} s; ideal {ideal:6.2f} s; efficiency "
                      f"{ideal / wall:.2f}; {n_calls / wall:6.1f} calls/s; client CPU "
                      f"{cpu_ms:.1f} ms/call (one core's bound on efficiency: {bound:.2f})",
                      flush=True)
    finally:
        proc.terminate()
        proc.wait()
    return rows


def bench_cached_rerun(n_sessions: int = 100) -> dict:
    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.evaluation.recommend import recommend
    from re2llm_tui.llm.client import LLMClient

    sessions = load_sessions("games", "test")[:n_sessions]
    proc, base = start_stub(0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "kb.sqlite"
            c = LLMClient(db, model="openai/stub", api_bases=[base], concurrency=16)
            t0 = time.perf_counter()
            first = recommend(sessions, c, dataset="games", split="test")
            t_first = time.perf_counter() - t0
            c.close()
            c = LLMClient(db, model="openai/stub", api_bases=[base])
            t0 = time.perf_counter()
            again = recommend(sessions, c, dataset="games", split="test")
            t_again = time.perf_counter() - t0
            c.close()
    finally:
        proc.terminate()
        proc.wait()
    assert again.cache_hits == n_sessions and again.calls == 0
    assert again.metrics == first.metrics
    print(f"(b) recommend over {n_sessions} sessions: first run {t_first:.2f} s "
          f"({first.calls} calls); rerun fully cached {t_again:.3f} s "
          f"({again.cache_hits} hits) -> target < 1 s: {'OK' if t_again < 1 else 'MISSED'}",
          flush=True)
    return {"first_s": t_first, "rerun_s": t_again}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--conc", default="1,8,32")
    ap.add_argument("--slow-latency", type=float, default=1.0,
                    help="also run this latency at the highest concurrency (0: skip)")
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    args = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} cpus; python {sys.version.split()[0]}")
    if not args.skip_a:
        concs = [int(c) for c in args.conc.split(",")]
        bench_throughput(args.calls, args.latency, concs)
        if args.slow_latency:
            # a latency closer to a real LLM's: the client's own overhead stops mattering
            bench_throughput(min(args.calls, 10 * max(concs)), args.slow_latency, [max(concs)])
    if not args.skip_b:
        bench_cached_rerun()
    return 0


if __name__ == "__main__":
    sys.exit(main())
