"""What a Reflective Exploration is asked to do (:class:`ReflectConfig`) and what it found
(a check per proposed hint, a session's outcome, a run's summary and progress)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from re2llm_tui.errors import UserError

EFFECT_MODES = ("enter", "improve")


@dataclass
class ReflectConfig:
    """Knobs of Reflective Exploration (stored with each reflection)."""

    #: a session is reflected on when its target is not in the baseline's top ``miss_k``
    miss_k: int = 10
    #: a hint is effective when, with it, the target enters the top ``effect_k`` ...
    effect_k: int = 10
    #: ... ("enter"), or when NDCG@effect_k improves ("improve")
    effect_mode: str = "enter"
    #: cosine similarity at or above which a hint is redundant with an existing one
    sim_threshold: float = 0.8
    #: also ask the LLM whether the hint conveys an existing idea (the paper's check)
    llm_redundancy: bool = True
    #: how many of the most similar existing hints the LLM is shown
    llm_compare_n: int = 20
    #: at most this many hints are taken from the turn-4 reply
    max_hints: int = 5
    #: new hints become accepted instead of candidates (unattended runs)
    auto_accept: bool = False
    #: max_tokens of each free-text turn (None: the provider's default)
    turn_max_tokens: int | None = 400
    #: reuse a stored baseline reply (newest matching run) when the workspace has one
    use_stored_baseline: bool = True
    #: reuse this run's replies only (implies use_stored_baseline)
    baseline_run: int | None = None

    def validate(self) -> None:
        if self.effect_mode not in EFFECT_MODES:
            raise UserError(f"unknown effectiveness mode {self.effect_mode!r}: choose "
                            + " or ".join(EFFECT_MODES))
        for name in ("miss_k", "effect_k", "max_hints", "llm_compare_n"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")
        if not 0.0 < self.sim_threshold <= 1.0:
            raise UserError(f"similarity threshold must be in (0, 1] (got {self.sim_threshold})")

    @property
    def rank_k(self) -> int:
        return max(self.miss_k, self.effect_k, 10)


@dataclass
class HintCheck:
    """One proposed hint and the outcome of every check it reached."""

    idx: int
    text: str
    verdict: str = "pending"   # added | leak | duplicate | redundant | ineffective | failed | stopped
    leak: str | None = None
    rank_without: int | None = None
    rank_with: int | None = None
    ndcg_without: float | None = None
    ndcg_with: float | None = None
    similar_id: int | None = None
    similarity: float | None = None
    llm_similar_id: int | None = None
    llm_reply: str | None = None
    hint_id: int | None = None


@dataclass
class SessionOutcome:
    session_id: str
    status: str                # hit | done | stopped | failed | skipped
    reflection_id: int | None = None
    baseline_rank: int | None = None
    checks: list[HintCheck] = field(default_factory=list)
    error: str | None = None


@dataclass
class ExploreSummary:
    dataset: str = ""
    model: str = ""
    examined: int = 0          # sessions looked at in this run (baseline known)
    already: int = 0           # skipped: reflected (or hit) in an earlier run
    hits: int = 0              # baseline already had the target in its top miss_k
    reflected: int = 0         # sessions whose four turns completed
    failed: int = 0
    proposed: int = 0
    leak: int = 0
    ineffective: int = 0
    redundant: int = 0         # embedding or LLM redundancy, or an exact duplicate
    added: int = 0
    calls: int = 0
    cache_hits: int = 0
    cost: float = 0.0
    stopped: str | None = None  # why the run stopped early (budget), None if it finished
    outcomes: list[SessionOutcome] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("outcomes")
        return d


@dataclass
class ExploreProgress:
    """Reported to ``on_progress`` at every stage."""

    reflected: int
    total: int | None          # sessions to reflect on (None: until the split ends)
    session_id: str
    stage: str                 # baseline | turn 2..4 | check i/n | done | hit | ...
    summary: ExploreSummary
