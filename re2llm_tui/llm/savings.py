"""What the response cache saved: the dollars of the calls it served.

A cache hit is logged in the ``calls`` table as a row with ``cached=1`` whose ``cache_of``
points at the row that holds the reply; that row's ``cost`` is what the hit did not pay
again.  A command notes the last call id before it starts (:func:`last_call_id`) and sums
the hits logged after it (:func:`cache_saved`): hits of its worker processes count too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Saved:
    calls: int = 0
    cost: float = 0.0

    def line(self) -> str:
        return f"cache saved ${self.cost:.4f} ({self.calls} calls)"

    def as_dict(self) -> dict:
        return {"calls": self.calls, "cost": round(self.cost, 6)}


def last_call_id(db) -> int:
    """The newest row id of the ``calls`` table (0 when empty)."""
    row = db.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()
    return int(row[0] or 0)


def cache_saved(db, *, since_id: int = 0, model: str | None = None,
                run_id: int | None = None) -> Saved:
    """Hits logged after ``since_id`` (of ``model``, of ``run_id`` when given) and the cost
    of the calls that served them."""
    sql = ("SELECT COUNT(*), COALESCE(SUM(o.cost), 0) FROM calls h "
           "JOIN calls o ON o.id = h.cache_of WHERE h.cached=1 AND h.id > ?")
    args: list = [int(since_id)]
    if model is not None:
        sql += " AND h.model=?"
        args.append(model)
    if run_id is not None:
        sql += " AND h.run_id=?"
        args.append(run_id)
    n, cost = db.execute(sql, args).fetchone()
    return Saved(int(n or 0), float(cost or 0.0))
