"""The knowledge base of hints (paper: the KB that Reflective Exploration fills and the agent
chooses from): :class:`~re2llm_tui.kb.store.KnowledgeBase` is the handle, ``store`` its
SQLite implementation, ``hint_stats`` the per-hint reward and agent use."""

from re2llm_tui.kb.store import KnowledgeBase

__all__ = ["KnowledgeBase"]
