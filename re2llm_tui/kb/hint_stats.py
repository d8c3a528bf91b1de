"""Per-hint statistics of the knowledge base: mean reward and use by the trained agent.

* **Mean reward** of a hint ``h``: the mean over sessions ``s`` of the Reinforcement
  Utilization reward ``r(s, h) = NDCG@10(LLM | s, h) - NDCG@10(LLM | s, no hint)``, read from
  the workspace's reward table (``reward_outcomes``, see :mod:`re2llm_tui.utilization.rewards`): every
  stored outcome of the hint's *current text* paired with the no-hint outcome of the same
  session, model and context.  An edited hint has a new text, hence no rewards until they are
  computed again.  Only the train split's sessions count by default: the test split's
  outcomes (evaluations) are held out of curation (see :mod:`re2llm_tui.kb.evidence`).
* **Agent use**: the share of the sessions on which the latest finished (``done`` or
  ``stopped``) training run's agent picks the hint as its argmax action (the run summary's
  ``greedy_hist``; the choice per session is its ``greedy_choices``); for a run without
  that summary, the share of the actions it sampled in
  its last reported window (the ``charts/action_hist`` scalar).

Core module: no UI imports (the TUI's knowledge-base screen shows these numbers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable


def hint_key(text: str | None) -> str:
    """Stable key of a hint text ('' for no hint): the reward table's ``hint_key``."""
    text = (text or "").strip()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16] if text else ""


@dataclass(frozen=True)
class HintStats:
    hint_id: int
    mean_reward: float | None      # None: no reward stored for this hint text
    n_rewards: int                 # (session, context) pairs averaged
    agent_share: float | None      # None: no finished training run, or the hint is not an action


@dataclass(frozen=True)
class AgentUse:
    run_id: int
    step: int
    source: str                     # "greedy" (argmax per session) or "sampled" (last window)
    shares: dict[int, float]        # hint id -> share (0 = no hint)
    hint_ids: tuple[int, ...] = ()  # the run's actions, 0 (no hint) first
    #: session id -> the hint id the agent picks (argmax), for runs that stored them
    #: (``greedy_choices`` of the summary); None for older runs and sampled shares
    choices: dict[str, int] | None = None


def mean_rewards(db, dataset: str, model: str | None = None, rank_by: str = "reply",
                 split: str | None = "train") -> dict[str, tuple[float, int]]:
    """hint key -> (mean reward, number of pairs) over the reward table of ``dataset``
    (of one ``model`` when given; of the sessions of ``split``, None: all), counted with
    ``rank_by`` on the prompts as the release orders them (outcomes of candidate-order
    shuffles and of the other accounting are left out: they answer other questions)."""
    from re2llm_tui.data.store import split_prefix
    from re2llm_tui.store.outcomes import mean_gains

    return mean_gains(db, dataset, f"%|rank-by={rank_by}", model,
                      None if split is None else split_prefix(split))


def latest_agent_use(db, dataset: str, model: str | None = None) -> AgentUse | None:
    """The hint shares of the latest finished training run of ``dataset`` (and ``model``)."""
    sql = "SELECT * FROM train_runs WHERE dataset = ? AND status IN ('done', 'stopped')"
    args: list = [dataset]
    if model is not None:
        sql += " AND model = ?"
        args.append(model)
    for run in db.query(sql + " ORDER BY id DESC", args):
        hint_ids = json.loads(run["hint_ids"] or "[]")
        summary = json.loads(run["summary"]) if run.get("summary") else {}
        counts, source = summary.get("greedy_hist"), "greedy"
        if not counts or len(counts) != len(hint_ids):
            row = next(iter(db.query(
                "SELECT value_json FROM train_scalars WHERE run_id = ? AND "
                "name = 'charts/action_hist' AND value_json IS NOT NULL "
                "ORDER BY step DESC LIMIT 1", [run["id"]])), None)
            counts = json.loads(row["value_json"]) if row else None
            source = "sampled"
        if not counts or len(counts) != len(hint_ids) or sum(counts) <= 0:
            continue
        total = float(sum(counts))
        shares: dict[int, float] = {}
        for h, c in zip(hint_ids, counts):
            shares[int(h)] = shares.get(int(h), 0.0) + c / total
        choices = summary.get("greedy_choices") if source == "greedy" else None
        if isinstance(choices, dict):
            choices = {str(k): int(v) for k, v in choices.items()}
        else:
            choices = None
        return AgentUse(run_id=run["id"], step=int(run["step"] or 0), source=source,
                        shares=shares, hint_ids=tuple(int(h) for h in hint_ids),
                        choices=choices)
    return None


def hint_stats(db, dataset: str, hints: Iterable[tuple[int, str]], *,
               model: str | None = None,
               split: str | None = "train") -> tuple[dict[int, HintStats], AgentUse | None]:
    """Statistics of ``hints`` (``(id, current text)`` pairs; mean rewards over ``split``)
    and the run the agent use comes from."""
    rewards = mean_rewards(db, dataset, model, split=split)
    use = latest_agent_use(db, dataset, model)
    out = {}
    for hid, text in hints:
        mean, n = rewards.get(hint_key(text), (None, 0))
        out[hid] = HintStats(hint_id=hid, mean_reward=mean, n_rewards=n,
                             agent_share=use.shares.get(hid) if use is not None else None)
    return out, use
