"""The embedded model: seconds per ranking call, and the client's overhead over llama-cpp-python.

    python benchmarks/bench_llm_local.py [--n 3] [--dataset movies] [--method logprob]

For each of ``--n`` test sessions, the same ranking is computed (a) directly with the
in-process model (``local.rank_local``: our ranking code on llama-cpp-python, no litellm,
no cache) and (b) through ``LLMClient.rank`` (litellm custom provider, cache lookup and
commit, worker thread), alternating which goes first.  Prints seconds per call and the
ratio (b)/(a) (target <= 1.10).  Also times a short free-text chat turn the same two ways
(``Llama.create_chat_completion`` vs ``LLMClient.complete``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--dataset", default="movies")
    ap.add_argument("--method", default=None, help="default: the local default method")
    args = ap.parse_args(argv)

    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.llm import local
    from re2llm_tui.llm.client import DEFAULT_MODEL, LLMClient
    from re2llm_tui.llm.ranking import DEFAULT_LOCAL_METHOD

    method = args.method or DEFAULT_LOCAL_METHOD
    sessions = load_sessions(args.dataset, "test")[:args.n]
    lm = local.get_model(DEFAULT_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        client = LLMClient(Path(tmp) / "kb.sqlite", rank_method=method)
        client.check()
        # warm-up: litellm import, provider registration, first decode
        client.complete_sync([{"role": "user", "content": "hi"}], max_tokens=4)
        direct_t, client_t = [], []
        for i, s in enumerate(sessions):
            order = ("direct", "client") if i % 2 == 0 else ("client", "direct")
            for way in order:
                t0 = time.perf_counter()
                if way == "direct":
                    d = local.rank_local(DEFAULT_MODEL, s.prompt, s.candidates, 10, method)
                    direct_t.append(time.perf_counter() - t0)
                else:
                    r = client.rank_sync(s.prompt, s.candidates, k=10)
                    client_t.append(time.perf_counter() - t0)
                    assert not r.cached
            assert r.ranking == d.ranking, "client and direct rankings differ"
            print(f"{s.id}: direct {direct_t[-1]:.2f} s, client {client_t[-1]:.2f} s", flush=True)
        sd, sc = sum(direct_t) / len(direct_t), sum(client_t) / len(client_t)
        print(f"(c) {args.dataset} ranking ({method}), {len(sessions)} sessions: "
              f"direct llama-cpp-python {sd:.2f} s/call, through LLMClient {sc:.2f} s/call, "
              f"ratio {sc / sd:.3f} (target <= 1.10: {'OK' if sc / sd <= 1.10 else 'MISSED'})")

        # a short free-text turn: Llama.create_chat_completion vs LLMClient.complete
        chat_d, chat_c = [], []
        for j in range(3):
            msgs = [{"role": "user", "content": f"Give one tip for choosing a film, #{j}."}]
            t0 = time.perf_counter()
            with lm.lock:
                lm.llama.n_tokens = 0
                lm.llama.create_chat_completion(messages=msgs, temperature=0.0, seed=0,
                                                max_tokens=48, repeat_penalty=local.REPEAT_PENALTY)
            chat_d.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.complete_sync(msgs, max_tokens=48)
            chat_c.append(time.perf_counter() - t0)
        cd, cc = sum(chat_d) / 3, sum(chat_c) / 3
        print(f"(c) free-text turn (48 tokens max): direct {cd:.2f} s, through LLMClient "
              f"{cc:.2f} s, ratio {cc / cd:.3f}")
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
