"""Per-hint evidence for curating the knowledge base: what each hint does, to which
sessions, and how sure we are.

Everything is read from the workspace, over one *reward table*: the stored outcomes of one
(dataset, model, context) (:mod:`re2llm_tui.store.outcomes`; the context names the prompt
versions, ranking method, decoding and rank accounting, see
:func:`re2llm_tui.utilization.rewards.reward_context`).  A hint's reward on a session is
``r(s, h) = NDCG@10(s, h) - NDCG@10(s, no hint)``, known where both outcomes are stored.
Outcomes are keyed by the hash of the hint's *text*: a hint whose text changed since its
outcomes has no evidence until they are computed again (:attr:`Evidence.stale` says so).

**Split.**  A reward table holds the outcomes of training (train sessions) and of evaluations
(test sessions) alike.  The evidence reads the *train* split's only, by default: curating the
knowledge base on test outcomes would tune it to the test set, and the evaluation would no
longer be held out.  A session's split is its id's (``train-0042``,
:func:`re2llm_tui.data.store.split_prefix`), so no session is read; the outcomes left out are
counted (:attr:`EvidenceReport.left_out`, :attr:`Evidence.left_out`) and said once.
``split="test"`` or ``"all"`` reads the others (to look, not to curate).

For each hint (:class:`Evidence`):

* the sessions with a reward, the mean reward with a seeded percentile-bootstrap 95% CI
  (:func:`re2llm_tui.evaluation.metrics.bootstrap_mean`; :data:`N_BOOT` resamples, seed
  :data:`SEED`), the sessions helped (r > 0), hurt (r < 0) and unchanged (r = 0), the
  largest gains and losses with their sessions, and every session sorted by gain;
* the latest finished training run's agent: its share of the hint (argmax choices, else
  the last sampled window, :func:`re2llm_tui.kb.hint_stats.latest_agent_use`) and the
  sessions it routes to the hint (runs that stored their per-session choices);
* the most similar hints by text (MiniLM cosine, :mod:`re2llm_tui.embeddings`; vectors
  cached in the workspace) with the correlation of their rewards over the sessions both
  have -- two hints can differ in words and act alike, or the reverse.

Badges are *suggestions*; nothing here changes the knowledge base.  Each has a ``why``:

* **hurts**: at least :data:`MIN_SESSIONS` sessions and the CI entirely below 0;
* **no effect**: at least :data:`MIN_SESSIONS` sessions ("enough") and a CI that contains 0
  and lies within ±:data:`NEUTRAL_BAND` NDCG@10 ("around 0": whatever the effect is, it is
  smaller than ~one rank step in the middle of the top 10, e.g. rank 4 -> 5 is 0.044);
* **acts like #k**: its rewards correlate at least :data:`ACTS_LIKE_R` (Pearson) with those
  of hint #k over at least :data:`MIN_SESSIONS` shared sessions, and #k is more useful (a
  higher mean reward; ties: a larger agent share, then the older hint): a merge candidate.
  Only hints in play (accepted or candidate) are offered as #k;
* **unused**: the hint is an action of the latest finished training run and its agent
  picks it on no session.

Core module: no UI imports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from re2llm_tui.data.release import SPLITS
from re2llm_tui.data.store import split_prefix
from re2llm_tui.errors import UserError
from re2llm_tui.rank_metrics import bootstrap_mean
from re2llm_tui.kb.hint_stats import AgentUse, latest_agent_use
from re2llm_tui.store import outcomes as store
from re2llm_tui.kb.hint_stats import hint_key

#: "enough sessions" for a badge that reads the CI or a correlation
MIN_SESSIONS = 10
#: "around 0": a CI inside ±this many NDCG@10 (and containing 0) is "no effect"
NEUTRAL_BAND = 0.05
#: reward correlation at or above which a hint "acts like" a more useful one
ACTS_LIKE_R = 0.9
#: bootstrap resamples, seed and level of the CI
N_BOOT = 1000
SEED = 0
ALPHA = 0.05
#: gains / losses listed, similar hints listed
TOP = 5
N_SIMILAR = 3
#: a reward closer to 0 than this is "unchanged" (equal ranks give exactly 0)
EPS = 1e-9
#: statuses of the hints another hint may "act like" (merge targets)
IN_PLAY = ("accepted", "candidate")

BADGES = ("hurts", "no effect", "acts like", "unused")
#: the splits whose outcomes the evidence may read; curation reads the first
EVIDENCE_SPLITS = ("train", "test", "all")
DEFAULT_SPLIT = "train"


class NoRewardTable(UserError):
    """No stored outcomes for the dataset / model / context asked for."""


class UnknownHint(UserError):
    """A hint id that is not in the dataset's knowledge base."""


