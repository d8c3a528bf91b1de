"""The knowledge base of hints: its store and per-hint statistics."""
