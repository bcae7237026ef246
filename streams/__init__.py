"""Gatewatch's edges: the Faust worker, Kafka clients, metrics, logs, the embedded broker and the CLI.

Everything here may do I/O; the evaluation itself lives in `rules` (pure) over the `schemas` contracts.
"""

from streams.settings import Settings, TopicNames

__all__ = ["Settings", "TopicNames"]