# --------------------------------------------------------------------------- the table

def _prefix(split: str) -> str | None:
    """The session-id prefix of ``split`` (None: every split); a one-line error otherwise."""
    if split not in EVIDENCE_SPLITS:
        raise UserError(f"unknown split {split!r}: choose {', '.join(EVIDENCE_SPLITS)}")
    return None if split == "all" else split_prefix(split)


def other_splits(split: str) -> str:
    """The split(s) ``split`` leaves out, for a sentence ("test")."""
    return " / ".join(s for s in SPLITS if s != split) or "other"


@dataclass
class RewardMatrix:
    """The stored outcomes of one (dataset, model, context) as sessions x hint keys."""

    dataset: str
    model: str
    context: str
    sessions: list[str]
    keys: list[str]                    # hint keys ('' = no hint), as first seen
    ndcg: np.ndarray                   # [sessions, keys] NDCG@10; NaN unknown
    rank: np.ndarray                   # [sessions, keys] target rank; 0 absent, -1 unknown
    key_hint_ids: dict[str, set]       # key -> the KB ids stored with its outcomes
    split: str = "all"                 # whose sessions (train | test | all)
    n_outcomes: int = 0                # outcomes read
    left_out: dict = field(default_factory=lambda: {"outcomes": 0, "sessions": 0,
                                                    "rewards": {}})   # store.left_out

    def __post_init__(self) -> None:
        self._col = {k: i for i, k in enumerate(self.keys)}

    def col(self, key: str) -> int | None:
        return self._col.get(key)

    def rewards(self, key: str) -> np.ndarray:
        """``r(s, key)`` for every session (NaN where either outcome is unknown)."""
        c, b = self.col(key), self.col("")
        if c is None or b is None:
            return np.full(len(self.sessions), np.nan)
        return self.ndcg[:, c] - self.ndcg[:, b]

    def ranks(self, key: str) -> list[int | None]:
        """Target rank per session under ``key`` (None: absent or unknown)."""
        c = self.col(key)
        if c is None:
            return [None] * len(self.sessions)
        return [int(r) if r > 0 else None for r in self.rank[:, c]]

    @property
    def n_baselines(self) -> int:
        b = self.col("")
        return 0 if b is None else int(np.isfinite(self.ndcg[:, b]).sum())


def choose_context(db, dataset: str, model: str | None = None,
                   context: str | None = None, split: str = "all") -> dict:
    """The reward table to read: ``context`` when given, else the one of ``dataset`` (and
    ``model``) with the most outcomes of ``split``, preferring those with no-hint outcomes
    and the default rank accounting and no extra tag (a candidate-order shuffle's outcomes
    answer another question).  A :class:`NoRewardTable` when there is none (or none with
    an outcome of ``split``)."""
    def matching(prefix):
        found = store.contexts(db, dataset, model, prefix)
        return [c for c in found if context is None or c["context"] == context]

    found = matching(_prefix(split))
    if not found:
        who = f"model {model}" if model else "any model"
        what = f" in context {context!r}" if context else ""
        elsewhere = sum(c["n"] for c in matching(None)) if split != "all" else 0
        if elsewhere:
            raise NoRewardTable(
                f"no {split}-split outcomes for dataset {dataset} with {who}{what}: its "
                f"{elsewhere} stored outcome(s) are of the {other_splits(split)} split, left "
                f"out (--split all shows them; curate on train outcomes: re2llm-tui train)")
        raise NoRewardTable(f"no reward table for dataset {dataset} with {who}{what}: "
                            "compute it first (re2llm-tui train, or t on the Training screen)")
    return max(found, key=lambda c: (c["baselines"] > 0, c["context"].endswith("|rank-by=reply"),
                                     c["n"]))


