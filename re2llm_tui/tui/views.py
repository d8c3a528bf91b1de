"""Read-only view data for the screens, assembled from the workspace and the core modules.

No Textual here and no method logic: these functions only select what a screen shows
(which stored run is the session's baseline, which runs cover a session, a reflection's
transcript) using the core's own readers (:mod:`re2llm_tui.store.runs`, :mod:`re2llm_tui.evaluation.metrics`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from re2llm_tui.evaluation import metrics

#: run kinds whose rankings are LLM recommendations of a session
RANKING_KINDS = ("score", "recommend", "evaluate")


@dataclass(frozen=True)
class SessionRow:
    id: str
    history_len: int
    baseline_rank: int | None
    has_baseline: bool
    n_reflections: int
    n_proposed: int

    @property
    def baseline(self) -> str:
        if not self.has_baseline:
            return "—"
        return "hit" if self.baseline_rank is not None and self.baseline_rank <= 10 else "miss"


@dataclass(frozen=True)
class StoredRanking:
    """One run's outcome for one session, as the detail screen shows it."""

    run_id: int
    label: str
    kind: str
    hint_id: int | None
    hint_text: str | None
    ranking: list[int]
    hallucinations: list[str]
    target_rank: int | None
    reply: str | None
    error: str | None

    @property
    def ndcg10(self) -> float:
        return metrics.ndcg_at(self.target_rank, 10)


def baseline_ranks(db, dataset: str, split: str) -> tuple[dict[str, int | None], int]:
    """session id -> target rank of its newest no-hint ranking (score or recommend runs of
    the split, failed items excluded), and how many runs contributed."""
    rows = db.query(
        "SELECT r.id AS run_id, i.session_id, i.target_rank FROM run_items i "
        "JOIN runs r ON r.id = i.run_id WHERE r.dataset=? AND r.split=? "
        "AND r.kind IN ('score', 'recommend') AND (r.hint_id IS NULL OR r.hint_id = 0) "
        "AND (r.hint_text IS NULL OR r.hint_text = '') AND i.error IS NULL "
        "ORDER BY r.id", [dataset, split])
    ranks: dict[str, int | None] = {}
    run_ids = set()
    for r in rows:
        ranks[r["session_id"]] = r["target_rank"]
        run_ids.add(r["run_id"])
    return ranks, len(run_ids)


def session_rows(db, sessions, dataset: str, split: str, *,
                 baseline: tuple[dict[str, int | None], int] | None = None) -> list[SessionRow]:
    """One row per session; ``baseline``: :func:`baseline_ranks`' result if already read."""
    ranks, _ = baseline if baseline is not None else baseline_ranks(db, dataset, split)
    refl: dict[str, tuple[int, int]] = {}
    for r in db.query("SELECT session_id, COUNT(*) AS n, COALESCE(SUM(n_proposed), 0) AS p "
                      "FROM reflections WHERE dataset=? GROUP BY session_id", [dataset]):
        refl[r["session_id"]] = (r["n"], r["p"])
    out = []
    for s in sessions:
        n, p = refl.get(s.id, (0, 0))
        out.append(SessionRow(id=s.id, history_len=len(s.history),
                              baseline_rank=ranks.get(s.id), has_baseline=s.id in ranks,
                              n_reflections=n, n_proposed=p))
    return out


def _run_label(run: dict) -> str:
    if run["kind"] == "evaluate":
        policy = (json.loads(run["params"]).get("policy") if run.get("params") else None)
        return f"#{run['id']} {policy or run['name']}"
    if run.get("hint_id"):
        return f"#{run['id']} hint {run['hint_id']}"
    if (run.get("hint_text") or "").strip():
        return f"#{run['id']} custom hint"
    return f"#{run['id']} no hint ({run['kind']})"


def session_rankings(db, dataset: str, session_id: str) -> list[StoredRanking]:
    """Every stored ranking of one session, oldest run first."""
    rows = db.query(
        "SELECT r.id, r.name, r.kind, r.hint_id, r.hint_text, r.params, i.ranking, "
        "i.hallucinations, i.target_rank, i.reply, i.error FROM run_items i "
        "JOIN runs r ON r.id = i.run_id WHERE r.dataset=? AND i.session_id=? "
        f"AND r.kind IN ({', '.join('?' for _ in RANKING_KINDS)}) ORDER BY r.id",
        [dataset, session_id, *RANKING_KINDS])
    out = []
    for r in rows:
        out.append(StoredRanking(
            run_id=r["id"], label=_run_label(r), kind=r["kind"], hint_id=r["hint_id"],
            hint_text=r["hint_text"], ranking=json.loads(r["ranking"] or "[]"),
            hallucinations=json.loads(r["hallucinations"] or "[]"),
            target_rank=r["target_rank"], reply=r["reply"], error=r["error"]))
    return out


def split_baseline_hinted(rankings: list[StoredRanking]) -> tuple[StoredRanking | None,
                                                                    list[StoredRanking]]:
    """(newest no-hint ranking, the others newest first)."""
    base = [r for r in rankings if r.hint_id in (None, 0) and not (r.hint_text or "").strip()
            and r.kind in ("score", "recommend")]
    chosen = base[-1] if base else None
    others = [r for r in reversed(rankings) if r is not chosen]
    return chosen, others


def reflections_of(db, dataset: str, session_id: str) -> list[dict]:
    return list(db.query("SELECT * FROM reflections WHERE dataset=? AND session_id=? ORDER BY id",
                         [dataset, session_id]))


def reflection_turns(db, reflection_id: int) -> list[dict]:
    return list(db.query("SELECT * FROM reflection_turns WHERE reflection_id=? ORDER BY seq",
                         [reflection_id]))


def reflection_hints(db, reflection_id: int) -> list[dict]:
    return list(db.query("SELECT * FROM reflection_hints WHERE reflection_id=? ORDER BY idx",
                         [reflection_id]))


def hint_texts(db, dataset: str) -> dict[int, str]:
    """id -> text of every stored hint of a dataset (for 'most similar' columns)."""
    return {r["id"]: r["text"] for r in db.query("SELECT id, text FROM hints WHERE dataset=?",
                                                 [dataset])}
