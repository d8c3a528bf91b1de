"""The ``calls`` table's readers outside the LLM client: where a command's calls begin.

A command notes the last call id before it starts (:func:`last_call_id`) and reads what was
logged after it (:func:`re2llm_tui.costs.savings.cache_saved`).
"""

from __future__ import annotations


def last_call_id(db) -> int:
    """The newest row id of the ``calls`` table (0 when empty)."""
    row = db.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()
    return int(row[0] or 0)