def load_matrix(db, dataset: str, model: str | None = None, context: str | None = None,
                split: str = DEFAULT_SPLIT) -> RewardMatrix:
    """The reward table of ``dataset`` (see :func:`choose_context`) over the sessions of
    ``split`` (train, test or all), with a count of what the split leaves out."""
    chosen = choose_context(db, dataset, model, context, split)
    prefix = _prefix(split)
    rows = store.outcomes(db, dataset, chosen["model"], chosen["context"], prefix)
    sessions: dict[str, int] = {}
    keys: dict[str, int] = {"": 0}
    for r in rows:
        sessions.setdefault(r["session_id"], len(sessions))
        keys.setdefault(r["hint_key"], len(keys))
    ndcg = np.full((len(sessions), len(keys)), np.nan)
    rank = np.full((len(sessions), len(keys)), -1, dtype=np.int64)
    ids: dict[str, set] = {}
    for r in rows:
        i, k = sessions[r["session_id"]], keys[r["hint_key"]]
        ndcg[i, k] = r["ndcg"]
        rank[i, k] = r["target_rank"] or 0
        if r["hint_id"] is not None:
            ids.setdefault(r["hint_key"], set()).add(int(r["hint_id"]))
    matrix = RewardMatrix(dataset, chosen["model"], chosen["context"], list(sessions),
                          list(keys), ndcg, rank, ids, split=split, n_outcomes=len(rows))
    if prefix is not None:
        matrix.left_out = store.left_out(db, dataset, chosen["model"], chosen["context"],
                                         prefix)
    return matrix


# --------------------------------------------------------------------------- evidence

@dataclass
class SessionEffect:
    session_id: str
    reward: float
    rank_without: int | None      # None: not in the top 10
    rank_with: int | None
    agent_pick: bool | None       # the agent routes this session to the hint (None: unknown)


@dataclass
class Badge:
    kind: str                     # one of BADGES
    label: str                    # "hurts", "no effect", "acts like #3", "unused"
    why: str
    other: int | None = None      # the hint it acts like


@dataclass
class Similar:
    hint_id: int
    text: str
    cosine: float
    correlation: float | None     # of the rewards over the shared sessions (None: < 3 or flat)
    common: int                   # sessions both have a reward on


@dataclass
class AgentEvidence:
    run_id: int
    step: int
    source: str                   # greedy (argmax per session) | sampled (last window)
    is_action: bool               # the hint is one of the run's actions
    share: float | None
    sessions: list[str] | None    # the sessions it routes to the hint (None: not recorded)
    n_sessions: int | None        # sessions the choices cover


@dataclass
class Evidence:
    hint_id: int
    text: str
    status: str
    hint_key: str
    n: int = 0
    mean: float | None = None
    ci: tuple[float, float] | None = None
    p: float | None = None
    helped: int = 0
    hurt: int = 0
    unchanged: int = 0
    gains: list[SessionEffect] = field(default_factory=list)
    losses: list[SessionEffect] = field(default_factory=list)
    sessions: list[SessionEffect] = field(default_factory=list)   # by gain, largest first
    agent: AgentEvidence | None = None
    similar: list[Similar] | None = None     # None: not computed
    badges: list[Badge] = field(default_factory=list)
    stale: bool = False          # the text changed since its outcomes were computed
    stale_outcomes: int = 0      # outcomes of its earlier text(s)
    note: str = ""               # why the evidence is empty, when it is
    left_out: int = 0            # its rewards on sessions of the split(s) left out

    @property
    def rewards(self) -> list[float]:
        return [e.reward for e in self.sessions]

    def badge(self, kind: str) -> Badge | None:
        return next((b for b in self.badges if b.kind == kind), None)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["ci"] = list(self.ci) if self.ci is not None else None
        return out


