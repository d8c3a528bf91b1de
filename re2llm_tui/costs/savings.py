"""What the response cache saved: the dollars of the calls it served.

A cache hit is logged in the ``calls`` table as a row with ``cached=1`` whose ``cache_of``
points at the row that holds the reply; that row's ``cost`` is what the hit did not pay
again.  A command notes the last call id before it starts (:func:`last_call_id`) and sums
the hits logged after it (:func:`cache_saved`): hits of its worker processes count too.
The same summary line says how many calls had their cost estimated from the request because
the server's usage was missing or invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

from re2llm_tui.store.calls import last_call_id  # noqa: F401 - re-exported


@dataclass
class Saved:
    calls: int = 0
    cost: float = 0.0
    #: calls sent in the same span whose usage from the server was missing or implausible
    #: (their tokens and cost were counted from the request: ``calls.usage_estimated``)
    usage_estimated: int = 0

    def line(self) -> str:
        out = f"cache saved ${self.cost:.4f} ({self.calls} calls)"
        if self.usage_estimated:
            n = self.usage_estimated
            out += (f"; {n} call{'s' if n != 1 else ''}: usage from the server was missing "
                    "or invalid; cost estimated from the request")
        return out

    def as_dict(self) -> dict:
        d = {"calls": self.calls, "cost": round(self.cost, 6)}
        if self.usage_estimated:
            d["usage_estimated"] = self.usage_estimated
        return d


def cache_saved(db, *, since_id: int = 0, model: str | None = None,
                run_id: int | None = None) -> Saved:
    """Hits logged after ``since_id`` (of ``model``, of ``run_id`` when given) and the cost
    of the calls that served them."""
    # MAX(cost, 0): a workspace written before costs were checked may hold negative ones
    sql = ("SELECT COUNT(*), COALESCE(SUM(MAX(o.cost, 0)), 0) FROM calls h "
           "JOIN calls o ON o.id = h.cache_of WHERE h.cached=1 AND h.id > ?")
    args: list = [int(since_id)]
    if model is not None:
        sql += " AND h.model=?"
        args.append(model)
    if run_id is not None:
        sql += " AND h.run_id=?"
        args.append(run_id)
    n, cost = db.execute(sql, args).fetchone()
    est_sql = "SELECT COUNT(*) FROM calls WHERE usage_estimated=1 AND cached=0 AND id > ?"
    est_args: list = [int(since_id)]
    if model is not None:
        est_sql += " AND model=?"
        est_args.append(model)
    if run_id is not None:
        est_sql += " AND run_id=?"
        est_args.append(run_id)
    est = db.execute(est_sql, est_args).fetchone()[0]
    return Saved(int(n or 0), float(cost or 0.0), int(est or 0))
