"""Metrics, scoring of recorded outputs, recommend runs and the comparison of policies."""
