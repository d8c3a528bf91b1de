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
    from re2llm_tui.store.calls import saved_since

    return Saved(*saved_since(db, since_id=since_id, model=model, run_id=run_id))
