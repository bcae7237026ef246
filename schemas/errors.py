"""Turning pydantic validation errors into contract `Issue`s that never echo the input values."""

from __future__ import annotations

from pydantic import ValidationError

from schemas.decision import Issue

__all__ = ["issues_from_validation_error", "loc_to_path"]


def loc_to_path(loc: tuple[int | str, ...]) -> str:
    """`("actor", "ip")` -> `actor.ip`; list positions as `fields[3]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


def _without_input(message: str, value: object) -> str:
    """The message, unless it quotes the offending value (a validator may): then a message without it.

    The contract's own validators never quote input (tests/schemas/test_no_echo.py holds each to it);
    this catches a validator of a library, or one added later, that does.
    """
    # Strings only, of some length: numbers and short codes turn up in messages as limits ("less than
    # or equal to 100000000") and allowed values, which say nothing about the input.
    if isinstance(value, str) and len(value) >= 6 and value in message:
        return "invalid value (withheld: the message quoted it)"
    return message


def issues_from_validation_error(exc: ValidationError) -> list[Issue]:
    """One Issue per pydantic error, with location, message and type but without the offending input.

    Input values are withheld because they may be pupil references or other personal data, and dead
    letters, decisions and logs must never carry those.
    """
    issues: list[Issue] = []
    for err in exc.errors(include_url=False, include_context=False):
        message = _without_input(err["msg"], err.get("input"))
        if err["type"] == "extra_forbidden":
            message = "unknown field (not in the contract); check the field name for a typo"
        issues.append(Issue(loc=loc_to_path(tuple(err["loc"]))[:512], message=message[:4096], type=err["type"]))
    return issues
