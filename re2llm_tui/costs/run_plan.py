"""A first run that finishes: size train + evaluate to a time budget from the measured speed.

With the embedded demo model a full games reward table (500 sessions x 21 actions) takes
hours, so the workbench proposes a slice -- the first ``n`` training sessions with every
action, PPO on that table, then an evaluation of the first ``m`` test sessions -- sized to
finish in about :data:`DEFAULT_BUDGET_S` on this machine, and says what the full set costs.

Speed model of one session's outcomes on a local engine with prefix reuse: the first call
decodes the whole prompt (``first_s``), each further action of the same session decodes only
its differing tail and the ranking (``reuse_s``).  Both come from this workspace's own calls
of the model when there are enough of them (the engine records the prompt tokens it reused),
else from the figures measured on this class of machine (:data:`MEASURED`).  A remote model
is estimated as calls x latency / concurrency.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import numpy as np

#: 15 minutes: what a user waits for a first complete run
DEFAULT_BUDGET_S = 15 * 60
#: measured on this 2-core machine, SmolLM2-135M on one thread, sequential ranking with
#: prefix reuse (benchmarks/bench_reward_engine.py, 4 sessions x 21 actions: games first
#: action 7.05 s, others 1.38 s; movies 2.68 s / 0.76 s), rounded up a little for the
#: TUI's worker, which runs at a lower priority beside the UI (measured there: games
#: first calls 6-7 s, others 1.6-2.0 s): seconds of the first call of a session and of each
#: further action of the same session
MEASURED = {"games": {"first_s": 7.5, "reuse_s": 1.7},
            "movies": {"first_s": 3.0, "reuse_s": 0.85}}
#: prompt-token band of each dataset's ranking prompts (to pick this dataset's calls)
PROMPT_TOKENS = {"games": (600, 1400), "movies": (250, 600)}
#: a remote call when nothing was measured yet
REMOTE_CALL_S = 2.0
#: fixed costs of a run: process start, imports, model load, session embeddings
STARTUP_S = 20.0
#: PPO steps of a proposed run (on a complete table: seconds, not minutes)
PROPOSED_STEPS = 20_480
PROPOSED_LOG_EVERY = 512
#: the outcomes an evaluation session needs without the oracle: no hint, agent, random, best
EVAL_ACTIONS = 4


@dataclass
class Speed:
    first_s: float
    reuse_s: float
    source: str          # "measured (N calls)" | "defaults for this machine" | "remote latency"

    def session_s(self, missing: int) -> float:
        """Seconds for ``missing`` outcomes of one session, back to back."""
        return 0.0 if missing <= 0 else self.first_s + (missing - 1) * self.reuse_s


@dataclass
class RunPlan:
    dataset: str
    model: str
    is_local: bool
    workers: int
    n_actions: int
    train_sessions: int           # the proposed slice
    train_total: int              # the whole training split
    table_missing: int            # outcomes of the slice still to compute
    eval_sessions: int
    eval_total: int
    eval_missing: int             # outcomes the evaluation still needs (no oracle)
    oracle: bool                  # whether the oracle row fits in the budget
    oracle_missing: int           # extra outcomes the oracle would need
    steps: int
    log_every: int
    table_s: float
    eval_s: float
    oracle_s: float
    total_s: float
    full_table_s: float           # the whole training split's table, for comparison
    full_table_missing: int
    speed: Speed

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """What the confirmation shows (plain text)."""
        out = [
            f"Proposed run on {self.dataset} with {self.model}:",
            f"  1. reward table: first {self.train_sessions} of {self.train_total} training "
            f"sessions x {self.n_actions} actions = {self.train_sessions * self.n_actions} "
            f"outcomes, {self.table_missing} to compute (~{fmt_duration(self.table_s)})",
            f"  2. PPO: {self.steps:,} steps on that table (seconds)",
            f"  3. evaluation: first {self.eval_sessions} of {self.eval_total} test sessions "
            f"(no hint, agent, random, best hint), {self.eval_missing} outcomes "
            f"(~{fmt_duration(self.eval_s)})",
        ]
        if self.oracle:
            out.append(f"     with the oracle row (+{self.oracle_missing} outcomes, "
                       f"~{fmt_duration(self.oracle_s)})")
        else:
            out.append(f"     oracle row left out: it needs every action on every session "
                       f"(+{self.oracle_missing} outcomes, ~{fmt_duration(self.oracle_s)})")
        out.append(f"  about {fmt_duration(self.total_s)} in all; speed: {self.speed.source} "
                   f"(first call of a session {self.speed.first_s:.1f} s, each further hint "
                   f"{self.speed.reuse_s:.1f} s)")
        out.append(f"  the full training table ({self.train_total} x {self.n_actions}) would "
                   f"take ~{fmt_duration(self.full_table_s)}")
        return out


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def measured_speed(db, model: str, dataset: str, *, is_local: bool = True,
                   concurrency: int = 1) -> Speed:
    """This workspace's own speed of ``model`` on ``dataset``-sized ranking prompts."""
    lo, hi = PROMPT_TOKENS.get(dataset, (0, 10 ** 9))
    from re2llm_tui.store.calls import rank_latencies

    rows = rank_latencies(db, model, lo, hi)
    # a session's first call reuses at most the chat template's opening tokens
    first = [lat for lat, cached, pt in rows if cached < pt / 2 and lat > 0]
    reuse = [lat for lat, cached, pt in rows if cached >= pt / 2 and lat > 0]
    if not is_local:
        lat = statistics.median(first + reuse) if len(first + reuse) >= 3 else REMOTE_CALL_S
        per = lat / max(1, concurrency)
        src = f"measured ({len(first + reuse)} calls)" if len(first + reuse) >= 3 \
            else "an assumed remote latency"
        return Speed(per, per, src)
    base = MEASURED.get(dataset, MEASURED["games"])
    first_s = statistics.median(first) if len(first) >= 3 else base["first_s"]
    reuse_s = statistics.median(reuse) if len(reuse) >= 3 else base["reuse_s"]
    n = (len(first) >= 3) * len(first) + (len(reuse) >= 3) * len(reuse)
    source = f"measured here ({n} calls)" if n else "figures measured on this class of machine"
    return Speed(first_s, reuse_s, source)