@dataclass
class EvidenceReport:
    """The evidence of a set of hints over one reward table."""

    dataset: str
    model: str
    context: str
    n_sessions: int               # sessions in the table (of the split)
    n_baselines: int              # of them with a no-hint outcome
    agent_run: int | None
    evidence: dict[int, Evidence]
    split: str = DEFAULT_SPLIT    # whose outcomes were read (train | test | all)
    n_outcomes: int = 0           # outcomes read
    left_out: int = 0             # outcomes of the table on sessions of other splits
    left_out_sessions: int = 0    # those sessions

    def scope(self) -> str:
        """Whose outcomes the evidence reads: "evidence: train split, 240 outcomes"."""
        which = "every split" if self.split == "all" else f"{self.split} split"
        return f"evidence: {which}, {self.n_outcomes} outcomes on {self.n_sessions} sessions"

    def left_out_line(self, ev: "Evidence | None" = None) -> str:
        """What the split left out, plainly ('' when nothing): the table's outcomes, or
        the rewards of hint ``ev`` when it has some there."""
        if not self.left_out:
            return ""
        other = other_splits(self.split)
        if ev is not None and ev.left_out:
            line = f"{ev.left_out} {other}-split reward(s) of this hint left out"
        else:
            line = (f"{self.left_out} {other}-split outcome(s) on {self.left_out_sessions} "
                    "session(s) left out")
        return line + (" (held out for evaluation)" if self.split == "train" else "")

    def as_dict(self, hint_ids: Iterable[int] | None = None) -> dict:
        ids = list(self.evidence) if hint_ids is None else list(hint_ids)
        return {"dataset": self.dataset, "model": self.model, "context": self.context,
                "split": self.split, "n_outcomes": self.n_outcomes,
                "left_out": {"outcomes": self.left_out, "sessions": self.left_out_sessions},
                "n_sessions": self.n_sessions, "n_baselines": self.n_baselines,
                "agent_run": self.agent_run, "thresholds": thresholds(),
                "hints": [self.evidence[i].as_dict() for i in ids]}


def thresholds() -> dict:
    return {"min_sessions": MIN_SESSIONS, "neutral_band": NEUTRAL_BAND,
            "acts_like_r": ACTS_LIKE_R, "n_boot": N_BOOT, "seed": SEED,
            "ci_level": 1 - ALPHA}


def _ranks_of(matrix: RewardMatrix, key: str) -> list[int | None]:
    return matrix.ranks(key)


