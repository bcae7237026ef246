"""Tools that work without a running worker: check, replay, audit, simulate, register files."""
