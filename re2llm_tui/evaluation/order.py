"""Candidate-order sensitivity: does the LLM's ranking depend on where the target is listed?

LLM rankers are known to favour items by their position in the prompt.  For ``P`` seeded
shuffles of each session's candidate list, the prompt is rebuilt with the candidates in the
shuffled order (the release's wording otherwise unchanged) and the chosen rows (no hint, the
agent) are asked again.  The report gives, per row:

* NDCG@10 on the original order and on each shuffle, and their mean, spread (SD), min, max;
* the NDCG@10 of the target by where it sat in the candidate list shown, over the original
  and every shuffle: the first, middle and last tenth of the list (positions 1-5, 23-27 and
  46-50 of 50).

Shuffled outcomes are stored in the reward table under their own context (the shuffle's
seed and number), so a rerun pays for nothing and they never mix with the original order's.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import numpy as np

from re2llm_tui.data.release import Session
from re2llm_tui.utilization.rewards import LLMRewards

#: where the candidates sit in a release prompt
_CAND_SPAN = re.compile(r"(candidate set:\s*)(?P<c>.*?)(\.\s*Please recommend)", re.S)
#: the tenths of a 50-candidate list reported (1-based positions, inclusive)
TENTHS = {"first tenth (1-5)": (1, 5), "middle tenth (23-27)": (23, 27),
          "last tenth (46-50)": (46, 50)}


def _entities(title: str) -> str:
    """A title written as the release writes titles in prompts (HTML entities)."""
    return title.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&quot;")


def permuted(session: Session, perm: list[int]) -> Session:
    """``session`` with its candidates listed in the order ``perm`` (indices into the
    original list), the prompt rebuilt accordingly and the target's index moved."""
    cands = tuple(session.candidates[i] for i in perm)
    m = _CAND_SPAN.search(session.prompt)
    if m is None:
        raise ValueError(f"{session.id}: no candidate set in the prompt")
    listed = "; ".join(_entities(c) for c in cands)
    prompt = session.prompt[:m.start("c")] + listed + session.prompt[m.end("c"):]
    return dataclasses.replace(session, candidates=cands, prompt=prompt,
                               target_index=perm.index(session.target_index))


def shuffles(sessions, permutations: int, seed: int) -> list[list[list[int]]]:
    """``permutations`` seeded orders per session: ``out[p][i]`` is a permutation."""
    rng = np.random.default_rng(seed)
    return [[[int(x) for x in rng.permutation(len(s.candidates))] for s in sessions]
            for _ in range(permutations)]


@dataclass
class OrderReport:
    permutations: int
    seed: int
    n: int
    rows: dict[str, dict] = field(default_factory=dict)   # row -> figures (see module doc)
    #: row -> per shuffle, each session's target rank (None: not in the top 10 / failed)
    ranks: dict[str, list[list]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"candidate-order sensitivity: {self.permutations} seeded shuffle(s) "
               f"(seed {self.seed}) of {self.n} sessions, NDCG@10"]
        for name, r in self.rows.items():
            out.append(f"  {name}: original {r['original']:.4f}; shuffles mean "
                       f"{r['mean']:.4f} ± {r['sd']:.4f} (min {r['min']:.4f}, max "
                       f"{r['max']:.4f})")
            out.append("    by the target's position in the list shown: " + ", ".join(
                f"{k} {v['ndcg']:.4f} (n={v['n']})" if v["n"] else f"{k} — (n=0)"
                for k, v in r["by_position"].items()))
        return out

    def as_dict(self) -> dict:
        return {"permutations": self.permutations, "seed": self.seed, "n": self.n,
                "rows": self.rows}


def order_sensitivity(client, db, sessions, actions, choices: dict[str, np.ndarray], *,
                      dataset: str, original: dict[str, list[float]], permutations: int,
                      seed: int = 0, workers: int = 1, rank_by: str = "reply",
                      progress=None) -> OrderReport:
    """Ask the ``choices`` rows again on ``permutations`` shuffles (see the module docstring).

    ``original``: each row's per-session NDCG@10 on the original order.
    """
    from re2llm_tui.control import RunStop  # noqa: F401 - propagates to the caller

    n = len(sessions)
    report = OrderReport(permutations, seed, n)
    orders = shuffles(sessions, permutations, seed)
    per_row: dict[str, list[np.ndarray]] = {name: [] for name in choices}
    by_pos: dict[str, list[tuple[int, float]]] = {
        name: [(s.target_index + 1, float(v)) for s, v in zip(sessions, original[name])]
        for name in choices}
    for p, perms in enumerate(orders):
        shuffled = [permuted(s, perm) for s, perm in zip(sessions, perms)]
        src = LLMRewards(client, shuffled, actions, dataset=dataset, db=db, rank_by=rank_by,
                         context_tag=f"order=shuffle{seed}:{p}")
        wanted = np.zeros((n, len(actions)), dtype=bool)
        for acts in choices.values():
            wanted[np.arange(n), acts] = True
        try:
            src.prefill(progress=progress, wanted=wanted, workers=workers)
        finally:
            src.close()
        for name, acts in choices.items():
            vals = np.array([src.ndcg[i, int(a)] if np.isfinite(src.ndcg[i, int(a)]) else 0.0
                             for i, a in enumerate(acts)])
            per_row[name].append(vals)
            report.ranks.setdefault(name, []).append(
                [src.target_rank(i, int(a)) if np.isfinite(src.ndcg[i, int(a)]) else None
                 for i, a in enumerate(acts)])
            by_pos[name].extend((s.target_index + 1, float(v)) for s, v in zip(shuffled, vals))
    for name in choices:
        means = [float(v.mean()) for v in per_row[name]]
        report.rows[name] = {
            "original": float(np.mean(original[name])) if n else 0.0,
            "per_shuffle": means,
            "mean": float(np.mean(means)) if means else 0.0,
            "sd": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0,
            "min": float(min(means)) if means else 0.0,
            "max": float(max(means)) if means else 0.0,
            "by_position": {label: _bucket(by_pos[name], lo, hi)
                            for label, (lo, hi) in TENTHS.items()},
        }
    return report


def _bucket(points: list[tuple[int, float]], lo: int, hi: int) -> dict:
    vals = [v for pos, v in points if lo <= pos <= hi]
    return {"n": len(vals), "ndcg": float(np.mean(vals)) if vals else 0.0}