def _one(matrix: RewardMatrix, h, use: AgentUse | None, n_boot: int, seed: int) -> Evidence:
    key = hint_key(h.text)
    ev = Evidence(hint_id=int(h.id), text=h.text, status=h.status, hint_key=key,
                  left_out=matrix.left_out["rewards"].get(key, 0))
    r = matrix.rewards(key)
    known = np.isfinite(r)
    choices = use.choices if use is not None else None
    if use is not None:
        is_action = int(h.id) in use.hint_ids
        routed = sorted(s for s, hid in choices.items() if hid == int(h.id)) \
            if choices is not None else None
        ev.agent = AgentEvidence(run_id=use.run_id, step=use.step, source=use.source,
                                 is_action=is_action,
                                 share=use.shares.get(int(h.id)) if is_action else None,
                                 sessions=routed if is_action else ([] if routed is not None
                                                                    else None),
                                 n_sessions=len(choices) if choices is not None else None)
    if not known.any():
        older = sum(int(np.isfinite(matrix.ndcg[:, matrix.col(k)]).sum())
                    for k, ids in matrix.key_hint_ids.items()
                    if k != key and k and int(h.id) in ids)
        if older:
            ev.stale, ev.stale_outcomes = True, older
            ev.note = (f"the text of #{h.id} changed since its {older} outcome(s) were "
                       "computed: its evidence is empty until the reward table is computed "
                       "again for the new text (train again, or t on the Training screen)")
        elif matrix.col(key) is None and ev.left_out:
            other = other_splits(matrix.split)
            ev.note = (f"no {matrix.split}-split outcome of this text in the reward table, "
                       f"only {other}-split ones (--split {other} shows them)")
        elif matrix.col(key) is None:
            ev.note = f"no outcome of this text in the reward table ({matrix.context})"
        else:
            ev.note = "no session has both this hint's and the no-hint outcome"
        return ev
    idx = np.flatnonzero(known)
    vals = r[idx]
    stats = bootstrap_mean(vals, n_boot=n_boot, seed=seed, alpha=ALPHA)
    ev.n, ev.mean, ev.ci, ev.p = stats["n"], stats["mean"], (stats["lo"], stats["hi"]), \
        stats["p"]
    ev.helped = int((vals > EPS).sum())
    ev.hurt = int((vals < -EPS).sum())
    ev.unchanged = ev.n - ev.helped - ev.hurt
    without, with_ = _ranks_of(matrix, ""), _ranks_of(matrix, key)
    effects = [SessionEffect(session_id=matrix.sessions[i], reward=float(r[i]),
                             rank_without=without[i], rank_with=with_[i],
                             agent_pick=(choices.get(matrix.sessions[i]) == int(h.id))
                             if choices is not None and matrix.sessions[i] in choices
                             else None)
               for i in idx]
    effects.sort(key=lambda e: (-e.reward, e.session_id))
    ev.sessions = effects
    ev.gains = [e for e in effects if e.reward > EPS][:TOP]
    ev.losses = sorted((e for e in effects if e.reward < -EPS),
                       key=lambda e: (e.reward, e.session_id))[:TOP]
    return ev


def _stat_badges(ev: Evidence) -> None:
    if ev.n < MIN_SESSIONS or ev.ci is None:
        return
    lo, hi = ev.ci
    level = f"{1 - ALPHA:.0%}"
    if hi < 0:
        ev.badges.append(Badge("hurts", "hurts", (
            f"mean {ev.mean:+.3f} NDCG@10 with a {level} CI of [{lo:+.3f}, {hi:+.3f}], "
            f"entirely below 0, over {ev.n} sessions ({ev.hurt} hurt, {ev.helped} helped, "
            f"{ev.unchanged} unchanged)")))
    elif lo <= 0 <= hi and lo >= -NEUTRAL_BAND and hi <= NEUTRAL_BAND:
        ev.badges.append(Badge("no effect", "no effect", (
            f"{level} CI [{lo:+.3f}, {hi:+.3f}] contains 0 and lies within ±{NEUTRAL_BAND} "
            f"NDCG@10 over {ev.n} sessions (at least {MIN_SESSIONS}): any effect is smaller "
            f"than about one rank step ({ev.helped} helped, {ev.hurt} hurt, "
            f"{ev.unchanged} unchanged)")))


def _correlation(a: np.ndarray, b: np.ndarray) -> tuple[float | None, int]:
    """Pearson correlation over the entries both know, and how many those are."""
    both = np.isfinite(a) & np.isfinite(b)
    n = int(both.sum())
    if n < 3:
        return None, n
    x, y = a[both], b[both]
    if float(np.std(x)) < EPS or float(np.std(y)) < EPS:
        return None, n
    return float(np.corrcoef(x, y)[0, 1]), n


def _usefulness(ev: Evidence) -> tuple:
    share = ev.agent.share if ev.agent is not None and ev.agent.share is not None else 0.0
    return (ev.mean if ev.mean is not None else float("-inf"), share, -ev.hint_id)


