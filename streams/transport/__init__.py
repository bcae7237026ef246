"""Kafka plumbing shared by the worker, sinks and tools: clients, topics, the embedded Tansu broker."""
