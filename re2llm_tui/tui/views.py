"""What the screens show, shaped from what the stores return.

No Textual, no SQL and no method logic here: the screens read the workspace through the
stores (:mod:`re2llm_tui.store.runs`, :mod:`re2llm_tui.store.reflections`, the
:class:`~re2llm_tui.kb.KnowledgeBase` handle) and these functions only turn those records
into rows (which stored run is the session's baseline, a run's label, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from re2llm_tui.evaluation import metrics


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
    #: the call behind the ranking (its thinking: ``calls.reasoning``)
    call_id: int | None = None

    @property
    def ndcg10(self) -> float:
        return metrics.ndcg_at(self.target_rank, 10)


def session_rows(sessions, ranks: Mapping[str, int | None],
                 reflections: Mapping[str, tuple[int, int]]) -> list[SessionRow]:
    """One row per session: ``ranks`` from :func:`re2llm_tui.store.runs.baseline_ranks`,
    ``reflections`` from :func:`re2llm_tui.store.reflections.reflection_counts`."""
    out = []
    for s in sessions:
        n, p = reflections.get(s.id, (0, 0))
        out.append(SessionRow(id=s.id, history_len=len(s.history),
                              baseline_rank=ranks.get(s.id), has_baseline=s.id in ranks,
                              n_reflections=n, n_proposed=p))
    return out


def run_label(run: Mapping) -> str:
    """How a run is named in the ranking picker (its id and what kind of ranking it holds)."""
    if run["kind"] == "evaluate":
        params = run.get("params")
        policy = params.get("policy") if isinstance(params, dict) else None
        return f"#{run['id']} {policy or run['name']}"
    if run.get("hint_id"):
        return f"#{run['id']} hint {run['hint_id']}"
    if (run.get("hint_text") or "").strip():
        return f"#{run['id']} custom hint"
    return f"#{run['id']} no hint ({run['kind']})"


def stored_rankings(outcomes: Iterable[Mapping]) -> list[StoredRanking]:
    """:func:`re2llm_tui.store.runs.session_outcomes`' records as rankings, in their order."""
    return [StoredRanking(
        run_id=r["id"], label=run_label(r), kind=r["kind"], hint_id=r["hint_id"],
        hint_text=r["hint_text"], ranking=list(r["ranking"]),
        hallucinations=list(r["hallucinations"]), target_rank=r["target_rank"],
        reply=r["reply"], error=r["error"], call_id=r.get("call_id")) for r in outcomes]


def split_baseline_hinted(rankings: list[StoredRanking]) -> tuple[StoredRanking | None,
                                                                    list[StoredRanking]]:
    """(newest no-hint ranking, the others newest first)."""
    base = [r for r in rankings if r.hint_id in (None, 0) and not (r.hint_text or "").strip()
            and r.kind in ("score", "recommend")]
    chosen = base[-1] if base else None
    others = [r for r in reversed(rankings) if r is not chosen]
    return chosen, others


def hint_texts(hints: Iterable) -> dict[int, str]:
    """id -> text of the given hints (for 'most similar' columns)."""
    return {h.id: h.text for h in hints}