def _acts_like_badges(evs: list[Evidence], rewards: dict[int, np.ndarray]) -> None:
    for ev in evs:
        if ev.n < MIN_SESSIONS:
            continue
        best = None
        for other in evs:
            if other.hint_id == ev.hint_id or other.status not in IN_PLAY or \
                    other.n < MIN_SESSIONS or _usefulness(other) <= _usefulness(ev):
                continue
            corr, common = _correlation(rewards[ev.hint_id], rewards[other.hint_id])
            if corr is None or common < MIN_SESSIONS or corr < ACTS_LIKE_R:
                continue
            if best is None or (corr, _usefulness(other)) > (best[0], _usefulness(best[2])):
                best = (corr, common, other)
        if best is not None:
            corr, common, other = best
            mine, theirs = _usefulness(ev), _usefulness(other)
            why = (f"its rewards correlate r = {corr:.2f} (at least {ACTS_LIKE_R}) with those "
                   f"of #{other.hint_id} over {common} shared sessions, and #{other.hint_id} ")
            if theirs[0] > mine[0]:
                why += f"has a higher mean reward ({other.mean:+.3f} vs {ev.mean:+.3f})"
            elif theirs[1] > mine[1]:
                why += (f"has the same mean reward ({ev.mean:+.3f}) and a larger agent share "
                        f"({theirs[1]:.0%} vs {mine[1]:.0%})")
            else:
                why += (f"has the same mean reward ({ev.mean:+.3f}) and agent share, and is "
                        "the older hint")
            why += ": a merge candidate"
            ev.badges.append(Badge("acts like", f"acts like #{other.hint_id}", why,
                                   other=other.hint_id))


def _unused_badge(ev: Evidence) -> None:
    a = ev.agent
    if a is None or not a.is_action or (a.share or 0.0) > 0:
        return
    if a.source == "greedy":
        over = f"none of its {a.n_sessions} sessions" if a.n_sessions else "no session"
        why = f"the agent of training run #{a.run_id} (step {a.step}) picks it on {over} " \
              "(argmax choices)"
    else:
        why = (f"the agent of training run #{a.run_id} (step {a.step}) never sampled it in "
               "its last reported window")
    ev.badges.append(Badge("unused", "unused", why))


def _similar(db, evs: list[Evidence], for_ids: set[int], rewards: dict[int, np.ndarray],
             encoder=None) -> None:
    from re2llm_tui.embeddings import cosine_matrix, encode

    if len(evs) < 2 or not for_ids:
        for ev in evs:
            if ev.hint_id in for_ids:
                ev.similar = []
        return
    vecs = encode([ev.text for ev in evs], db=db, encoder=encoder)
    sims = cosine_matrix(vecs, vecs)
    for i, ev in enumerate(evs):
        if ev.hint_id not in for_ids:
            continue
        order = [j for j in np.argsort(-sims[i], kind="stable") if j != i][:N_SIMILAR]
        ev.similar = []
        for j in order:
            other = evs[int(j)]
            corr, common = _correlation(rewards[ev.hint_id], rewards[other.hint_id])
            ev.similar.append(Similar(other.hint_id, other.text, float(sims[i, j]), corr,
                                      common))


def compute(db, dataset: str, hints: Sequence, *, model: str | None = None,
            context: str | None = None, similar_for: Iterable[int] | None = None,
            encoder=None, n_boot: int = N_BOOT, seed: int = SEED,
            split: str = DEFAULT_SPLIT) -> EvidenceReport:
    """The evidence of ``hints`` (the KB's :class:`~re2llm_tui.kb.store.Hint` objects, or
    anything with ``id``, ``text`` and ``status``) over the reward table of ``dataset``
    (:func:`choose_context`), on the sessions of ``split`` (train by default: what the KB
    may be curated on).  Badges compare every hint with every other one given.
    ``similar_for``: the hint ids whose most similar hints to list (loads MiniLM unless
    every text's vector is cached in the workspace); none by default."""
    matrix = load_matrix(db, dataset, model, context, split)
    use = latest_agent_use(db, dataset, matrix.model)
    evs = [_one(matrix, h, use, n_boot, seed) for h in hints]
    rewards = {ev.hint_id: matrix.rewards(ev.hint_key) for ev in evs}
    for ev in evs:
        _stat_badges(ev)
    _acts_like_badges(evs, rewards)
    for ev in evs:
        _unused_badge(ev)
    wanted = set(int(i) for i in (similar_for or ()))
    if wanted:
        _similar(db, evs, wanted, rewards, encoder)
    return EvidenceReport(dataset=dataset, model=matrix.model, context=matrix.context,
                          n_sessions=len(matrix.sessions), n_baselines=matrix.n_baselines,
                          agent_run=use.run_id if use is not None else None,
                          evidence={ev.hint_id: ev for ev in evs}, split=split,
                          n_outcomes=matrix.n_outcomes,
                          left_out=matrix.left_out["outcomes"],
                          left_out_sessions=matrix.left_out["sessions"])


