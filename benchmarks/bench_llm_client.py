"""LLM client throughput and cache speed against the loopback stub server.

    python benchmarks/bench_llm_client.py [--calls 1000] [--latency 0.05] [--conc 1,8,32]
                                          [--transports litellm,fast] [--procs 2]

(a) ``--calls`` distinct chat calls through LLMClient (-> HTTP -> stub answering after
    ``--latency`` s, the stub in its own process) at each concurrency, for each transport
    (``litellm``: litellm's acompletion; ``fast``: the client's own HTTP path for
    OpenAI-compatible servers); prints the wall time and the efficiency ideal/actual with
    ideal = calls * latency / concurrency (target >= 0.9 at 32), the client process's CPU
    per call (target <= 3 ms), the stub's own CPU per call (when the stub is the bound, the
    efficiency says nothing about the client) and the load average (other work on the
    machine makes every figure noisy).  A last line per transport repeats the highest
    concurrency at ``--slow-latency`` (1 s, closer to a real LLM call).
(b) ``recommend`` over 100 real test sessions, then the same again fully served from the
    cache: prints the rerun's wall time (target < 1 s).
(c) ``--procs`` client processes (each with its own client, loop and connections, at the
    highest concurrency) against 2 stub servers, against 1 such process: aggregate calls/s
    and the speedup (target >= 1.8x for 2), per transport.  Each process warms up first
    (imports, connections); the figure is the steady state.
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


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def load() -> float:
    return os.getloadavg()[0]


def bench_throughput(n_calls: int, latency: float, concs: list[int],
                     transport: str = "auto") -> list[dict]:
    from re2llm_tui.llm.client import LLMClient

    proc, base = start_stub(latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # warm-up: imports and first connection are not part of the figure
            warm = LLMClient(Path(tmp) / "warm.sqlite", model="openai/stub", api_bases=[base],
                             transport=transport)
            warm.complete_sync([{"role": "user", "content": "warm"}])
            warm.close()
            for conc in concs:
                db = Path(tmp) / f"c{conc}.sqlite"
                client = LLMClient(db, model="openai/stub", api_bases=[base], concurrency=conc,
                                   timeout=30, transport=transport)
                kind = client.transport
                client.complete_sync([{"role": "user", "content": f"warm {conc}"}])

                async def go():
                    return await asyncio.gather(*[
                        client.complete([{"role": "user", "content": f"call {conc}-{i}"}])
                        for i in range(n_calls)])

                la = load()
                t0 = time.perf_counter()
                c0 = time.process_time()
                s0 = proc_cpu(proc.pid)
                results = client.run_sync(go())
                wall = time.perf_counter() - t0
                cpu_ms = (time.process_time() - c0) * 1000 / n_calls
                stub_ms = (proc_cpu(proc.pid) - s0) * 1000 / n_calls
                client.close()
                ideal = n_calls * latency / conc
                ok = sum(r.ok for r in results)
                lat = sorted(r.latency_s for r in results if r.ok) or [float("nan")]
                lat_ms = 1000 * sum(lat) / len(lat)
                # the client's process needs cpu_ms per call: with one core it cannot beat
                # n_calls * cpu_ms, whatever the concurrency
                bound = min(1.0, ideal / (n_calls * cpu_ms / 1000))
                rows.append({"transport": kind, "concurrency": conc, "latency_s": latency,
                             "calls": n_calls, "ok": ok, "wall_s": wall, "ideal_s": ideal,
                             "efficiency": ideal / wall, "calls_per_s": n_calls / wall,
                             "cpu_ms_per_call": cpu_ms, "stub_cpu_ms_per_call": stub_ms,
                             "cpu_bound_efficiency": bound, "load": la,
                             "mean_latency_ms": lat_ms})
                print(f"(a) {kind:7s} latency {latency * 1000:4.0f} ms, concurrency {conc:3d}: "
                      f"{n_calls} calls ({ok} ok) in {wall:6.2f} s; ideal {ideal:6.2f} s; "
                      f"efficiency {ideal / wall:.2f}; {n_calls / wall:6.1f} calls/s; client "
                      f"CPU {cpu_ms:.2f} ms/call (one core's bound on efficiency: {bound:.2f});"
                      f" stub CPU {stub_ms:.2f} ms/call; mean call latency {lat_ms:.1f} ms "
                      f"(efficiency cap {latency * 1000 / lat_ms:.2f}); load {la:.2f}",
                      flush=True)
    finally:
        proc.terminate()
        proc.wait()
    return rows


def _proc_worker(db: str, bases: list, transport: str, conc: int, n_calls: int, tag: str,
                 barrier, out) -> None:
    """One client process of (c): warm up, wait for the others, run, report."""
    from re2llm_tui.llm.client import LLMClient

    client = LLMClient(db, model="openai/stub", api_bases=bases, concurrency=conc, timeout=30,
                       transport=transport)

    async def go(prefix, n):
        return await asyncio.gather(*[
            client.complete([{"role": "user", "content": f"{prefix} {i}"}]) for i in range(n)])

    client.run_sync(go(f"warm {tag}", conc))       # imports, one connection per slot
    barrier.wait()
    t0 = time.time()
    c0 = time.process_time()
    res = client.run_sync(go(f"call {tag}", n_calls))
    out.put({"start": t0, "end": time.time(), "cpu_s": time.process_time() - c0,
             "ok": sum(r.ok for r in res)})
    client.close()


def bench_procs(n_calls: int, latency: float, conc: int, procs: int, transport: str) -> dict:
    """Aggregate calls/s of 1 and of ``procs`` client processes against 2 stub servers."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    stubs = [start_stub(latency) for _ in range(2)]
    bases = [b for _, b in stubs]
    rates = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in (1, procs):
                barrier, out = ctx.Barrier(n), ctx.Queue()
                ps = [ctx.Process(target=_proc_worker,
                                  args=(str(Path(tmp) / "procs.sqlite"), bases, transport, conc,
                                        n_calls, f"{n}-{j}", barrier, out)) for j in range(n)]
                s0 = sum(proc_cpu(p.pid) for p, _ in stubs)
                for p in ps:
                    p.start()
                got = [out.get(timeout=600) for _ in ps]
                for p in ps:
                    p.join()
                stub_ms = (sum(proc_cpu(p.pid) for p, _ in stubs) - s0) * 1000 / (n * n_calls)
                wall = max(g["end"] for g in got) - min(g["start"] for g in got)
                ok = sum(g["ok"] for g in got)
                cpu_ms = sum(g["cpu_s"] for g in got) * 1000 / (n * n_calls)
                rates[n] = ok / wall
                ideal = n * conc / latency
                print(f"(c) {transport:7s} {n} client process(es) x concurrency {conc} against 2 "
                      f"stubs ({latency * 1000:.0f} ms): {ok} calls in {wall:.2f} s = "
                      f"{ok / wall:6.1f} calls/s (ideal {ideal:.0f}); client CPU {cpu_ms:.2f} "
                      f"ms/call; stub CPU (incl. warm-up) {stub_ms:.2f} ms/call; load "
                      f"{load():.2f}", flush=True)
    finally:
        for p, _ in stubs:
            p.terminate()
            p.wait()
    speedup = rates[procs] / rates[1]
    print(f"(c) {transport:7s} {procs} processes vs 1: {speedup:.2f}x calls/s "
          f"(target >= {0.9 * procs:.1f}x)", flush=True)
    return {"transport": transport, "rates": rates, "speedup": speedup}


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
    ap.add_argument("--transports", default="litellm,fast",
                    help="comma-separated: litellm, fast, auto")
    ap.add_argument("--slow-latency", type=float, default=1.0,
                    help="also run this latency at the highest concurrency (0: skip)")
    ap.add_argument("--procs", type=int, default=2, help="(c): client processes (0: skip)")
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    args = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} cpus; python {sys.version.split()[0]}; load "
          f"{load():.2f}")
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    concs = [int(c) for c in args.conc.split(",")]
    if not args.skip_a:
        for tr in transports:
            bench_throughput(args.calls, args.latency, concs, tr)
            if args.slow_latency:
                # a latency closer to a real LLM's: the client's own overhead stops mattering
                bench_throughput(min(args.calls, 10 * max(concs)), args.slow_latency,
                                 [max(concs)], tr)
    if not args.skip_b:
        bench_cached_rerun()
    if args.procs > 1:
        for tr in transports:
            bench_procs(args.calls, args.latency, max(concs), args.procs, tr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
