"""The SQLite workspace and the stores of its aggregates (runs, ...)."""