def hint_evidence(db, dataset: str, hints: Sequence, hint_id: int, *,
                  model: str | None = None, context: str | None = None, similar: bool = True,
                  encoder=None, split: str = DEFAULT_SPLIT) -> tuple[Evidence, EvidenceReport]:
    """The evidence of one hint (its badges compared with all ``hints``) on ``split``; an
    :class:`UnknownHint` when ``hint_id`` is not among them."""
    if not any(int(h.id) == int(hint_id) for h in hints):
        raise UnknownHint(f"no hint #{hint_id} in the {dataset} knowledge base")
    report = compute(db, dataset, hints, model=model, context=context,
                     similar_for=[hint_id] if similar else None, encoder=encoder, split=split)
    return report.evidence[int(hint_id)], report


def histogram(values: Sequence[float], n_bins: int = 20, lo: float = -1.0,
              hi: float = 1.0) -> list[tuple[float, float, int]]:
    """``(left edge, right edge, count)`` of ``values`` in ``n_bins`` equal bins over
    ``[lo, hi]`` (rewards lie in [-1, 1]); a value of exactly 0 falls in the bin right of 0."""
    edges = np.linspace(lo, hi, n_bins + 1)
    counts, _ = np.histogram(np.clip(np.asarray(values, dtype=float), lo, hi), bins=edges)
    return [(float(edges[i]), float(edges[i + 1]), int(c)) for i, c in enumerate(counts)]


# --------------------------------------------------------------------------- long form

#: the columns of :func:`long_form`'s rows, in order
LONG_FORM = ("session_id", "split", "action", "hint_key", "hint_text", "ndcg_with",
             "ndcg_without", "reward", "rank_with", "rank_without", "model", "context")


def split_of(session_id: str) -> str:
    """The split a session id carries (``train-0042``: train; '' for an id of no split)."""
    return next((s for s in SPLITS if session_id.startswith(split_prefix(s))), "")


def long_form(db, dataset: str, hints: Sequence, *, model: str | None = None,
              context: str | None = None, split: str = "all"):
    """The reward table of ``dataset`` (every model and context unless given; the sessions
    of ``split``, train, test or all) as rows of :data:`LONG_FORM`: one per stored outcome,
    ``split`` the one its session id carries.  ``action`` is the KB id of the hint whose
    current text has the outcome's key (0: no hint; else the id stored with the outcome),
    ``hint_text`` that text ('' for no hint, None when no hint has that text any more);
    ``reward`` and ``ndcg_without`` are None where the session's no-hint outcome is not
    stored.  A :class:`NoRewardTable` when nothing matches."""
    prefix = _prefix(split)
    choose_context(db, dataset, model, context, split)  # a NoRewardTable when there is none
    by_key = {hint_key(h.text): h for h in hints}
    for r in store.iter_outcomes(db, dataset, model, context, prefix):
        key = r["hint_key"]
        h = by_key.get(key)
        if key == "":
            action, text = 0, ""
        elif h is not None:
            action, text = int(h.id), h.text
        else:
            action, text = r["hint_id"], None
        base = r["base_ndcg"]
        yield {"session_id": r["session_id"], "split": split_of(r["session_id"]),
               "action": action, "hint_key": key,
               "hint_text": text, "ndcg_with": r["ndcg"], "ndcg_without": base,
               "reward": None if base is None else r["ndcg"] - base,
               "rank_with": r["target_rank"], "rank_without": r["base_rank"],
               "model": r["model"], "context": r["context"]}
