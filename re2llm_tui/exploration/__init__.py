"""Reflective Exploration (paper, module 1): reflection turns and the checks a hint must pass."""
