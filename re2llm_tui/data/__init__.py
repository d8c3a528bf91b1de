"""Release data: sessions, the restricted unpickler, movie attributes, data reports."""
