"""Errors raised by the streaming layer; all derive from one root so the CLI can report them cleanly."""

from __future__ import annotations

__all__ = ["BrokerError", "ConfigError", "GatewatchStreamsError", "PublishError"]


class GatewatchStreamsError(Exception):
    """Root of every error raised by streams/."""


class BrokerError(GatewatchStreamsError):
    """The embedded broker could not start, or a Kafka cluster could not be reached."""


class ConfigError(GatewatchStreamsError):
    """A settings value or input file is unusable; the message names the value and the fix."""


class PublishError(GatewatchStreamsError):
    """An event or agreement was refused before sending (it does not satisfy the contract)."""

    def __init__(self, message: str, *, source: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.index = index
