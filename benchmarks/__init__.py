"""Gatewatch benchmarks (issue 6): not tests; each module has `run(...) -> dict` and a `python -m` entry."""