def _missing_by_session(db, client_model: str, context: str, dataset: str, sessions,
                        keys: list[str], wanted_cols: list[int] | None = None) -> list[int]:
    """How many wanted outcomes each session still lacks (reads the reward table only)."""
    from re2llm_tui.store.outcomes import known_keys

    known = known_keys(db, dataset, client_model, context, keys)
    cols = range(len(keys)) if wanted_cols is None else wanted_cols
    out = []
    for s in sessions:
        have = known.get(s.id, set())
        out.append(sum(1 for c in cols if keys[c] not in have))
    return out


def propose(db, client, ds, *, budget_s: float = DEFAULT_BUDGET_S,
            workers: int = 1) -> RunPlan:
    """The largest train/eval slice whose run fits ``budget_s`` (see the module docstring).

    About 70% of the budget goes to the reward table, the rest to the evaluation; at least 4
    training and 5 test sessions.  Nothing is computed: only the stored table is read.
    """
    from re2llm_tui.data.dataset import require
    from re2llm_tui.kb import KnowledgeBase
    from re2llm_tui.utilization.rewards import hint_key, reward_context

    ds = require(ds)
    dataset = ds.name
    _, actions = KnowledgeBase(db, ds).actions()
    keys = [hint_key(t) for _, t in actions]
    n_actions = len(actions)
    train = ds.sessions("train")
    test = ds.sessions("test")
    context = reward_context(client)
    speed = measured_speed(db, client.model, dataset, is_local=client.is_local,
                           concurrency=client.concurrency)
    workers = max(1, int(workers))
    miss_train = _missing_by_session(db, client.model, context, dataset, train, keys)
    # the evaluation needs about EVAL_ACTIONS outcomes per session (no hint first)
    miss_eval = _missing_by_session(db, client.model, context, dataset, test, keys,
                                    list(range(min(EVAL_ACTIONS, n_actions))))
    miss_oracle = _missing_by_session(db, client.model, context, dataset, test, keys)
    per_train = [speed.session_s(m) / workers for m in miss_train]
    per_eval = [speed.session_s(m) / workers for m in miss_eval]
    cum_train = np.cumsum(per_train)
    cum_eval = np.cumsum(per_eval)
    usable = max(60.0, budget_s - STARTUP_S * 2)
    n_train = int(np.searchsorted(cum_train, 0.7 * usable, side="right"))
    n_train = max(min(4, len(train)), min(n_train, len(train)))
    left = usable - float(cum_train[n_train - 1])
    n_eval = int(np.searchsorted(cum_eval, left, side="right"))
    n_eval = max(min(5, len(test)), min(n_eval, len(test)))
    table_s = float(cum_train[n_train - 1])
    eval_s = float(cum_eval[n_eval - 1])
    # the oracle's extra outcomes, each session's prefix being hot after its first calls
    extra = [max(0, o - e) for o, e in zip(miss_oracle[:n_eval], miss_eval[:n_eval])]
    oracle_s = sum(x * speed.reuse_s for x in extra) / workers
    fits = table_s + eval_s + oracle_s + 2 * STARTUP_S <= budget_s * 1.05
    total = table_s + eval_s + (oracle_s if fits else 0.0) + 2 * STARTUP_S
    return RunPlan(
        dataset=dataset, model=client.model, is_local=client.is_local, workers=workers,
        n_actions=n_actions, train_sessions=n_train, train_total=len(train),
        table_missing=int(sum(miss_train[:n_train])), eval_sessions=n_eval,
        eval_total=len(test), eval_missing=int(sum(miss_eval[:n_eval])), oracle=bool(fits),
        oracle_missing=int(sum(extra)), steps=PROPOSED_STEPS, log_every=PROPOSED_LOG_EVERY,
        table_s=table_s, eval_s=eval_s, oracle_s=oracle_s, total_s=total,
        full_table_s=float(cum_train[-1]), full_table_missing=int(sum(miss_train)),
        speed=speed)
