"""Ratio benchmarks: each measures ours against a reference in one run (see README)."""
